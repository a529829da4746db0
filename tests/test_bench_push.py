"""The push-on/off row of the benchmark, on made-up figures: its verdict, and that the host
it calls "push on" really has push on (else the row would compare two push-off hosts)."""

from __future__ import annotations

from bench import push_webhook
from bench.stack import Account, app_environment
from shared.settings import load_settings

MS = 0.001
STORAGE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
           "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
           "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;")


def test_the_row_holds_up_to_its_target_and_misses_past_it() -> None:
    off = [10 * MS] * 99
    held = push_webhook.push_row([13 * MS] * 99, off)
    missed = push_webhook.push_row([13.2 * MS] * 99, off)
    assert (held.holds, missed.holds) == (True, False)
    assert (held.ours, held.baseline, held.target) == ("13.00 ms", "10.00 ms push off", "<= 1.3x")


def test_push_is_on_only_on_the_push_on_host() -> None:
    env = app_environment(Account.random(), "http://127.0.0.1:1", STORAGE)
    assert not load_settings(env).push_on
    pushing = load_settings(push_webhook.push_environment(env))
    assert pushing.push_on and pushing.queue_connection is not None
