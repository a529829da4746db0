"""No test writes by hand a value from the blocks ``unique`` hands out, nor makes one up at random.

Otherwise a fixed number could be the one ``unique.number()`` gives another
test, or two random picks could meet, in the session's one Azurite.
"""

from __future__ import annotations

import re
from pathlib import Path

import unique

from shared.phone import is_e164

TESTS = Path(__file__).parent
RESERVED = re.compile(re.escape(unique.NUMBER_BLOCK) + r"\d|\b"
                      + r"\.".join(map(str, unique.ADDRESS_BLOCK[:1])) + r"\.1[89]\.\d")
RANDOM_NUMBER = re.compile(r"""f["']\+\d*\{[^}]*(randbelow|randint|random|token_hex|next\()""")


def sources() -> dict[str, str]:
    return {path.relative_to(TESTS).as_posix(): path.read_text(encoding="utf-8")
            for path in TESTS.rglob("*.py") if path.name != "unique.py"}


def test_no_test_names_a_value_from_the_unique_blocks():
    found = [(name, line) for name, text in sources().items()
             for line in text.splitlines() if RESERVED.search(line)]
    assert found == [], "use unique.number() / unique.address() instead"


def test_no_test_makes_up_a_number_at_random_or_from_a_counter_of_its_own():
    found = [(name, line.strip()) for name, text in sources().items()
             for line in text.splitlines() if RANDOM_NUMBER.search(line)]
    assert found == [], "use unique.number() instead"


def test_values_are_never_handed_out_twice_and_are_valid():
    numbers = [unique.number() for _ in range(3)]
    addresses = [unique.address() for _ in range(3)]
    days = [unique.day() for _ in range(3)]
    assert len({*numbers}) == len({*addresses}) == len({*days}) == 3
    assert all(is_e164(n) and RESERVED.match(n) for n in numbers)
    assert all(RESERVED.search(a) for a in addresses)
    assert all(d.hour == 0 and d >= unique.FIRST_DAY for d in days)
