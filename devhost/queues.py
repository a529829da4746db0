"""Queue-triggered functions, run as the Functions host's Queue storage extension runs them.

Microsoft's "Azure Queue storage trigger for Azure Functions" and the host.json
``extensions.queues`` reference describe what this does, one listener per
``queueTrigger`` function:

- Polling: a message found, the next poll follows after 100 ms; none, after
  about 200 ms, then a randomized exponential back-off up to
  ``maxPollingInterval`` ("Polling algorithm"). Azure's default maximum is one
  minute (this app's host.json sets 2 s, so a push waits at most that on
  Azure); locally it is at most ``LOCAL_MAX_POLLING_SECONDS`` (250 ms) whatever
  host.json says, so a push queued on an idle local queue reaches the device well
  within a second (the host cannot be woken by another process's enqueue: the
  extension's fast path is for its own output bindings; four GETs a second to a
  loopback Azurite cost next to nothing).
- Concurrency: up to ``batchSize`` (default 16, at most 32) messages fetched
  at once, run concurrently; the next batch is fetched once the ones still
  running drop to ``newBatchThreshold`` (default ``batchSize / 2``, N = 1).
- Each message is received invisible for ten minutes (the extension's
  default while a function runs; it also renews that for longer runs, which
  this host does not). The function succeeds: the message is deleted. It
  raises: the message is made visible again after ``visibilityTimeout``
  (default 0) and its dequeue count rises on the next receipt; once a failed
  attempt had dequeue count ``maxDequeueCount`` (default 5) the message is
  moved to ``<queue>-poison`` (created if need be) instead, logged with its id
  and queue, never its body. A message received with a dequeue count already
  above it (the host stopped mid-run), or one that is no valid base64 when
  ``messageEncoding`` is ``base64`` (the default; extension v5,
  azure-sdk-for-net PR #18326), goes there without a run.
  A queue whose name ends in ``-poison`` (or would be too long with it) has no
  poison queue: a failed message then stays invisible for what is left of its
  ten minutes, whatever its dequeue count, and is not released after
  ``visibilityTimeout``: the extension's source says so in as many words
  (azure-sdk-for-net, Microsoft.Azure.WebJobs.Extensions.Storage.Queues,
  ``QueueProcessor.CompleteProcessingMessageAsync``: "For queues without a
  corresponding poison queue, leave the message invisible when processing fails
  to prevent a fast infinite loop. Specifically, don't call ReleaseMessage";
  ``QueueListenerFactory.CreatePoisonQueueReference``: no poison queue when
  "the queue itself [is] already a poison queue"). A message that would go to
  poison there (past maxDequeueCount, not base64) is likewise left as it is.
- ``queueName`` may be ``%SETTING%`` (resolved from the app settings, then
  lower-cased, as the host does); ``connection`` names the setting holding a
  storage connection string (``AzureWebJobs<connection>`` too). A queue that
  does not exist yet is polled as an empty one.

The function gets what the host sends a Python worker: the body (base64-decoded)
as a string (``dataType: binary``: bytes), and the trigger metadata the
``azure.functions.QueueMessage`` converter reads (``Id``, ``DequeueCount``,
``InsertionTime``, ``ExpirationTime``, ``NextVisibleTime``, ``PopReceipt``,
plus ``QueueTrigger``), typed as the host's gRPC conversion types them
(strings as strings, numbers and dates as JSON). The host also adds the
top-level properties of a JSON body; the v1 converters read none of them, so
they are left out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from devhost.app_index import AppIndexError, QueueTrigger, host_extension
from devhost.logs import function_scope

logger = logging.getLogger("devhost")
# azure-core logs every request at INFO: a poll a second would drown the host's log.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

#: Azure's default maxPollingInterval is a minute; a local run answers faster: at 1 s, a
#: push took 0.2-1.2 s from the SMS to the device (the wait dominated), at 250 ms well
#: under a second.
LOCAL_MAX_POLLING_SECONDS = 0.25
#: The extension's QueuePollingIntervals.Minimum, and its documented first back-off step.
MIN_POLLING_SECONDS = 0.1
#: How long a received message stays invisible while its function runs (the extension's).
RECEIVE_VISIBILITY_SECONDS = 600
POISON_SUFFIX = "-poison"
#: How long stopping waits for running invocations before giving them up.
DRAIN_SECONDS = 10.0
#: Azurite answers in milliseconds or not at all: one quick retry, then the poll's own
#: back-off (azure-core's default of ten retries would hold a stopping host for minutes).
CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.1,
                                  "connection_timeout": 2, "read_timeout": 10}
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]")
_SETTING = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?")


class QueueTriggerError(Exception):
    """A queue trigger cannot listen (its queue name or connection setting); the message
    says why, as the host's indexing error does."""


