"""aiohttp's low-level server, answering requests it cannot parse as the host answers the rest.

aiohttp answers a request line or header it cannot parse with a plain-text
400 and logs a traceback; here that is a problem document and one warning
line (the request is the client's fault, not the host's). Errors inside the
host still log their traceback and answer a bare problem 500.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from devhost.logs import printable
from localhttp.problem import problem_response

logger = logging.getLogger("devhost")


class _Handler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
            detail = "The host failed; see its log."
        else:
            reason = (message or str(exc) or "malformed request").splitlines()[0]
            reason = reason.partition(": b'")[0].rstrip(": ")  # not the client's bytes again
            logger.warning("Refused a malformed HTTP request (%d): %s", status, printable(reason))
            detail = f"Malformed HTTP request: {printable(reason)}."
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent on this connection")
        response = problem_response(status, detail)
        response.force_close()
        return response


class DevServer(web.Server):
    """``web.Server`` whose connections use the handler above."""

    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return _Handler(self, loop=self._loop, **kwargs)
