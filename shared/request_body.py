"""Reading a client's request: method, size, content type and typed fields.

Everything a client sends is hostile until it has passed through here: the
body is size-capped before it is parsed, JSON and form bodies become the same
``Payload``, and each field is taken with its type and length checked, so a
function's ``main`` never sees a value that could break TwiML, JSON or
logging downstream.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from werkzeug.datastructures import MultiDict

from shared.problems import (
    invalid_body,
    invalid_field,
    method_not_allowed,
    too_large,
    unsupported_charset,
    unsupported_media_type,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
ACCEPTED_TYPES = (JSON, FORM)
MAX_BODY_BYTES = 64 * 1024
# What each format's own specification admits: JSON's Unicode encodings
# (RFC 4627; RFC 8259 narrows it to UTF-8), and UTF-8 for forms (WHATWG URL).
# US-ASCII is a subset of both. Anything else is refused rather than guessed.
JSON_CHARSETS = ("utf-8", "ascii", "utf-16", "utf-16-le", "utf-16-be",
                 "utf-32", "utf-32-le", "utf-32-be")
FORM_CHARSETS = ("utf-8", "ascii")
MAX_FORM_FIELDS = 1000
# `curl -d '{...}'` sends JSON labelled as a form. Read as a form, its text would be
# refused as one unknown field named after the whole body; name the header instead.
# A form body never starts with { or [: form encoding escapes both (WHATWG URL).
JSON_SENT_AS_FORM = (f"the body looks like JSON but was sent as {FORM} (curl -d sends that "
                     f"unless told otherwise): send the header 'Content-Type: {JSON}'")

# C0 controls other than tab, newline and carriage return, and the
# non-characters XML 1.0 forbids: they cannot be written into TwiML.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def require_method(req: func.HttpRequest, allowed: tuple[str, ...]) -> None:
    if req.method not in allowed:
        raise method_not_allowed(req.method, allowed)


def media_type(req: func.HttpRequest) -> str:
    return req.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def charset(req: func.HttpRequest, accepted: tuple[str, ...]) -> str:
    """The body's declared charset (default UTF-8), or 415 if it is not one ``accepted``."""
    declared = "utf-8"
    for parameter in req.headers.get("Content-Type", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            declared = value.strip().strip('"')
    try:
        codec = codecs.lookup(declared).name
    except LookupError:
        codec = None
    if codec not in accepted:
        raise unsupported_charset()
    return codec


class Payload:
    """A request's fields, each a list of raw values (JSON values or form strings)."""

    def __init__(self, values: dict[str, list[Any]]) -> None:
        self._values = values

    def canonical(self) -> str:
        """The fields as one string, the same for the same fields in any order."""
        return json.dumps(self._values, sort_keys=True, ensure_ascii=False)

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Refuse fields the function does not take: a typo must not pass silently."""
        unknown = sorted(set(self._values) - set(known))
        if unknown:
            raise invalid_field(unknown[0], "is not a field this function takes")

    def text(self, name: str, *, max_length: int, required: bool = False) -> str | None:
        """One string field; absent, null and blank all read as not given."""
        values = self._values.get(name, [])
        if len(values) > 1:
            raise invalid_field(name, "must be given once")
        value = _checked_text(name, values[0], max_length) if values else None
        if not value:
            if required:
                raise invalid_field(name, "is required")
            return None
        return value

    def texts(self, name: str, *, max_items: int, max_length: int) -> list[str]:
        """A list field: a JSON array (or single string), or a repeated form key."""
        values = self._values.get(name, [])
        if len(values) == 1 and (values[0] is None or isinstance(values[0], list)):
            values = values[0] or []
        if len(values) > max_items:
            raise invalid_field(name, f"takes at most {max_items} values")
        texts = [_checked_text(name, value, max_length) for value in values]
        if any(not text for text in texts):
            raise invalid_field(name, "must not contain empty values")
        return texts


def capped_body(req: func.HttpRequest) -> bytes:
    """The body, refused with 413 before anything parses it if it is over the cap."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise too_large(MAX_BODY_BYTES)
    return body


def read_payload(req: func.HttpRequest) -> Payload:
    """Parse a JSON object or form body, refusing anything else with its problem."""
    body = capped_body(req)
    kind = media_type(req)
    if kind == JSON or kind.endswith("+json"):
        document = _json_object(body, charset(req, JSON_CHARSETS))
        return Payload({name: [value] for name, value in document.items()})
    if kind == FORM:
        if body.lstrip()[:1] in (b"{", b"["):
            raise invalid_body(JSON_SENT_AS_FORM)
        form = form_fields(req)
        return Payload({name: form.getlist(name) for name in form})
    raise unsupported_media_type(ACCEPTED_TYPES)


def require_no_fields(req: func.HttpRequest) -> None:
    """For a function that takes nothing: an empty body, or a JSON object or form with no
    fields; a field sent anyway (``identity``, say) is refused rather than ignored."""
    if capped_body(req):
        read_payload(req).reject_unknown(())


def form_fields(req: func.HttpRequest) -> MultiDict[str, str]:
    """A form body's fields, decoded strictly in its declared charset.

    Not ``req.form``: it ignores the declared charset and answers an empty form
    for bytes that are not UTF-8, where a refusal is due.
    """
    encoding = charset(req, FORM_CHARSETS)
    try:
        text = capped_body(req).decode(encoding)
        pairs = parse_qsl(text, keep_blank_values=True, encoding=encoding, errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise invalid_body(f"the form body is not valid {encoding.upper()}") from None
    except ValueError:  # over MAX_FORM_FIELDS
        raise invalid_body(f"the form has more than {MAX_FORM_FIELDS} fields") from None
    return MultiDict(pairs)


def _json_object(body: bytes, encoding: str) -> dict[str, Any]:
    try:
        document = json.loads(body.decode(encoding))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid_body(f"the body is not valid {encoding.upper()} JSON") from None
    if not isinstance(document, dict):
        raise invalid_body("the body must be a JSON object")
    return document


def _checked_text(name: str, value: Any, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_field(name, "must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise invalid_field(name, f"must be at most {max_length} characters")
    if _FORBIDDEN.search(value) or not _encodable(value):
        raise invalid_field(name, "contains characters that cannot be sent")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON "\ud800" escapes
        return False
    return True
