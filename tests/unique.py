"""What a test makes up (phone numbers, client addresses, days) that no other test uses.

The whole session shares one Azurite, which keeps every test's rate-limit
counts, opt-outs and conversations: a number another test texted STOP from,
or a country hour another test counted, changes the answer. Picking at random
only makes a clash unlikely; these hand out values from blocks no test
writes by hand (``test_unique`` checks that), each value once per session.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

#: US numbers +1 628 NXX XXXX: no test names one literally (test_unique checks).
NUMBER_BLOCK = "+1628"
#: Client addresses 198.18.0.0/15 (RFC 2544's benchmarking block), likewise.
ADDRESS_BLOCK = (198, 18)
#: Days from 2100 on: tests that pass their own ``now`` otherwise use earlier ones.
FIRST_DAY = datetime(2100, 1, 1, tzinfo=UTC)

_numbers = itertools.count()
_addresses = itertools.count(1)
_days = itertools.count()


def number() -> str:
    """A valid US number, E.164, that no other test sends to or hears from."""
    n = next(_numbers)
    exchange, line = divmod(n, 10_000)
    assert exchange < 800, "the session used up its numbers"
    return f"{NUMBER_BLOCK}{200 + exchange}{line:04d}"


def address() -> str:
    """An IPv4 client address no other test sends from."""
    n = next(_addresses)
    high, low = divmod(n, 256)
    assert high < 512, "the session used up its addresses"
    return f"{ADDRESS_BLOCK[0]}.{ADDRESS_BLOCK[1] + high // 256}.{high % 256}.{low}"


def day() -> datetime:
    """Midnight UTC of a day no other test's clock is in: its hours and the day itself
    are rate-limit windows nobody else counted in."""
    return FIRST_DAY + timedelta(days=next(_days))
