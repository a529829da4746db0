"""Function keys for HTTP triggers, enforced only when asked to.

Core Tools does not check keys, so by default neither does this host. With
enforcement on, a function whose authLevel is ``function`` or ``admin`` needs
the key from the ``FUNCTIONS_LOCAL_KEY`` setting, sent the two ways Azure
accepts: the ``x-functions-key`` header or the ``code`` query parameter.
(Azure tells function and master keys apart; one local key stands for both.)
"""

import hmac

from aiohttp import web

KEY_SETTING = "FUNCTIONS_LOCAL_KEY"
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


def presented_key(request: web.BaseRequest) -> str | None:
    """The key the caller sent, header first as on Azure."""
    return request.headers.get(KEY_HEADER) or request.query.get(KEY_QUERY)


def is_authorized(auth_level: str, presented: str | None, expected: str | None) -> bool:
    """Whether a request may run a function of this authLevel."""
    if auth_level == "anonymous":
        return True
    if not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
