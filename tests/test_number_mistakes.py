"""First mistakes with a number get the 400 that says how to write it.

A number written as people write it (``+1 (415) 555-2671``) is told what
E.164 is, not how long a field may be; a form body that sent ``+`` as is
(curl's ``-d to=+1415...``: a bare ``+`` is a space in a form) is told to
write it ``%2B``.
"""

from __future__ import annotations

import pytest
from harness import APP_URL, FROM_NUMBER, invoke, refused, request

FIELDS = {"send_sms": {"body": "Hello"}, "make_call": {"message": "Hello"}}
FUNCTIONS = list(FIELDS)


def post(function: str, **kwargs):
    return invoke(function, request("POST", f"{APP_URL}/{function}", **kwargs))


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("field", ["to", "from"])
@pytest.mark.parametrize("written", ["+1 (415) 555-2671", "+1 415-555-2671", "+1.415.555.2671",
                                     "+1 (415) 555-2671 ext. 1234"])
def test_a_number_written_as_people_write_it_is_told_what_e164_is(app_env, function, field,
                                                                  written):
    fields = {"to": "+14155552671", **FIELDS[function], field: written}
    document = refused(post(function, json_body=fields), 400, "invalid-field")
    assert document["field"] == field
    assert "E.164" in document["detail"] and "+14155552671" in document["detail"]
    assert "characters" not in document["detail"]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("field", ["to", "from"])
def test_a_plus_a_form_sent_unencoded_is_told_to_write_it_as_2b(app_env, function, field):
    other = "from" if field == "to" else "to"
    numbers = {field: "+14155552671", other: FROM_NUMBER if other == "from" else "+14155552671"}
    encoded = "&".join([f"{field}={numbers[field]}",  # the + as is: a space once decoded
                        f"{other}={numbers[other].replace('+', '%2B')}",
                        *(f"{name}={value}" for name, value in FIELDS[function].items())])
    document = refused(post(function, body=encoded.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded"}), 400, "invalid-field")
    assert document["field"] == field
    assert "%2B" in document["detail"]


def test_a_number_without_its_plus_in_json_is_told_it_starts_with_one(app_env):
    document = refused(post("send_sms", json_body={"to": "14155552671", "body": "Hi"}),
                       400, "invalid-field")
    assert "start with +" in document["detail"]
