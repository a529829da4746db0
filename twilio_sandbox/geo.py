"""Where a number is, as Twilio's incoming-message webhook says it.

Twilio "attempts to look up" the sender's and the recipient's city, state, postal
code and country and sends ``FromCity``, ``FromState``, ``FromZip``,
``FromCountry`` and the same for ``To``
(https://www.twilio.com/docs/messaging/guides/webhook-request). What it does not
know it still sends, empty: requests captured from Twilio show ``FromCity=`` and
``FromZip=``, and ``FromState=`` for a UK number, with the country set.

The sandbox knows what phonenumbers knows: the country of every number (its
region, else its calling code's main one), and for a North American number the
city and state its area code's geocoding names (``San Francisco, CA``). Postal
codes it never knows.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import geocoder

_UNKNOWN_REGION = "ZZ"


def location(prefix: str, number: str) -> dict[str, str]:
    """``{prefix}City``, ``{prefix}State``, ``{prefix}Zip`` and ``{prefix}Country`` of
    ``number`` (``prefix`` ``From`` or ``To``), empty where unknown."""
    city = state = country = ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None:
        region = (phonenumbers.region_code_for_number(parsed)
                  or phonenumbers.region_code_for_country_code(parsed.country_code or 0))
        country = "" if region == _UNKNOWN_REGION else region
        if parsed.country_code == 1:
            place, _, code = geocoder.description_for_number(parsed, "en").rpartition(", ")
            if place and len(code) == 2 and code.isupper():
                city, state = place.upper(), code
    return {f"{prefix}City": city, f"{prefix}State": state, f"{prefix}Zip": "",
            f"{prefix}Country": country}
