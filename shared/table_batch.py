"""Entity-group transactions on the wire: the ``$batch`` request's body, and its answer read.

Table Storage takes a transaction as one ``POST`` to ``$batch`` whose body is a
``multipart/mixed`` batch holding a single change set, itself ``multipart/mixed`` with
one ``application/http`` part (``Content-Transfer-Encoding: binary``) per operation: the
operation's request line, headers and JSON entity. The answer has the same shape, a
part per operation (status line, ``ETag``) when all applied, or one part, the failed
operation's status and its OData error, whose message starts with the operation's index
("Performing entity group transactions",
https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions).

azure-data-tables builds every part as a whole azure-core request, runs each through
a headers policy, serializes them through the ``email`` package and parses the answer
the same way: most of the CPU a transaction cost the worker. Here the text is written
and read directly; the request still goes through the SDK's pipeline (``shared.store``:
its authentication, retries and timeouts), and the entities come from the SDK's own
serializer. Nothing here knows Azure's SDK: only the format.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The OData headers every operation carries (the Table service's JSON, version 3.0).
_JSON = "application/json"
_MINIMAL_METADATA = "application/json;odata=minimalmetadata"
#: A failed operation's message begins with its index in the change set ("1:...").
_INDEX = re.compile(r"(\d+):")


@dataclass(frozen=True)
class Part:
    """One operation of a change set: ``POST`` (insert), ``PUT`` (replace, insert or
    replace) or ``DELETE`` on ``url``, over ``if_match`` when given, carrying ``entity``
    (its properties with their OData type annotations) unless it deletes."""

    method: str
    url: str
    entity: Mapping[str, Any] | None = None
    if_match: str | None = None
    #: ``Prefer: return-no-content``: an insert is answered with its ETag, not its entity.
    no_content: bool = False


@dataclass(frozen=True)
class Answer:
    """What the service said to one operation: its status and, once applied, its ETag;
    failed, its OData error code and the index of the operation it names."""

    status: int
    etag: str | None = None
    code: str | None = None
    index: int | None = None

    @property
    def applied(self) -> bool:
        return 200 <= self.status < 300


def encode(parts: Sequence[Part]) -> tuple[str, bytes]:
    """The ``$batch`` request's ``Content-Type`` and body: one change set holding ``parts``
    in order, each with its ``Content-ID`` (its index)."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    lines = [f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
    for number, part in enumerate(parts):
        lines += [f"--{changeset}", "Content-Type: application/http",
                  "Content-Transfer-Encoding: binary", f"Content-ID: {number}", "",
                  f"{part.method} {part.url} HTTP/1.1", "DataServiceVersion: 3.0",
                  f"Accept: {_MINIMAL_METADATA}"]
        if part.if_match is not None:
            lines.append(f"If-Match: {part.if_match}")
        if part.no_content:
            lines.append("Prefer: return-no-content")
        if part.entity is None:
            lines.append("")
        else:
            lines += [f"Content-Type: {_JSON}", "", json.dumps(part.entity)]
    lines += [f"--{changeset}--", f"--{batch}--", ""]
    return f"multipart/mixed; boundary={batch}", "\r\n".join(lines).encode()


class MalformedAnswer(ValueError):
    """The ``$batch`` answer is not the multipart the service documents."""


def decode(content_type: str, body: bytes) -> list[Answer]:
    """Each operation's answer, in order: one per operation when all applied, else the
    failed one's. The change set may be answered inside the batch or, as some services
    do for a batch that fails as a whole, as the batch's own part."""
    answers = [_http(payload) for payload in _leaves(content_type, body.decode())]
    if not answers:
        raise MalformedAnswer("a $batch answer with no operation in it")
    return answers


def failure(answers: Sequence[Answer]) -> Answer | None:
    """The operation that did not apply, if one did not."""
    return next((answer for answer in answers if not answer.applied), None)


def _leaves(content_type: str, text: str) -> list[str]:
    """The ``application/http`` payloads inside a multipart body, nested ones included."""
    boundary = _boundary(content_type)
    found: list[str] = []
    for headers, payload in _multipart(boundary, text):
        kind = headers.get("content-type", "")
        if kind.startswith("multipart/mixed"):
            found += _leaves(kind, payload)
        elif kind.startswith("application/http"):
            found.append(payload)
    return found


def _boundary(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    raise MalformedAnswer(f"no boundary in {content_type!r}")


def _multipart(boundary: str, text: str) -> list[tuple[dict[str, str], str]]:
    """Each part's headers (lower-cased names) and payload (RFC 2046: a delimiter is a
    line break then ``--boundary``; the preamble and epilogue are not parts)."""
    text = "\n" + text.replace("\r\n", "\n")
    pieces = text.split(f"\n--{boundary}")
    if len(pieces) < 3 or not pieces[-1].startswith("--"):
        raise MalformedAnswer(f"no closed part delimited by {boundary!r}")
    parts = []
    for piece in pieces[1:-1]:
        head, _, payload = piece.partition("\n\n")
        parts.append((_headers(head.split("\n")[1:]), payload))
    return parts


def _headers(lines: Sequence[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            found[name.strip().lower()] = value.strip()
    return found


def _http(payload: str) -> Answer:
    """One operation's answer: ``HTTP/1.1 <status> <reason>``, its headers, its body."""
    head, _, body = payload.partition("\n\n")
    status_line, *lines = head.split("\n")
    version, _, rest = status_line.partition(" ")
    status = rest.split(" ", 1)[0]
    if not version.startswith("HTTP/") or not status.isdigit():
        raise MalformedAnswer(f"not an HTTP answer: {status_line[:80]!r}")
    headers = _headers(lines)
    answer = Answer(int(status), headers.get("etag"))
    if answer.applied:
        return answer
    code, index = error(body)
    return Answer(answer.status, None, code, index)


def error(body: str | bytes) -> tuple[str | None, int | None]:
    """An OData error's code and, for a failed operation, the index its message begins
    with (``{"odata.error": {"code": ..., "message": {"value": "1:..."}}}``)."""
    try:
        found = json.loads(body)["odata.error"]
        code, message = found.get("code"), found.get("message", {}).get("value", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None
    index = _INDEX.match(message) if isinstance(message, str) else None
    return code, int(index.group(1)) if index else None
