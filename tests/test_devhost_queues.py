"""Queue-triggered functions on the local host, over a real Azurite Queue service.

The host runs as `make run` starts it (its own process: the runtime keeps global
state) over ``tests/fixtures/queueapp``, whose ``work`` function is triggered by
``%WORK_QUEUE%`` and reports each run to ``REPORT_QUEUE``. Every test has queues
of its own on the session's Azurite.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from storage import shared_azurite
from test_devhost_host import HANG_GUARD_SECONDS, HostProcess

from devhost import launcher
from devhost.app_index import AppIndexError
from devhost.local_store import STORAGE_SETTINGS
from devhost.queues import LOCAL_MAX_POLLING_SECONDS, read_queue_options

ROOT = Path(__file__).resolve().parent.parent

PROJECT = Path(__file__).resolve().parent.parent
QUEUE_APP = PROJECT / "tests" / "fixtures" / "queueapp"
POLL_SECONDS = 0.05
HOST_STORAGE = "AzureWebJobsStorage"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client(name: str, *, base64_text: bool = False) -> QueueClient:
    policy = TextBase64EncodePolicy() if base64_text else None
    return QueueClient.from_connection_string(shared_azurite().connection_string, name,
                                              message_encode_policy=policy)


def wait_until[T](what: str, probe: Callable[[], T | None], host: HostProcess) -> T:
    """Poll ``probe`` (one Azurite request) until it answers; the deadline only guards
    against a hung host."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {what}:\n{host.stderr()}")
        time.sleep(POLL_SECONDS)
    return found


def visible_count(queue: QueueClient) -> int | None:
    """Messages in ``queue`` (visible or not, as Azurite counts them); None if it is absent."""
    try:
        return queue.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return None


