"""Twilio's error answer, so clients parse sandbox failures exactly like real ones; and
the refusal of the sandbox's own control and console API.

Every refusal is JSON ``{"code", "message", "more_info", "status"}`` with the HTTP
status equal to ``status``: the shape twilio-python turns into ``TwilioRestException``.
"""

from collections.abc import Mapping

from aiohttp import web

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


def error_body(status: int, code: int, message: str) -> dict[str, object]:
    """Twilio's legacy error document (the one the 2010-04-01 API answers)."""
    return {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }


def error_response(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An HTTP answer carrying :func:`error_body`."""
    return web.json_response(error_body(status, code, message), status=status, headers=headers)


class TwilioApiError(Exception):
    """A request Twilio would refuse; raised anywhere, answered by the server in one place."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status}/{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message)


class ActionError(Exception):
    """A request the sandbox cannot act on: answered as a problem document (with Twilio's
    error ``code`` when Twilio would answer one)."""

    code: int | None = None

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
