"""Reading a list as Twilio's REST API does: the Messages ``DateSent`` filters and
``PageToken`` paging.

``GET .../Messages.json`` takes ``DateSent``, ``DateSent<`` and ``DateSent>``
(OpenAPI ``/2010-04-01/Accounts/{AccountSid}/Messages.json``, and "Read
multiple Message resources" on
https://www.twilio.com/docs/messaging/api/message-resource): a date
``YYYY-MM-DD`` in GMT matches the messages sent that day, on or before it
(``<``), on or after it (``>``; on the wire ``DateSent>=2024-05-01``). The
description's examples also give full times (``2019-06-11 22:05:25.000``,
``Wed, 19 Jun 2019 22:04:00 -0000``, ``06/11/2019 22:05:25 MST``), and
twilio-python sends ``2024-05-01T00:00:00Z``: a time bounds ``<``/``>`` at that
instant, and ``DateSent`` at its GMT day. A message not sent (``date_sent``
null) matches no ``DateSent`` filter.

Pages after the first are named by a ``PageToken`` (the OpenAPI examples:
``next_page_uri`` ``...&Page=1&PageToken=PAMMc2622...``, ``PA`` and the last SID
of the page read), so a page follows the one before it even when messages
arrived meanwhile; ``Page`` alone "is simply for client state". The sandbox
writes ``PA<last SID>`` for the next page and ``PB<first SID>`` for the previous
one, and still reads a bare ``Page`` as an offset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from .errors import TwilioApiError
from .resources import Resource

DATE_SENT = ("DateSent", "DateSent<", "DateSent>")
#: The zones "06/11/2019 22:05:25 MST" may name (the OpenAPI example's form).
_ZONES = {"GMT": 0, "UTC": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
          "MDT": -6, "PST": -8, "PDT": -7}

Filter = Callable[[Resource], bool]


def _invalid(name: str, value: str) -> TwilioApiError:
    # 400/20001 for a DateSent that is no date is not documented by Twilio (no error page
    # for a bad DateSent was found): chosen because it is the code the sandbox gives any
    # malformed list parameter (server.py: Page, PageSize).
    return TwilioApiError(400, 20001, f"Invalid {name}: {value!r} is not a date or a time")


def _when(name: str, value: str) -> date | datetime:
    """A ``DateSent`` value: a date, or a time (in GMT when it names no zone)."""
    text = value.strip()
    moment: datetime | None = None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    if moment is None:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = _us_form(text)
    if moment is None:
        raise _invalid(name, value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _us_form(text: str) -> datetime | None:
    """``06/11/2019 22:05:25 MST``."""
    stamp, _, zone = text.rpartition(" ")
    if zone.upper() not in _ZONES:
        stamp, zone = text, "GMT"
    try:
        moment = datetime.strptime(stamp, "%m/%d/%Y %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone(timedelta(hours=_ZONES[zone.upper()])))


def date_sent_filters(query: Mapping[str, str]) -> tuple[dict[str, str], list[Filter]]:
    """The ``DateSent`` parameters given (to repeat in page URIs) and their tests."""
    given = {name: query[name] for name in DATE_SENT if name in query}
    tests: list[Filter] = []
    for name, value in given.items():
        when = _when(name, value)
        tests.append(_sent_test(name, when))
    return given, tests


def _sent_test(name: str, when: date | datetime) -> Filter:
    def test(item: Resource) -> bool:
        stamp = item.get("date_sent")
        if not stamp:
            return False
        sent = parsedate_to_datetime(stamp).astimezone(UTC)
        if name == "DateSent":
            day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
            return sent.date() == day
        if isinstance(when, datetime):
            return sent <= when if name == "DateSent<" else sent >= when
        return sent.date() <= when if name == "DateSent<" else sent.date() >= when
    return test


def page_start(items: list[Resource], query: Mapping[str, str], number: int, size: int) -> int:
    """Where the page starts in ``items`` (newest first): after ``PA<SID>``, a page's length
    before ``PB<SID>``, else at ``Page`` x ``PageSize``."""
    token = query.get("PageToken")
    if token is None:
        return number * size
    direction, sid = token[:2], token[2:]
    index = next((n for n, item in enumerate(items) if item["sid"] == sid), None)
    if direction not in ("PA", "PB") or index is None:
        # https://www.twilio.com/docs/api/errors/21481: "Invalid PageToken".
        raise TwilioApiError(400, 21481, f"Invalid PageToken: {token!r}")
    return index + 1 if direction == "PA" else max(index - size, 0)