class QueueRun:
    """A host over the queue app, its work queue, report queue and the work's poison queue."""

    def __init__(self, host: HostProcess, work: str, reports: str) -> None:
        self.host = host
        self.work = client(work, base64_text=True)
        with contextlib.suppress(ResourceExistsError):
            self.work.create_queue()
        self.poison = client(f"{work}-poison")
        self.reports = client(reports)
        self.seen: list[dict[str, Any]] = []

    def send(self, payload: dict[str, Any]) -> str:
        """Enqueue ``payload`` as the app does (base64 JSON); returns the message id."""
        return self.work.send_message(json.dumps(payload)).id

    def wait_reports(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` runs' reports, in order of arrival."""
        def more() -> list[dict[str, Any]] | None:
            for message in self.reports.receive_messages(messages_per_page=32):
                self.seen.append(json.loads(message.content))
                self.reports.delete_message(message)
            return self.seen if len(self.seen) >= count else None
        return wait_until(f"{count} runs", more, self.host)[:count]

    def wait_work_empty(self) -> None:
        """Until the work queue holds nothing (its message deleted or moved)."""
        wait_until("the work queue emptied", lambda: visible_count(self.work) == 0 or None,
                   self.host)


@contextlib.contextmanager
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: str,
            prepare: Callable[[QueueClient], None] = lambda _: None) -> Iterator[QueueRun]:
    """A host over the queue app polling ``work``; ``prepare`` runs on the work queue
    (created) before the host starts."""
    reports = unique("reports")
    client(reports).create_queue()
    queue = client(work, base64_text=True)
    queue.create_queue()
    prepare(queue)
    monkeypatch.setenv(HOST_STORAGE, shared_azurite().connection_string)
    monkeypatch.setenv("WORK_QUEUE", work.upper())  # %WORK_QUEUE%, lower-cased by the host
    monkeypatch.setenv("REPORT_QUEUE", reports)
    host = HostProcess(QUEUE_APP, log_dir=tmp_path)
    try:
        yield QueueRun(host, work, reports)
    finally:
        assert host.stop() == 0, host.stderr()


@pytest.fixture
def queue_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[QueueRun]:
    with running(tmp_path, monkeypatch, unique("work")) as run:
        yield run


def test_a_message_is_delivered_once_and_deleted_when_the_function_succeeds(
        queue_run: QueueRun) -> None:
    message_id = queue_run.send({"note": "hello"})
    [report] = queue_run.wait_reports(1)
    queue_run.wait_work_empty()
    assert report["type"] == "azure.functions.queue.QueueMessage"
    assert report["id"] == message_id
    assert report["dequeue_count"] == 1
    assert json.loads(report["body"]) == {"note": "hello"}
    assert report["pop_receipt"]
    inserted = report["insertion_time"]
    assert inserted.endswith("+00:00")
    assert inserted < report["time_next_visible"] < report["expiration_time"]
    assert visible_count(queue_run.poison) is None
    assert queue_run.reports.peek_messages() == []  # no second run


def test_a_function_that_always_fails_sends_the_message_to_poison_after_five_runs(
        queue_run: QueueRun) -> None:
    secret = unique("never-logged")
    message_id = queue_run.send({"fail": "always", "secret": secret})
    wait_until("the poison message", lambda: visible_count(queue_run.poison) or None,
               queue_run.host)
    reports = queue_run.wait_reports(5)
    assert [r["dequeue_count"] for r in reports] == [1, 2, 3, 4, 5]
    assert {r["id"] for r in reports} == {message_id}
    queue_run.wait_work_empty()
    [poisoned] = queue_run.poison.receive_messages()
    # Moved as it was sent: still base64, for a poison handler reading it as the trigger does.
    assert json.loads(base64.b64decode(poisoned.content))["secret"] == secret
    log = queue_run.host.stderr()
    queue = queue_run.poison.queue_name
    assert f"Moving message '{message_id}' to queue '{queue}'" in log
    assert "MaxDequeueCount of 5" in log
    assert secret not in log
    assert queue_run.reports.peek_messages() == []  # no sixth run


def test_a_message_failing_twice_is_delivered_on_its_third_dequeue(queue_run: QueueRun) -> None:
    message_id = queue_run.send({"fail": 2})
    reports = queue_run.wait_reports(3)
    queue_run.wait_work_empty()
    assert [(r["id"], r["dequeue_count"]) for r in reports] == [(message_id, n) for n in (1, 2, 3)]
    assert visible_count(queue_run.poison) is None
    assert queue_run.reports.peek_messages() == []


def test_the_body_is_base64_decoded_for_the_function(queue_run: QueueRun) -> None:
    text = "Grüße ✓ +14155552671"
    queue_run.send({"text": text})
    [report] = queue_run.wait_reports(1)
    assert json.loads(report["body"]) == {"text": text}


def test_a_body_that_is_not_base64_goes_to_poison_without_a_run(queue_run: QueueRun) -> None:
    raw = client(queue_run.work.queue_name)  # no encoding: plain text on the queue
    message_id = raw.send_message('{"not": "base64"}').id
    wait_until("the poison message", lambda: visible_count(queue_run.poison) or None,
               queue_run.host)
    assert f"Moving message '{message_id}'" in queue_run.host.stderr()
    assert queue_run.reports.peek_messages() == []


def test_the_queue_name_resolves_from_its_app_setting(queue_run: QueueRun) -> None:
    """``%WORK_QUEUE%`` (set upper-case) names the lower-cased queue the host polls."""
    assert "work: queueTrigger" in "\n".join(queue_run.host.stdout_lines)
    queue_run.send({})
    assert queue_run.wait_reports(1)[0]["dequeue_count"] == 1


def test_an_unresolved_queue_setting_fails_that_function_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "queueapp"
    shutil.copytree(QUEUE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(app / "work", app / "unset")
    binding_file = app / "unset" / "function.json"
    document = json.loads(binding_file.read_text())
    document["bindings"][0]["queueName"] = "%QUEUE_TEST_NEVER_SET%"
    binding_file.write_text(json.dumps(document))
    monkeypatch.delenv("QUEUE_TEST_NEVER_SET", raising=False)
    monkeypatch.setenv(HOST_STORAGE, shared_azurite().connection_string)
    work, reports = unique("work"), unique("reports")
    monkeypatch.setenv("WORK_QUEUE", work)
    monkeypatch.setenv("REPORT_QUEUE", reports)
    client(reports).create_queue()
    host = HostProcess(app, log_dir=tmp_path)
    try:
        run = QueueRun(host, work, reports)
        run.send({})
        assert run.wait_reports(1)[0]["dequeue_count"] == 1  # the other function runs
    finally:
        assert host.stop() == 0
    assert ("Function 'unset' failed to load: the queue trigger cannot listen: "
            "'%QUEUE_TEST_NEVER_SET%' does not resolve to a value.") in host.stderr()


def test_host_json_queue_options_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {
        "maxPollingInterval": "00:00:02", "visibilityTimeout": "00:00:00.500",
        "batchSize": 4, "maxDequeueCount": 2, "messageEncoding": "none"}}}))
    options = read_queue_options(tmp_path)
    assert (options.max_polling_interval, options.visibility_timeout, options.batch_size,
            options.new_batch_threshold, options.max_dequeue_count, options.base64) == (
        LOCAL_MAX_POLLING_SECONDS, 0.5, 4, 2, 2, False)  # locally polled at most this apart
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {
        "maxPollingInterval": "00:00:00.200"}}}))
    assert read_queue_options(tmp_path).max_polling_interval == 0.2  # a shorter one is kept
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {
        "batchSize": 64}}}))
    with pytest.raises(AppIndexError, match="batchSize"):
        read_queue_options(tmp_path)


def test_the_apps_host_json_bounds_how_late_a_push_is_on_azure() -> None:
    """Azure's default maxPollingInterval is a minute: an idle queue's push would wait up
    to that. The app's host.json sets two seconds (host.json reference, extensions.queues)."""
    section = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert section["maxPollingInterval"] == "00:00:02"
    assert read_queue_options(ROOT).max_polling_interval == LOCAL_MAX_POLLING_SECONDS


def test_azurite_serves_queues_beside_tables() -> None:
    azurite = shared_azurite()
    assert azurite.queue_port is not None
    assert f"QueueEndpoint={azurite.queue_endpoint};" in azurite.connection_string


def no_storage_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every storage setting, each restored after the test (start_store sets them)."""
    for name in (*STORAGE_SETTINGS, f"{HOST_STORAGE}__queueServiceUri"):
        monkeypatch.setenv(name, "")  # so that the removal below is undone
        monkeypatch.delenv(name)


def test_make_run_hands_the_app_and_host_one_connection_with_both_endpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_storage_settings(monkeypatch)
    store = launcher.start_store({}, tmp_path)
    assert store is not None
    try:
        given = os.environ[HOST_STORAGE]
        assert given == os.environ["STATE_STORAGE"] == store.connection_string
        assert f"QueueEndpoint={store.queue_endpoint};" in given
        reached = QueueClient.from_connection_string(given, unique("reach"))
        reached.create_queue()  # the queue service answers at that endpoint
    finally:
        store.stop()


def test_make_run_puts_the_host_queues_in_a_configured_state_storage(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_storage_settings(monkeypatch)
    connection = shared_azurite().connection_string
    assert launcher.start_store({"STATE_STORAGE": connection}, tmp_path) is None
    assert os.environ[HOST_STORAGE] == connection


def test_a_message_dequeued_past_max_dequeue_count_goes_to_poison_without_a_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another consumer (or a host stopped mid-run) received it five times already: the
    host's receipt is its sixth, above maxDequeueCount (5)."""
    secret = unique("dequeued")
    sent: list[str] = []

    def dequeue_five_times(queue: QueueClient) -> None:
        message = queue.send_message(json.dumps({"secret": secret}))
        sent.append(message.id)
        raw = client(queue.queue_name)  # no encoding: the update puts the text back as it is
        for _ in range(5):
            received = raw.receive_message(visibility_timeout=30)
            assert received is not None and received.id == message.id
            raw.update_message(received, visibility_timeout=0)  # visible again at once

    with running(tmp_path, monkeypatch, unique("work"), dequeue_five_times) as run:
        wait_until("the poison message", lambda: visible_count(run.poison) or None, run.host)
        run.wait_work_empty()
        [poisoned] = run.poison.receive_messages()
        assert json.loads(base64.b64decode(poisoned.content))["secret"] == secret
        log = run.host.stderr()
        assert f"Moving message '{sent[0]}'" in log
        assert "dequeued more than maxDequeueCount" in log
        assert run.reports.peek_messages() == []  # never run


def test_a_failure_on_a_poison_queue_leaves_the_message_invisible_not_released(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``-poison`` queue has no poison queue of its own: the extension leaves a failed
    message invisible (QueueProcessor.CompleteProcessingMessageAsync) instead of releasing
    it after visibilityTimeout (0 here, which would run it again at once)."""
    with running(tmp_path, monkeypatch, unique("work") + "-poison") as run:
        failing = run.send({"fail": "always"})
        [first] = run.wait_reports(1)
        assert (first["id"], first["dequeue_count"]) == (failing, 1)
        wait_until("the failed run", lambda: "(Failed," in run.host.stderr() or None, run.host)
        sentinel = run.send({"note": "after the failure"})
        second = run.wait_reports(2)[1]
        assert second["id"] == sentinel  # the failed message did not come back first
        wait_until("the sentinel deleted", lambda: visible_count(run.work) == 1 or None,
                   run.host)
        assert run.work.peek_messages() == []  # the failed one is there, invisible
        assert visible_count(run.poison) is None  # no work-...-poison-poison
        assert run.reports.peek_messages() == []
