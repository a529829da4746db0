"""The scale-out profile (``make load PROFILE=scale-out``) at a size ``make test`` can afford.

Two hosts behind the round-robin proxy, one Azurite and one sandbox, a few
dozen sends under keys (some sent twice at once through both instances) and
tight limits: the exactness properties must hold, not the timings. The
checker is then tried on made-up runs, each breaking one property.
"""

from __future__ import annotations

import dataclasses

import pytest

from loadtest.__main__ import main
from loadtest.scale_design import design
from loadtest.scale_out import Answer, ScaleOutConfig, ScaleOutReport, verify

EXACT = ("every request got an HTTP answer", "zero 5xx", "exactly one Twilio message or call "
         "per key admitted", "no Twilio message or call for a key that got no 201",
         "sms-per-caller: each of", "call-per-caller: each of", "per-destination: each of",
         "per-country: each of", "per-account: the account admitted exactly its quota",
         "zero lost SIDs", "every retry went through another instance",
         "every instance served requests")


def test_two_instances_keep_keys_and_limits_exact(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--profile", "scale-out", "--instances", "2", "--sends", "60",
                   "--concurrency", "4", "--seed", "3"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    for check in EXACT:
        assert any(line.startswith(f"  PASS  {check}") for line in printed.splitlines()), (
            check, printed)
    assert "instance 0:" in printed and "instance 1:" in printed
    assert "RESULT: PASS" in printed


# --- the checker on made-up runs -------------------------------------------------------


def made_up() -> ScaleOutReport:
    """A consistent run: each scope's first sends up to its quota admitted, the rest refused."""
    plan = design(60, 4, "t", 1)
    report = ScaleOutReport(ScaleOutConfig(instances=2), plan)
    taken: dict[tuple[str, str], int] = {}
    remainder = plan.account_quota - sum(q for s, q in plan.quotas.items()
                                         if s[0] != "per-account")
    for send in plan.sends:
        scope = (send.limit, send.scope)
        quota = remainder if send.limit == "per-account" else plan.quotas[scope]
        taken[scope] = taken.get(scope, 0) + 1
        if taken[scope] <= quota:
            sid = f"SM{send.index:032x}"
            report.answers.append(Answer(send, 201, send.index % 2, {"sid": sid}, False, False))
            report.state.setdefault("messages", []).append(
                {"sid": sid, "status": "delivered", "body": f"({send.tag})"})
            report.in_store[sid] = 200
        else:
            report.answers.append(Answer(send, 429, send.index % 2, {
                "type": "urn:twilio-functions:problem:rate-limited", "limit": send.limit},
                False, False))
    first = report.answers[0]
    report.answers.append(dataclasses.replace(first, instance=1, replayed=True, retry=True))
    report.state["calls"] = []
    report.served, report.cpu, report.logs = [40, 40], [0.1, 0.1], ["", ""]
    return report


def failed(report: ScaleOutReport) -> list[str]:
    return [check.name for check in verify(report) if not check.passed]


def test_the_made_up_run_passes() -> None:
    assert failed(made_up()) == []


def test_a_key_sent_twice_to_twilio_fails() -> None:
    report = made_up()
    report.state["messages"].append(dict(report.state["messages"][0], sid="SM" + "f" * 32))
    assert failed(report) == [
        "exactly one Twilio message or call per key admitted (duplicated = 0)"]


def test_a_scope_over_its_quota_fails() -> None:
    report = made_up()
    refused = next(i for i, a in enumerate(report.answers) if a.status == 429
                   and a.send.limit == "sms-per-caller")
    send = report.answers[refused].send
    sid = "SM" + "e" * 32
    report.answers[refused] = Answer(send, 201, 0, {"sid": sid}, False, False)
    report.state["messages"].append({"sid": sid, "status": "delivered", "body": send.tag})
    report.in_store[sid] = 200
    assert sorted(failed(report)) == [
        "per-account: the account admitted exactly its quota across instances",
        "sms-per-caller: each of 1 scopes admitted exactly its quota across instances"]


def test_a_sid_the_store_does_not_know_fails() -> None:
    report = made_up()
    report.in_store[next(iter(report.in_store))] = 404
    assert failed(report) == ["zero lost SIDs: every 201's SID in the sandbox and in the store"]


def test_a_5xx_or_a_retry_on_the_same_instance_fails() -> None:
    report = made_up()
    report.answers[-1] = dataclasses.replace(report.answers[-1], status=503, instance=0,
                                             document={})
    assert set(failed(report)) == {
        "zero 5xx", "every retry went through another instance than its first request",
        "every answer a 201, the 429 of the one limit meant to stop it, or a 409 while a "
        "key's first request ran"}


def test_attaching_to_a_sandbox_needs_its_account_and_loopback(monkeypatch) -> None:
    from devhost.launcher import attach_sandbox  # the hosts above attached to one sandbox

    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="account"):
        attach_sandbox("http://127.0.0.1:9", {})
    account = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t"}
    with pytest.raises(ValueError, match="loopback"):
        attach_sandbox("http://example.com:9", account)
