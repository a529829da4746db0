"""What the sandbox has received and how it misbehaves: everything but its server.

The routes, the console and the simulated traffic read and change this state;
:class:`~twilio_sandbox.sandbox.TwilioSandbox` adds the server's lifecycle on top,
so that nothing here needs the modules that serve it. It keeps the last
``history`` messages, calls and webhooks, so a long run stays bounded.
"""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any

import aiohttp

from . import callbacks
from .app_link import AppLink
from .events import EventHub, Tracked
from .faults import Fault, FaultInjector
from .magic import MODES, VALID_FROM, Check, Mode, checker, delivery_outcome
from .masking import mask
from .media import MediaStore
from .messaging_services import MessagingService
from .recordings import RecordingStore
from .resources import Resource, now, rfc2822
from .status_callbacks import (
    CallbackFault,
    Delivery,
    Timing,
    call_lifecycle,
    call_report,
    callback_method,
    callback_url,
    message_lifecycle,
    message_report,
)
from .twiml_app import TwimlApp
from .webhook_log import WebhookLog

log = logging.getLogger(__name__)

#: How a call is answered: fetch and carry out its TwiML (session, call, auth token).
Play = Callable[[aiohttp.ClientSession, Resource, str], Awaitable[None]]
#: How many messages, calls and webhooks the sandbox keeps (each), by default.
DEFAULT_HISTORY = 1000
#: Statuses a message or call never leaves, even when the task that set them fails after:
#: the final ones among Twilio's message statuses
#: (https://www.twilio.com/docs/messaging/api/message-resource, "Message Status values")
#: and call statuses (https://www.twilio.com/docs/voice/api/call-resource, "Call Status
#: values").
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "read", "canceled",
                            "completed", "busy", "no-answer"})


