"""HTTP basic authentication the way Twilio checks it.

Twilio accepts either (Account SID, Auth Token) or (API Key SID, API Key Secret),
and a key only for the account that owns it. Checking both here lets the app's
credential handling (and its mistakes) show up locally.
"""

import base64
import binascii
from collections.abc import Mapping
from hmac import compare_digest

from .errors import TwilioApiError

Accounts = Mapping[str, str]  # account SID -> auth token
ApiKeys = Mapping[str, tuple[str, str]]  # key SID -> (secret, account SID)


def _unauthorized() -> TwilioApiError:
    return TwilioApiError(401, 20003, "Authenticate")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from a ``Basic`` Authorization header; None when absent or malformed."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def credential_account(header: str | None, accounts: Accounts, api_keys: ApiKeys) -> str:
    """The account SID the ``Authorization`` header proves, or a 401/20003."""
    credentials = basic_credentials(header)
    if credentials is None:
        raise _unauthorized()
    user, password = credentials
    if user in accounts:
        if compare_digest(password.encode(), accounts[user].encode()):
            return user
    elif user in api_keys:
        secret, account_sid = api_keys[user]
        if compare_digest(password.encode(), secret.encode()):
            return account_sid
    raise _unauthorized()


def authorize(
    header: str | None, path_account: str, path: str, accounts: Accounts, api_keys: ApiKeys
) -> str:
    """Check the credentials against the account named in the URL; return that account.

    Wrong credentials: 401/20003. Unknown account in the path: 404/20404. Credentials
    of another account: 403/20003 (subaccounts are not modelled).
    """
    owner = credential_account(header, accounts, api_keys)
    if path_account not in accounts:
        raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")
    if owner != path_account:
        raise TwilioApiError(
            403, 20003, f"Authenticate: these credentials are not valid for account {path_account}"
        )
    return path_account
