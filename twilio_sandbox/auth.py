"""HTTP basic authentication the way Twilio checks it.

Twilio accepts either (Account SID, Auth Token) or (API Key SID, API Key Secret),
and a key only for the account that owns it. Checking both here lets the app's
credential handling (and its mistakes) show up locally.

Sources: "All requests to sensitive areas of the Twilio API must use HTTP Basic
Authentication ... your Account SID as the username, and your Auth Token as the
password ... You can also generate revocable API Keys", and 20003 for a wrong pair
(https://www.twilio.com/docs/api/errors/20003); a key belongs to one account and may
not act for another ("The Credentials used for authorization do not belong to the
given account", https://www.twilio.com/docs/api/errors/70051; "You can not use a
subaccount's credentials to access the resources of your main Twilio account or any
other subaccounts", https://www.twilio.com/docs/iam/api/subaccounts).
"""

import base64
import binascii
from collections.abc import Mapping
from hmac import compare_digest

from .errors import TwilioApiError

Accounts = Mapping[str, str]  # account SID -> auth token
ApiKeys = Mapping[str, tuple[str, str]]  # key SID -> (secret, account SID)


def _unauthorized() -> TwilioApiError:
    """401 with code 20003, message "Authenticate": what Twilio answers wrong or missing
    credentials (https://www.twilio.com/docs/api/errors/20003). That page names no HTTP
    status, so 401 and "Authenticate" are not documented by Twilio: chosen because
    Twilio's answers, as captured by its users, carry exactly
    ``{"status": 401, "message": "Authenticate", "code": 20003}``."""
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

    Wrong credentials: 401/20003 (https://www.twilio.com/docs/api/errors/20003).
    Unknown account in the path: 404/20404, Twilio's "The SID in the request does not
    exist" (https://www.twilio.com/docs/api/errors/20404). Credentials of another
    account: 20003, whose causes include "Using subaccount credentials to access master
    account" (same page; https://www.twilio.com/docs/iam/api/subaccounts); its HTTP
    status 403 is not documented by Twilio: chosen because the credentials are valid
    but not for this resource, which is 403 Forbidden (RFC 9110 section 15.5.4) where
    401 would tell the client to retry with other credentials for the same account.
    Subaccounts are not modelled.
    """
    owner = credential_account(header, accounts, api_keys)
    if path_account not in accounts:
        raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")
    if owner != path_account:
        raise TwilioApiError(
            403, 20003, f"Authenticate: these credentials are not valid for account {path_account}"
        )
    return path_account