class SandboxState:
    """The state of a local stand-in for Twilio's REST API (Messages and Calls).

    accounts: account SID -> auth token. api_keys: key SID -> (secret, account SID).
    latency: seconds added before every REST answer. fetch_twiml: after creating a
    call, fetch and "play" its TwiML like Twilio does. history: how many messages,
    calls and webhooks to keep (each); older ones are forgotten. status_callbacks:
    report each step of a message or call to its StatusCallback, at ``timing``.
    mode: how the credentials decide numbers, ``test`` (the magic numbers) or
    ``live-like`` (any valid number; see magic.py).
    """

    def __init__(
        self,
        accounts: Mapping[str, str],
        api_keys: Mapping[str, tuple[str, str]] | None = None,
        *,
        latency: float = 0.0,
        fetch_twiml: bool = True,
        history: int = DEFAULT_HISTORY,
        status_callbacks: bool = True,
        timing: Timing | None = None,
        mode: Mode = "test",
    ) -> None:
        if not accounts:
            raise ValueError("the sandbox needs at least one account")
        api_keys = dict(api_keys or {})
        for key_sid, (_secret, account_sid) in api_keys.items():
            if account_sid not in accounts:
                raise ValueError(f"API key {key_sid} belongs to unknown account {account_sid}")
        if latency < 0:
            raise ValueError("latency must not be negative")
        if history < 1:
            raise ValueError("history must keep at least one item")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.events = EventHub()
        self.history = history
        self.webhooks = WebhookLog(history, self._publisher("webhook"))
        #: Where the app answers, for the console's inbound traffic and app requests.
        self.app = AppLink()
        #: The Twilio number an inbound SMS or call reaches when none is given.
        self.default_number = VALID_FROM
        self.accounts: dict[str, str] = dict(accounts)
        self.api_keys: dict[str, tuple[str, str]] = api_keys
        self._latency = float(latency)
        self.fetch_twiml = fetch_twiml
        self.status_callbacks = status_callbacks
        self.timing = timing or Timing()
        self.mode: Mode = mode
        #: Every status callback request sent, with what the app answered (bounded).
        self.callbacks_sent: list[dict[str, Any]] = []
        self.callback_faults: list[CallbackFault] = []
        self._sequences: dict[str, Iterator[int]] = {}
        self.calls: list[Resource] = []
        #: The TwiML Apps Voice SDK tokens may name, by SID.
        self.twiml_apps: dict[str, TwimlApp] = {}
        self.messages: list[Resource] = []
        #: (line, recipient) pairs where the recipient texted STOP, as Twilio keeps them: the
        #: line is the Twilio number, or the Messaging Service the number is in.
        self.opted_out: set[tuple[str, str]] = set()
        #: The Messaging Services the account has, by SID (see messaging_services.py).
        self.messaging_services: dict[str, MessagingService] = {}
        #: What texters sent with their messages, kept as Twilio keeps media (bounded).
        self.media = MediaStore(history)
        #: What callers said into <Record>, kept as Twilio keeps recordings (bounded).
        self.recordings = RecordingStore(history)
        self.connections_accepted = 0
        self.requests = 0
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.injector = FaultInjector()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dialed: dict[str, asyncio.Event] = {}
        #: Set while the server runs: every request to the app goes through it.
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """Where the sandbox serves (its media URLs point there): known once it serves."""
        raise RuntimeError("the sandbox is not started")

    @property
    def session(self) -> aiohttp.ClientSession:
        """The client session every request to the app goes through (and is logged by)."""
        if self._session is None:
            raise RuntimeError("the sandbox is not started")
        return self._session

    # --- controls ------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added before every REST answer."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = float(seconds)
        self.controls_changed()

    def controls(self) -> dict[str, Any]:
        """The faults, their counts and the latency: what the console's controls show."""
        return {
            "faults": [fault.to_json() for fault in self.faults],
            "faults_applied": dict(self.faults_applied),
            "callback_faults": [fault.to_json() for fault in self.callback_faults],
            "latency": self.latency,
        }

    def controls_changed(self) -> None:
        self.events.publish("controls", self.controls())

    @property
    def faults(self) -> list[Fault]:
        """The active faults (a fault with a ``count`` leaves once used up)."""
        return self.injector.faults

    @property
    def faults_applied(self) -> dict[str, int]:
        """How many requests each fault kind has hit since start or reset."""
        return self.injector.applied

    def add_fault(self, fault: Fault) -> None:
        self.injector.add(fault)
        self.controls_changed()

    def clear_faults(self) -> None:
        self.injector.clear()
        self.controls_changed()

    def add_callback_fault(self, fault: CallbackFault) -> None:
        self.callback_faults.append(fault)
        self.controls_changed()

    def clear_callback_faults(self) -> None:
        self.callback_faults.clear()
        self.controls_changed()

    def _callback_faults_for(self, resource: str) -> list[CallbackFault]:
        """The callback faults that hit this resource, counting them down."""
        picked = [f for f in self.callback_faults if f.resource in (None, resource)]
        for fault in picked:
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self.callback_faults.remove(fault)
        if picked:
            self.controls_changed()
        return picked

    def reset(self) -> None:
        """Forget resources, faults and counters (latency stays); cancel TwiML fetches."""
        for task in self._tasks:
            task.cancel()
        for done in self._dialed.values():
            done.set()
        self._dialed.clear()
        self.calls.clear()
        self.messages.clear()
        self.media.clear()
        self.recordings.clear()
        self.opted_out.clear()
        self.callbacks_sent.clear()
        self._sequences.clear()
        self.callback_faults.clear()
        self.webhooks.clear()
        self.injector.clear()
        self.injector.reset_counts()
        self.connections_accepted = 0
        self.requests = 0
        self.events.publish("reset", self.controls())

    def state(self) -> dict[str, Any]:
        """Everything a test may assert on, as JSON-ready data."""
        return {
            "calls": list(self.calls),
            "messages": list(self.messages),
            "opted_out": self.opt_outs(),
            "connections_accepted": self.connections_accepted,
            "requests": self.requests,
            "faults_applied": dict(self.faults_applied),
            "faults": [fault.to_json() for fault in self.faults],
            "status_callbacks": list(self.callbacks_sent),
            "callback_faults": [fault.to_json() for fault in self.callback_faults],
            "latency": self.latency,
            "twiml_apps": [app._asdict() for app in self.twiml_apps.values()],
            "messaging_services": [s.to_json() for s in self.messaging_services.values()],
            "mode": self.mode,
            **(self.recordings.state(self.base_url) if self._session is not None
               else {"recordings": [], "transcriptions": []}),
            "feed": {"subscribers": self.events.subscribers,
                     "waiting_on_client": self.events.waiting_on_client},
        }

    # --- requests ------------------------------------------------------------

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count a REST request from its arrival until it is answered (or abandoned)."""
        self.requests += 1
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    # Plain timeout arguments (here and in wait_for_twiml): the simplest call for a test.
    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once no REST request is being answered.

        What a test awaits after its client gave up on a slow answer: the sandbox
        still finishes that request (and records its resource), as Twilio would.
        """
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    # --- resources -----------------------------------------------------------

    def _publisher(self, kind: str) -> Callable[[Tracked], None]:
        def publish(record: Tracked) -> None:
            self.events.publish(kind, record.view())
        return publish

    def _keep(self, kind: str, items: list[Resource], item: Resource) -> Tracked:
        """Store ``item`` as a record that reports its changes; forget the oldest beyond history."""
        record = Tracked(item, self._publisher(kind))
        items.append(record)
        if len(items) > self.history:
            for old in items[: len(items) - self.history]:
                self._dialed.pop(old["sid"], None)
            del items[: len(items) - self.history]
        record.changed()
        return record

    def opt_outs(self) -> list[dict[str, str]]:
        """Who texted STOP to which number, as ``state`` and the console show it."""
        return [{"number": number, "recipient": recipient}
                for number, recipient in sorted(self.opted_out)]

    def opt_out(self, number: str, recipient: str, opted_out: bool) -> None:
        """``recipient`` texted STOP (or START) to ``number``: Twilio's own opt-out list
        (https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-),
        for the number's Messaging Service when it is in one: the opt-out then holds for
        every number of its pool (https://help.twilio.com/articles/223133627)."""
        line = self._line(number)
        if opted_out:
            self.opted_out.add((line, recipient))
        else:
            self.opted_out.discard((line, recipient))
        self.events.publish("opt-out", {"number": line, "recipient": recipient,
                                        "opted_out": opted_out})

    def is_opted_out(self, sender: str | None, recipient: str, service: str | None = None) -> bool:
        """Whether Twilio refuses (21610, https://www.twilio.com/docs/api/errors/21610) a
        message from ``sender``, or through the Messaging Service ``service``, to
        ``recipient``: one who texted STOP to that line
        (https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-)."""
        line = (service if service in self.messaging_services
                else self._line(sender or self.sender_for(service)))
        return (line, recipient) in self.opted_out

    @property
    def check_numbers(self) -> Check:
        """How this sandbox's mode decides a request's numbers (magic.py)."""
        return checker(self.mode)

    def _line(self, number: str) -> str:
        """What an opt-out to ``number`` holds for: its Messaging Service, else itself."""
        service = self.service_of(number)
        return service.sid if service else number

    # --- Messaging Services ----------------------------------------------------

    def add_messaging_service(self, service: MessagingService) -> None:
        """Know (or redefine) a Messaging Service; a number is in one service at most."""
        for other in self.messaging_services.values():
            taken = set(other.numbers) & set(service.numbers)
            if other.sid != service.sid and taken:
                raise ValueError(f"{', '.join(sorted(taken))} already in {other.sid}")
        self.messaging_services[service.sid] = service

    def service_of(self, number: str | None) -> MessagingService | None:
        """The Messaging Service ``number`` is in, if any."""
        return next((s for s in self.messaging_services.values() if number in s.numbers), None)

    def sender_for(self, service_sid: str | None) -> str:
        """The number a Messaging Service sends from: one of its Sender Pool ("a defined
        pool of senders",
        https://www.twilio.com/docs/messaging/tutorials/send-messages-with-messaging-services),
        chosen once the message is queued
        (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
        Which one Twilio picks (its sender-selection features) is not reproduced: the
        pool's first is not documented by Twilio, chosen because it is deterministic for
        tests. A service the sandbox was not told of has the sandbox's number alone
        (sandbox-only)."""
        service = self.messaging_services.get(service_sid or "")
        return service.numbers[0] if service else self.default_number

    def record_message(self, message: Resource) -> Resource:
        """Store a message (created, received or a reply); the stored record is returned."""
        message = self._keep("message", self.messages, message)
        log.info(
            "message %s %s: %s -> %s: %r",
            message["sid"],
            message["status"],
            mask(message["from"]) if message["from"] else message["messaging_service_sid"],
            mask(message["to"]),
            message["body"],
        )
        delivery = self._delivery(message, "message")
        # A TwiML reply goes out like any message, though nobody asked for its reports:
        # Twilio creates a Message when it "executes a <Message> TwiML instruction"
        # (direction ``outbound-reply``, https://www.twilio.com/docs/messaging/api/message-resource)
        # and its status lifecycle applies to "Outbound TwiML-generated messages"
        # (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
        if delivery is not None or message["direction"] == "outbound-reply":
            outcome = delivery_outcome("message", message["to"])
            failure = (outcome.status, outcome.code) if outcome else None
            sender = self.sender_for(message["messaging_service_sid"])
            self._spawn(message_lifecycle(message, delivery, self.timing, failure, sender),
                        f"report {message['sid']}", message)
        return message

    def _delivery(self, resource: Resource, kind: str) -> Delivery | None:
        """How the resource's status callbacks go out; None if it asked for none."""
        url = callback_url(resource) if self.status_callbacks else None
        if url is None or self._session is None:
            return None
        return Delivery(self._session, url, self.accounts[resource["account_sid"]],
                        resource["sid"], self._callback_faults_for(kind), self._sent_callback,
                        lambda work: self._spawn(work, "late callback"),
                        method=callback_method(resource))

    def _sequence(self, sid: str) -> int:
        """The next SequenceNumber of a call's status callbacks."""
        return next(self._sequences.setdefault(sid, itertools.count()))

    def report_pushed(self, resource: Resource) -> None:
        """Report a status pushed by hand (the console) to the resource's StatusCallback."""
        is_call = resource["sid"].startswith("CA")
        delivery = self._delivery(resource, "call" if is_call else "message")
        if delivery is None:
            return
        if is_call:
            extra = ({"CallDuration": str(resource.get("duration") or 0)}
                     if resource["status"] in ("completed", "busy", "no-answer", "failed",
                                               "canceled") else {})
            params = call_report(resource, resource["status"], self._sequence(resource["sid"]),
                                 extra)
        else:
            params = message_report(resource, resource["status"], resource.get("error_code"))
        self._spawn(delivery.report(params), f"pushed report {resource['sid']}")

    def _sent_callback(self, entry: dict[str, Any]) -> None:
        """Journal one status callback request (its answer is filled in as it comes)."""
        self.callbacks_sent.append(entry)
        if len(self.callbacks_sent) > 4 * self.history:  # about 4 reports per resource
            del self.callbacks_sent[: len(self.callbacks_sent) - 4 * self.history]

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` in the background, as the sandbox's own (cancelled on reset and
        stop; an error ends in the log)."""
        return self._spawn(work, name)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str,
               resource: Resource | None = None) -> asyncio.Task[None]:
        """Run ``work`` in the background; if it fails, log why and fail ``resource``."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda ended: self._ended(ended, resource))
        return task

    def _ended(self, task: asyncio.Task[None], resource: Resource | None) -> None:
        """A background task's error, whatever it is, ends in the log and on its resource:
        a message or call never stays half-way (``initiated``) behind a dead task.
        Sandbox-only: ``failed`` for the sandbox's own fault is not documented by Twilio,
        chosen because it is the status that ends a message or call that went wrong."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        log.error("%s: the sandbox failed", task.get_name(), exc_info=error)
        if resource is not None and resource["status"] not in FINAL_STATUSES:
            resource.update(status="failed", date_updated=rfc2822(now()),
                            error=f"sandbox error: {error!r}")

    def add_twiml_app(self, app: TwimlApp) -> None:
        """Know a TwiML App, as one created in Twilio's console: tokens may name it."""
        if app.account_sid not in self.accounts:
            raise ValueError(f"TwiML App {app.sid} belongs to unknown account {app.account_sid}")
        self.twiml_apps[app.sid] = app

    def record_call(self, call: Resource, play: Play | None = None) -> Resource:
        """Store a created call and, like Twilio, start answering it in the background.

        ``play`` answers it (default: fetch its TwiML and record what is heard).
        Returns the stored record, which the background work goes on changing.
        """
        call = self._keep("call", self.calls, call)
        log.info("call %s queued: %s -> %s", call["sid"], mask(call["from"]), mask(call["to"]))
        request = call["request"]
        session = self._session
        if session is None:
            return call
        playable = ((play is not None or self.fetch_twiml)
                    and bool(request.get("Url") or request.get("Twiml")))
        delivery = self._delivery(call, "call")
        outcome = delivery_outcome("call", call["to"])
        if not playable and delivery is None and outcome is None:
            # An ApplicationSid call, or no fetching: the call stays queued. Sandbox-only
            # (a switch of the sandbox's; Twilio always goes on with a queued call).
            return call
        done = asyncio.Event()
        self._dialed[call["sid"]] = done

        async def answer() -> bool:
            if playable:
                await self._dial(call, session, play)
            return call["status"] != "failed"

        async def run() -> None:
            if delivery is None and outcome is None:
                await answer()
            else:
                failure = outcome.status if outcome else None
                await call_lifecycle(call, delivery, self.timing, failure, answer,
                                     lambda: self._sequence(call["sid"]))

        # Done once the task ends, failed or not, and after its error is on the call.
        self._spawn(run(), f"dial {call['sid']}", call).add_done_callback(lambda _: done.set())
        return call

    async def _dial(self, call: Resource, session: aiohttp.ClientSession,
                    play: Play | None) -> None:
        try:
            await (play or callbacks.dial)(session, call, self.accounts[call["account_sid"]])
        except Exception as exc:
            log.exception("call %s: the sandbox failed answering it", call["sid"])
            call.update(status="failed", error=f"sandbox error: {exc!r}")

    async def wait_for_twiml(self, call_sid: str, timeout: float = 5.0) -> Resource:  # noqa: ASYNC109
        """The call once its TwiML has been fetched and read (or has failed to be).

        Returns at once for a call with nothing to fetch. Raises KeyError for an
        unknown call, TimeoutError after ``timeout`` seconds.
        """
        call = next((call for call in self.calls if call["sid"] == call_sid), None)
        if call is None:
            raise KeyError(call_sid)
        done = self._dialed.get(call_sid)
        if done is not None:
            async with asyncio.timeout(timeout):
                await done.wait()
        return call

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
