"""The benchmark's round-trip counts: sends and callbacks of the repository's code, in
process, with the store's calls counted (a count, not a time: it holds on any machine)."""

from __future__ import annotations

import asyncio

import unique
from test_bench_in_process import settings

from bench import round_trips


def test_a_send_is_one_transaction_after_twilio_and_a_callback_one_write(app_env):
    unlimited = {name: "0" if name.startswith("RATE_LIMIT_") else value
                 for name, value in settings(app_env).items()}
    counts = asyncio.run(round_trips.count(unlimited, to=unique.number()))
    assert counts.after == 1 and counts.by_method["transact"] == 1
    assert counts.before == 2  # the opt-out read and the sender's row, while Twilio sends
    assert counts.callback == 1  # the instance remembers the row the send wrote
    # A thread new to the instance and the owner: its summary and block row are read first.
    assert counts.first_after >= 3


def test_a_key_and_the_limits_add_one_write_after_twilio(app_env):
    counts = asyncio.run(round_trips.count(settings(app_env), keyed=True,
                                          to=unique.number()))
    assert counts.after == 2  # the transaction, and the key's kept answer
    assert counts.before > 5  # the reservation and five counters come first