@dataclass(frozen=True)
class QueueOptions:
    """host.json's ``extensions.queues`` (Azure's defaults, but the local polling maximum)."""

    max_polling_interval: float = LOCAL_MAX_POLLING_SECONDS
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    base64: bool = True


def _timespan(path: Path, name: str, value: Any) -> float:
    """A host.json TimeSpan (``[d.]hh:mm:ss[.fffffff]``) in seconds."""
    found = _TIMESPAN.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise AppIndexError(f"{path}: extensions.queues.{name} must be a time span like 00:00:02")
    days, hours, minutes, seconds, fraction = found.groups()
    return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
            + float(f"0.{fraction or 0}"))


def _count(path: Path, name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AppIndexError(f"{path}: extensions.queues.{name} must be a whole number from "
                            f"{low} to {high}")
    return value


def read_queue_options(root: Path) -> QueueOptions:
    """The app's ``extensions.queues`` from host.json, refused when out of the documented
    ranges (batchSize 1-32, maxPollingInterval at least 100 ms, messageEncoding
    base64|none)."""
    section = host_extension(root, "queues")
    path = root / "host.json"
    defaults = QueueOptions()
    polling = defaults.max_polling_interval
    if "maxPollingInterval" in section:
        polling = _timespan(path, "maxPollingInterval", section["maxPollingInterval"])
        if polling < MIN_POLLING_SECONDS:
            raise AppIndexError(f"{path}: extensions.queues.maxPollingInterval is at least "
                                "00:00:00.100")
        polling = min(polling, LOCAL_MAX_POLLING_SECONDS)
    visibility = defaults.visibility_timeout
    if "visibilityTimeout" in section:
        visibility = _timespan(path, "visibilityTimeout", section["visibilityTimeout"])
    batch = _count(path, "batchSize", section.get("batchSize", defaults.batch_size), 1, 32)
    threshold = section.get("newBatchThreshold", batch // 2)
    threshold = _count(path, "newBatchThreshold", threshold, 0, 10_000)
    dequeues = _count(path, "maxDequeueCount", section.get("maxDequeueCount", 5), 1, 10_000)
    encoding = section.get("messageEncoding", "base64")
    if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
        raise AppIndexError(f"{path}: extensions.queues.messageEncoding is base64 or none")
    return QueueOptions(polling, visibility, batch, threshold, dequeues,
                        encoding.lower() == "base64")


def resolve_queue_name(raw: str) -> str:
    """``queueName`` with each ``%SETTING%`` replaced from the app settings, lower-cased and
    checked against Azure's queue naming rules, as the host does when it indexes."""
    def setting(found: re.Match[str]) -> str:
        value = os.environ.get(found[1])
        if not value:
            raise QueueTriggerError(f"'%{found[1]}%' does not resolve to a value.")
        return value

    name = _SETTING.sub(setting, raw).lower()
    if not (3 <= len(name) <= 63 and _QUEUE_NAME.fullmatch(name)):
        raise QueueTriggerError(f"Invalid queue name: {name}. A queue name has 3-63 lowercase "
                                "letters, digits and single hyphens, starting and ending with "
                                "a letter or digit.")
    return name


def connection_string(setting: str) -> str:
    """The storage connection string ``connection`` names (or ``AzureWebJobs<name>``)."""
    value = os.environ.get(setting) or os.environ.get(f"AzureWebJobs{setting}")
    if not value:
        raise QueueTriggerError(f"Storage account connection string '{setting}' does not exist. "
                                "Make sure that it is a defined App Setting.")
    parts = {k.strip().lower() for k, _, _ in (p.partition("=") for p in value.split(";"))}
    if "queueendpoint" not in parts and parts & {"tableendpoint", "blobendpoint"}:
        raise QueueTriggerError(f"The connection string in '{setting}' names no QueueEndpoint.")
    return value


def _json_time(moment: datetime | None) -> str | None:
    # The host's gRPC conversion sends a DateTimeOffset as JSON, Json.NET's ISO 8601 form.
    return None if moment is None else json.dumps(moment.isoformat())


def trigger_input(protos: ModuleType, trigger: QueueTrigger, message: QueueMessage,
                  body: bytes) -> tuple[Any, dict[str, Any]]:
    """The trigger's ParameterBinding and the trigger metadata, as the host sends them."""
    typed = protos.TypedData
    value = (typed(bytes=body) if trigger.binary
             else typed(string=body.decode("utf-8", errors="replace")))
    metadata = {"QueueTrigger": value, "Id": typed(string=message.id),
                "DequeueCount": typed(json=json.dumps(message.dequeue_count)),
                "PopReceipt": typed(string=message.pop_receipt or "")}
    for name, moment in (("InsertionTime", message.inserted_on),
                         ("ExpirationTime", message.expires_on),
                         ("NextVisibleTime", message.next_visible_on)):
        if (text := _json_time(moment)) is not None:
            metadata[name] = typed(json=text)
    return protos.ParameterBinding(name=trigger.param, data=value), metadata


#: Runs one invocation: the InvocationRequest in, the runtime's InvocationResponse out.
Invoke = Callable[[Any], Awaitable[Any]]


class QueueListener:
    """Polls one function's queue and runs the function on each message, until ``stop``."""

    def __init__(self, name: str, function_id: str, trigger: QueueTrigger, queue_name: str,
                 connection: str, options: QueueOptions, protos: ModuleType,
                 invoke: Invoke) -> None:
        self.name = name
        self.queue_name = queue_name
        self._function_id = function_id
        self._trigger = trigger
        self._options = options
        self._protos = protos
        self._invoke = invoke
        self._queue = QueueClient.from_connection_string(connection, queue_name,
                                                         **CLIENT_OPTIONS)
        poison = queue_name + POISON_SUFFIX
        self._poison: QueueClient | None = None
        if not queue_name.endswith(POISON_SUFFIX) and len(poison) <= 63:
            self._poison = QueueClient.from_connection_string(connection, poison,
                                                              **CLIENT_OPTIONS)
        self._running: set[asyncio.Task[None]] = set()
        self._fewer = asyncio.Event()  # set whenever a run ends
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._unreachable = False  # said once per outage

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name=f"queue listener {self.name}")
        self._poller.add_done_callback(self._ended)

    def _ended(self, poller: asyncio.Task[None]) -> None:
        if not poller.cancelled() and (error := poller.exception()) is not None:
            logger.error("The listener of function '%s' on queue '%s' stopped: %r", self.name,
                         self.queue_name, error, exc_info=error)

    async def _poll(self) -> None:
        backoff = 0
        while not self._stopping.is_set():
            messages = await self._receive()
            if messages:
                backoff = 0
                delay = MIN_POLLING_SECONDS
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                while (len(self._running) > self._options.new_batch_threshold
                       and not self._stopping.is_set()):
                    self._fewer.clear()
                    await self._fewer.wait()
            else:  # randomized exponential back-off, as the extension's
                backoff += 1
                delay = min(self._options.max_polling_interval,
                            MIN_POLLING_SECONDS * 2 ** min(backoff, 20) * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._fewer.set()

    async def _receive(self) -> list[QueueMessage]:
        try:
            pages = self._queue.receive_messages(
                messages_per_page=self._options.batch_size,
                max_messages=self._options.batch_size,
                visibility_timeout=RECEIVE_VISIBILITY_SECONDS)
            messages = [message async for message in pages]
        except ResourceNotFoundError:
            return []  # no queue yet: nothing to run, as for an empty one
        except AzureError as error:
            if not self._unreachable:
                logger.warning("Queue '%s' of function '%s' cannot be read (%s); retrying",
                               self.queue_name, self.name, type(error).__name__)
            self._unreachable = True
            return []
        if self._unreachable:
            logger.info("Queue '%s' of function '%s' answers again", self.queue_name, self.name)
            self._unreachable = False
        return messages

    def _body(self, message: QueueMessage) -> bytes | None:
        """The message's bytes, None when ``messageEncoding`` is base64 and it is not."""
        text = message.content or ""
        if not self._options.base64:
            return text.encode("utf-8")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None

    async def _process(self, message: QueueMessage) -> None:
        try:
            if message.dequeue_count > self._options.max_dequeue_count:
                await self._to_poison(message, "it was dequeued more than maxDequeueCount times")
                return
            body = self._body(message)
            if body is None:
                await self._to_poison(message, "its body is not base64 (messageEncoding)")
                return
            try:
                succeeded = await self._run(message, body)
            except Exception:  # the host's own failure: the message is retried all the same
                logger.exception("Message '%s' of queue '%s' could not be run", message.id,
                                 self.queue_name)
                succeeded = False
            if succeeded:
                await self._queue.delete_message(message.id, message.pop_receipt)
            elif self._poison is None:
                # No poison queue (a -poison queue's own listener): left invisible, not
                # released, as QueueProcessor.CompleteProcessingMessageAsync leaves it.
                pass
            elif message.dequeue_count >= self._options.max_dequeue_count:
                await self._to_poison(message, None)
            else:
                await self._queue.update_message(
                    message.id, message.pop_receipt,
                    visibility_timeout=round(self._options.visibility_timeout))
        except AzureError as error:
            logger.error("Message '%s' of queue '%s' could not be completed (%s); it becomes "
                         "visible again when its visibility timeout ends", message.id,
                         self.queue_name, type(error).__name__)

    async def _run(self, message: QueueMessage, body: bytes) -> bool:
        """One invocation; True when the function succeeded."""
        protos = self._protos
        invocation_id = str(uuid.uuid4())
        binding, metadata = trigger_input(protos, self._trigger, message, body)
        invocation = protos.InvocationRequest(
            invocation_id=invocation_id, function_id=self._function_id,
            input_data=[binding], trigger_metadata=metadata)
        with function_scope(self.name, invocation_id):
            logger.debug("Executing 'Functions.%s' (Reason='New queue message detected on "
                         "'%s'.', Id=%s)", self.name, self.queue_name, invocation_id)
            started = time.perf_counter()
            result = await self._invoke(invocation)
            elapsed = (time.perf_counter() - started) * 1000
            if result.result.status != protos.StatusResult.Success:
                error = result.result.exception
                logger.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms); message "
                             "'%s' dequeued %d time(s)\n%s\n%s", self.name, invocation_id,
                             elapsed, message.id, message.dequeue_count, error.message,
                             error.stack_trace)
                return False
            logger.debug("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
                         self.name, invocation_id, elapsed)
            return True

    async def _to_poison(self, message: QueueMessage, why: str | None) -> None:
        """Copy the message as it is (still encoded) to ``<queue>-poison``, then delete it."""
        if self._poison is None:
            return
        reason = f" ({why})" if why else ""
        logger.warning("Message has reached MaxDequeueCount of %d. Moving message '%s' to queue "
                       "'%s'.%s", self._options.max_dequeue_count, message.id,
                       self._poison.queue_name, reason)
        with contextlib.suppress(ResourceExistsError):
            await self._poison.create_queue()
        await self._poison.send_message(message.content)
        await self._queue.delete_message(message.id, message.pop_receipt)

    async def stop(self) -> None:
        """Stop polling, let running invocations finish (up to ``DRAIN_SECONDS``), close."""
        self._stopping.set()
        self._fewer.set()
        if self._poller is not None:
            # A receive in flight may be retrying an Azurite that is gone: stop it now
            # rather than wait out its retries (polling holds no message yet).
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
        await self._queue.close()
        if self._poison is not None:
            await self._poison.close()
