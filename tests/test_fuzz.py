"""Property tests: whatever a client or caller sends, the answer is never a 500."""

from __future__ import annotations

import json

from harness import APP_URL, invoke, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["to", "from", "body", "media_url", "message", "voice", "language",
                          "url", "twiml"])
NUMBERS = st.sampled_from(["+14155552671", "+15005550001", "+19005551234", "+15005550006"])
BODIES = st.one_of(
    JSON_VALUES,
    st.dictionaries(FIELDS, st.one_of(JSON_VALUES, NUMBERS, st.text()), max_size=5),
)
RELAXED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


@RELAXED
@given(function=st.sampled_from(["make_call", "send_sms"]), body=BODIES)
def test_json_bodies_never_give_500(app_env, function, body):
    response = invoke(function, request("POST", f"{APP_URL}/{function}",
                                        body=json.dumps(body).encode(),
                                        headers={"Content-Type": "application/json"}))
    assert response.status_code in (201, 400, 403, 413, 415, 422), response.get_body()


@RELAXED
@given(function=st.sampled_from(["make_call", "send_sms"]), raw=st.binary(max_size=300),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", ""]))
def test_raw_bodies_never_give_500(app_env, function, raw, content_type):
    response = invoke(function, request("POST", f"{APP_URL}/{function}", body=raw,
                                        headers={"Content-Type": content_type}))
    assert response.status_code in (201, 400, 403, 413, 415, 422), response.get_body()


@RELAXED
@given(query=st.dictionaries(
    st.one_of(st.sampled_from(["message", "voice", "language", "Message", "MessageSid"]),
              st.integers(0, 30).map(lambda i: f"Message[{i}]"), st.text(max_size=10)),
    st.text(max_size=60), max_size=6))
def test_twiml_query_strings_never_give_500(app_env, monkeypatch, query):
    monkeypatch.setenv("TWILIO_VALIDATE_SIGNATURE", "false")
    req = request("GET", f"{APP_URL}/twiml")
    req = type(req)("GET", req.url, headers={}, params=query, body=b"")
    response = invoke("twiml", req)
    # 403: an incoming message (a MessageSid) that names no Twilio account.
    assert response.status_code in (200, 400, 403), response.get_body()
