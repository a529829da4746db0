"""The benchmark's verdicts on made-up figures: a slip must not print "yes" beside a miss.

``make bench`` measures; ``bench/verdicts.py`` turns the numbers into ratios,
targets and verdicts, and ``bench/report.py`` prints them. Both are checked
here on figures chosen just inside and just outside each target, with no
process started: timings themselves are never asserted in a test.
"""

from __future__ import annotations

import math

import pytest

from bench import report, verdicts
from bench.verdicts import ImportProfile, Limit, Row

MS = 0.001


def latency_samples(scale: float = 1.0, *, send_sms: float, make_call: float,
                    hello: float = 1.0) -> dict[str, list[float]]:
    """100 samples per kind, in seconds: steady values, and a slow tail for p99."""
    def kind(p50_ms: float) -> list[float]:
        return [p50_ms * MS * scale] * 95 + [p50_ms * 1.2 * MS * scale] * 5

    return {"send_sms": kind(send_sms), "make_call": kind(make_call),
            "naive_send_sms": kind(50.0), "hello": kind(hello),
            "direct send_sms": kind(1.0), "direct make_call": kind(1.0)}


def by_figure(rows: list[Row]) -> dict[str, Row]:
    return {row.figure: row for row in rows}


@pytest.mark.parametrize(("limit", "ratio", "holds"), [
    (Limit(1.5), 1.5, True), (Limit(1.5), 1.51, False), (Limit(1.5), 0.2, True),
    (Limit(0.8, at_least=True), 0.8, True), (Limit(0.8, at_least=True), 0.79, False),
    (Limit(1.5), math.nan, False), (Limit(0.8, at_least=True), math.nan, False),
    (Limit(1.5), None, False),
])
def test_a_limit_holds_only_on_its_side(limit: Limit, ratio: float | None, holds: bool) -> None:
    assert limit.holds(ratio) is holds


def test_limits_read_as_the_table_prints_them() -> None:
    assert (str(Limit(1.5)), str(Limit(0.8, at_least=True))) == ("<= 1.5x", ">= 0.8x")


def test_added_latency_is_judged_against_hello_in_the_same_run() -> None:
    """send_sms adds 1.9 hellos at p50 (holds), make_call 2.1 (missed); naive is only shown."""
    limit = verdicts.ADDED_LATENCY[50].bound
    hello = 1.0
    rows = by_figure(verdicts.latency_rows(latency_samples(
        send_sms=1.0 + (limit - 0.1) * hello, make_call=1.0 + (limit + 0.1) * hello)))

    sms, call = rows["added latency p50: send_sms"], rows["added latency p50: make_call"]
    assert sms.ratio == pytest.approx(limit - 0.1)
    assert call.ratio == pytest.approx(limit + 0.1)
    assert (sms.holds, call.holds) == (True, False)
    assert rows["added latency p50: naive_send_sms"].holds is None
    assert "hello 1.00 ms" in sms.baseline


def test_a_slower_machine_gives_the_same_latency_verdicts() -> None:
    """Once "+2 ms": missed on a slower machine while nothing in the app had changed."""
    limit = verdicts.ADDED_LATENCY[50].bound
    figures = {"send_sms": 1.0 + 0.5 * limit, "make_call": 1.0 + 0.9 * limit}  # hello: 1 ms
    here = verdicts.latency_rows(latency_samples(**figures))
    slower = verdicts.latency_rows(latency_samples(3.0, **figures))

    assert [(r.figure, r.holds) for r in slower] == [(r.figure, r.holds) for r in here]
    assert [r.ratio for r in slower] == pytest.approx([r.ratio for r in here])
    assert {r.holds for r in here if r.holds is not None} == {True}


def test_latency_with_the_store_on_is_shown_not_judged() -> None:
    rows = verdicts.latency_rows(latency_samples(send_sms=9.0, make_call=5.0, hello=1.0),
                                 store=True)
    assert rows and all(row.holds is None and row.target == "shown" for row in rows)
    assert all(row.figure.endswith(", store on") and row.load is None for row in rows)
    assert rows[0].detail == verdicts.STORE_LATENCY


def test_latency_against_a_hello_of_zero_is_missed_not_held() -> None:
    rows = verdicts.latency_rows(latency_samples(send_sms=1.5, make_call=1.5, hello=0.0))
    assert all(row.holds is False for row in rows if not row.figure.endswith("naive_send_sms"))


@pytest.mark.parametrize(("ours", "holds"), [([1.5, 1.5, 1.5], True), ([1.6, 1.5, 1.6], False)])
def test_concurrency_is_a_paired_ratio_to_the_direct_burst(ours: list[float],
                                                           holds: bool) -> None:
    sms, naive = verdicts.concurrency_rows("concurrency", ours, [1.0, 1.0, 1.0], 20.0)
    assert sms.holds is holds
    assert (naive.ratio, naive.holds) == (20.0, None)


@pytest.mark.parametrize(("twiml", "holds"), [(800.0, True), (790.0, False)])
def test_throughput_must_reach_a_share_of_hellos(twiml: float, holds: bool) -> None:
    row = verdicts.throughput_row("throughput", {"twiml": [twiml] * 3, "hello": [1000.0] * 3},
                                  "why")
    assert (row.holds, row.target, row.detail) == (holds, ">= 0.8x", "why")


@pytest.mark.parametrize(("callbacks", "holds"), [(600.0, True), (590.0, False)])
def test_status_callback_must_reach_a_share_of_twimls_rate(callbacks: float,
                                                          holds: bool) -> None:
    rates = {"status_callback": [callbacks] * 3, "twiml": [1000.0, 1000.0, 1000.0]}
    row = verdicts.callback_throughput_row("throughput", rates, "detail")
    assert (row.holds, row.target) == (holds, ">= 0.6x")
    assert (row.ours, row.baseline) == (f"{callbacks:.0f}/s status_callback", "1000/s twiml")


