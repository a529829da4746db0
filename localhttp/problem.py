"""The host's own refusals as RFC 9457 problem documents.

They are the host's, not the app's: ``type`` is ``about:blank`` and the title
the status phrase (unless a more telling one is given), as RFC 9457 asks for
a problem that the status says all about; ``detail`` tells the client what to change.
"""

import json
from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web

PROBLEM_JSON = "application/problem+json"


class Refusal(Exception):
    """A request the host answers itself with a 4xx problem, before any function runs."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return problem_response(self.status, self.detail, headers=self.headers)


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    document = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return web.Response(
        status=status, text=json.dumps(document), content_type=PROBLEM_JSON, headers=headers
    )
