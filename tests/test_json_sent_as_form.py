"""JSON sent without ``Content-Type: application/json`` (curl's default with ``-d``).

The 400 says the body looked like JSON and names the header to send, instead
of refusing the whole body as one unknown form field.
"""

from __future__ import annotations

import pytest
from harness import APP_URL, invoke, refused, request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HEADER = "'Content-Type: application/json'"


@pytest.mark.parametrize(("function", "body"), [
    ("send_sms", b'{"to": "+14155552671", "body": "Hello"}'),
    ("make_call", b'\n  {"to": "+14155552671", "message": "Hello"}'),
    ("send_sms", b'[{"to": "+14155552671"}]'),
    ("voice_token", b"{}"),
])
def test_json_labelled_as_a_form_names_the_header(app_env, function, body):
    response = invoke(function, request("POST", f"{APP_URL}/{function}", body=body,
                                        headers=FORM))
    document = refused(response, 400, "invalid-body")
    assert "looks like JSON" in document["detail"] and HEADER in document["detail"]
    assert "+14155552671" not in document["detail"]  # the body is not echoed back
    assert app_env.messages == [] and app_env.calls == []


def test_a_real_form_is_still_read_as_one(app_env):
    response = invoke("send_sms", request("POST", f"{APP_URL}/send_sms",
                                          form={"to": "+14155552671", "body": "{curly} text"}))
    assert response.status_code == 201, response.get_body()