@pytest.mark.parametrize(("late", "holds"), [(1050, True), (1051, False)])
def test_memory_may_grow_five_percent(late: int, holds: bool) -> None:
    assert verdicts.memory_row("memory", 1000, late, 100).holds is holds


@pytest.mark.parametrize(("ours", "holds"), [(1, True), (2, False)])
def test_one_connection_per_worker(ours: int, holds: bool) -> None:
    assert verdicts.connections_row(ours, 100, 100).holds is holds


def test_only_twimls_cold_start_has_a_target() -> None:
    rows = by_figure(verdicts.cold_start_rows({
        "hello": [1.0, 1.0], "send_sms": [5.0, 5.0], "twiml": [1.3, 1.3]}))
    assert rows["cold start: spawn to first answer, send_sms"].holds is None
    assert rows["cold start: spawn to first answer, twiml"].holds is False


def test_twiml_must_not_import_twilio_rest() -> None:
    light = ImportProfile(100_000, frozenset({"twiml", "twilio.twiml"}))
    heavy = ImportProfile(200_000, frozenset({"twiml", "twilio.rest"}))
    hello = [ImportProfile(90_000, frozenset({"hello"}))]
    assert verdicts.import_rows({"hello": hello, "twiml": [light]})[0].holds is True
    assert verdicts.import_rows({"hello": hello, "twiml": [heavy]})[0].holds is False


def test_the_report_says_missed_for_every_miss_and_yes_only_for_a_hold() -> None:
    rows = [
        Row("held", "1", "1", 1.0, "<= 1.5x", True),
        Row("missed", "2", "1", 2.0, "<= 1.5x", False),
        Row("compared", "3", "1", 3.0, "shown", None),
    ]
    verdict_column = {line.split("|")[1].strip(): line.split("|")[-2].strip()
                      for line in report.table(rows).splitlines()[2:]}
    assert verdict_column == {"held": "yes", "missed": "MISSED", "compared": "shown"}
    assert report.summary(rows).startswith("1 of 2 targets hold; MISSED: missed")
    assert report.summary([rows[0], rows[2]]).startswith("All 1 targets hold.")


@pytest.mark.parametrize(("guarded", "holds"), [(1.4, True), (1.6, False)])
def test_the_guarded_burst_has_the_same_target_as_the_plain_one(guarded: float,
                                                                holds: bool) -> None:
    row = verdicts.concurrency_row("with the store", [guarded] * 3, [1.0, 1.0, 1.0])
    assert (row.ratio, row.holds, row.target) == (pytest.approx(guarded), holds, "<= 1.5x")


@pytest.mark.parametrize(("beside", "served", "holds"), [(2.0, 1.2, True), (2.1, 1.21, False)])
def test_with_the_store_both_the_direct_and_the_in_process_bursts_are_judged(
        beside: float, served: float, holds: bool) -> None:
    beside_direct, naive, host = verdicts.stored_concurrency_rows(
        "store on", [beside] * 3, [1.0] * 3, 20.0, [served] * 3, [1.0] * 3)
    assert (beside_direct.holds, beside_direct.target) == (holds, "<= 2x")
    assert beside_direct.detail == verdicts.STORE_WORK and naive.holds is None
    assert (host.ratio, host.holds, host.target) == (pytest.approx(served), holds, "<= 1.2x")
    assert host.baseline.endswith("the same send_sms in process")


@pytest.mark.parametrize(("guarded", "holds"), [(3.0, True), (3.1, False)])
def test_the_guarded_burst_beside_direct_calls_may_take_three_times(guarded: float,
                                                                   holds: bool) -> None:
    row = verdicts.judged(verdicts.concurrency_row("guarded", [guarded] * 3, [1.0] * 3),
                          verdicts.CONCURRENCY_GUARDED, "why")
    assert (row.holds, row.target, row.detail) == (holds, "<= 3x", "why")


@pytest.mark.parametrize(("after", "keyed", "holds"), [
    (1, False, True), (2, False, False), (2, True, True), (3, True, False)])
def test_round_trips_after_twilio_are_a_count_against_one_or_two(after: int, keyed: bool,
                                                                 holds: bool) -> None:
    row = verdicts.round_trip_row(after, 2, 3, 1, keyed)
    assert (row.holds, row.ratio, row.ours) == (holds, None, str(after))
    assert row.target == f"<= {2 if keyed else 1}"
    ratio_cell = report.table([row]).splitlines()[2].split("|")[4]
    assert ratio_cell.strip() == "-"  # a count has no ratio


@pytest.mark.parametrize(("on", "holds"), [(1.5, True), (1.51, False)])
def test_worker_cpu_per_send_is_judged_against_the_host_without_a_store(on: float,
                                                                         holds: bool) -> None:
    row = verdicts.cpu_row("store on vs off", [on * MS] * 3, [1 * MS] * 3, verdicts.CPU_STORE)
    assert (row.holds, row.target, row.ratio) == (holds, "<= 1.5x", pytest.approx(on))
    assert row.baseline == "1000 µs store off"


def test_the_store_checks_latency_is_shown_as_added_milliseconds() -> None:
    row = verdicts.store_latency_row([0.012] * 9 + [0.5], [0.004] * 10)
    assert row.holds is None and row.ratio == pytest.approx(3.0)
    assert row.ours == "12.00 ms (+8.00)" and row.baseline.startswith("4.00 ms")
