"""Notification Hubs' refusals: an HTTP status and an XML ``<Error>`` body.

Notification Hubs answers a refused request with ``<Error><Code>{status}</Code>
<Detail>{why}</Detail></Error>`` (the shape the official .NET SDK reads:
azure-notificationhubs-dotnet, ``Microsoft.Azure.NotificationHubs/ErrorResponse.cs``,
``[DataContract(Name = "Error")]`` with ``Code`` and ``Detail``); which status
means what is on each REST page, e.g.
https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-template-notification
("Response codes").
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

from aiohttp import web

from localhttp.problem import Refusal


class HubError(Refusal):
    """A request Notification Hubs refuses: ``status`` and the ``detail`` it says why with."""

    def response(self) -> web.Response:
        return error_response(self.status, self.detail, self.headers)


def error_response(status: int, detail: str,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    body = (f"<Error><Code>{status}</Code><Detail>{escape(detail)}</Detail></Error>")
    return web.Response(status=status, text=body, content_type="application/xml",
                        headers=headers)
