"""The Notification Hubs double's state: hubs, installations, what each device received.

Everything the REST routes (server.py) and the Devices view change lives here,
so a test in the same process reads it directly (:meth:`NotificationHubsDouble.received`,
:meth:`wait_for_pushes`), and another process over ``/notificationhubs/_control/``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import payloads
from .errors import HubError
from .faults import Fault, Faults, Operation
from .feed import Broadcast
from .sas import DEFAULT_RIGHTS, FULL_RULE, Rule
from .tags import Match, own_tags

log = logging.getLogger(__name__)

DEFAULT_HUB = "local-hub"
#: Pushes kept (the oldest are forgotten), by default.
DEFAULT_HISTORY = 1000
#: Tiers (https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-push-notification-faq,
#: "What is the price model"): the devices each includes per namespace, Free 500, Basic
#: 200,000, Standard 10 million; a namespace past its tier's devices refuses the next
#: new installation with 403, as Notification Hubs answers a spent quota
#: (https://learn.microsoft.com/en-us/rest/api/notificationhubs/create-overwrite-installation,
#: "Response codes"). Only Standard answers a send with the notification's id in ``Location``.
DEVICE_LIMITS = {"Free": 500, "Basic": 200_000, "Standard": 10_000_000}
TIERS = tuple(DEVICE_LIMITS)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NotificationHubsDouble:
    """A local stand-in for one Notification Hubs namespace's data plane.

    hubs: the hubs' names. rules: policy name -> :class:`Rule` (default: the two
    rules every hub has, with random keys). tier: Free, Basic or Standard.
    history: how many pushes to keep.
    """

    def __init__(self, hubs: Iterable[str] = (DEFAULT_HUB,),
                 rules: Mapping[str, Rule] | None = None, *, tier: str = "Free",
                 history: int = DEFAULT_HISTORY) -> None:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        if history < 1:
            raise ValueError("history must keep at least one push")
        self.hubs: dict[str, dict[str, dict[str, Any]]] = {hub: {} for hub in hubs}
        if not self.hubs:
            raise ValueError("the double needs at least one hub")
        self.rules: dict[str, Rule] = dict(rules) if rules is not None else {
            name: Rule(secrets.token_urlsafe(32), rights)
            for name, rights in DEFAULT_RIGHTS.items()}
        self.tier = tier
        self.pushes: deque[dict[str, Any]] = deque(maxlen=history)
        self.faults = Faults()
        self.events = Broadcast()
        #: Every send and installation request that reached the double (faulted ones too).
        self.requests: dict[str, int] = {"send": 0, "installation": 0}
        self._ids = itertools.count(1)
        self._changed: asyncio.Event | None = None
        #: Set once a caller waits in :meth:`wait_for_pushes` (a test can see it is waited on).
        self.waited = asyncio.Event()

    # --- what the app is told ---------------------------------------------------------

    def connection_string(self, endpoint: str, rule: str = FULL_RULE) -> str:
        """The SAS connection string for ``rule`` at ``endpoint`` (this double's URL)."""
        return (f"Endpoint={endpoint};SharedAccessKeyName={rule};"
                f"SharedAccessKey={self.rules[rule].key}")

    # --- installations -----------------------------------------------------------------

    def installations(self, hub: str) -> dict[str, dict[str, Any]]:
        """The hub's installations by id, or HubError 404 for a hub that does not exist."""
        found = self.hubs.get(hub)
        if found is None:
            raise HubError(404, f"No notification hub is named {hub[:80]!r} in this namespace.")
        return found

    def put(self, hub: str, installation: dict[str, Any]) -> None:
        kept = self.installations(hub)
        installation_id = installation["installationId"]
        limit = DEVICE_LIMITS[self.tier]
        if installation_id not in kept and self.devices() >= limit:
            raise HubError(403, f"QuotaExceeded: a {self.tier} namespace holds {limit:,} "
                                "devices at most.")
        kept[installation_id] = {**installation, "lastUpdate": now()}
        log.info("installation %s (%s) registered on %s", installation_id,
                 installation["platform"], hub)
        self.events.publish("device", self.device_view(hub, kept[installation_id]))

    def devices(self) -> int:
        """Installations in all the namespace's hubs (what a tier's limit counts)."""
        return sum(len(kept) for kept in self.hubs.values())

    def delete(self, hub: str, installation_id: str) -> None:
        if self.installations(hub).pop(installation_id, None) is not None:
            log.info("installation %s deleted from %s", installation_id, hub)
            self.events.publish("device-removed", {"hub": hub, "installationId": installation_id})

    @staticmethod
    def device_view(hub: str, installation: Mapping[str, Any]) -> dict[str, Any]:
        return {"hub": hub, **installation}

    # --- sends ---------------------------------------------------------------------------

    def send(self, hub: str, kind: payloads.Format, document: Mapping[str, Any],
             match: Match | None, expression: str | None,
             headers: Mapping[str, str]) -> tuple[str, int]:
        """Deliver one notification to every device it targets: (its id, devices reached)."""
        notification_id = uuid.uuid4().hex
        reached = 0
        for installation in list(self.installations(hub).values()):
            for payload, push_headers in self._payloads(kind, document, installation, match,
                                                        headers):
                self._record(hub, notification_id, kind, expression, installation, payload,
                             push_headers)
                reached += 1
        log.info("notification %s (%s) to %r reached %d device(s)", notification_id, kind,
                 expression, reached)
        return notification_id, reached

    @staticmethod
    def _payloads(kind: payloads.Format, document: Mapping[str, Any],
                  installation: Mapping[str, Any], match: Match | None,
                  headers: Mapping[str, str]) -> Iterable[tuple[dict[str, Any], dict[str, str]]]:
        tags = frozenset(installation["tags"]) | own_tags(installation["installationId"],
                                                           installation.get("userId"))
        platform, channel = installation["platform"], installation["pushChannel"]
        if kind != "template":
            if payloads.NATIVE[kind] == platform and (match is None or match(tags)):
                yield payloads.native(kind, document, channel), payloads.apns_headers(headers)
            return
        for template in installation.get("templates", {}).values():
            if match is not None and not match(tags | frozenset(template["tags"])):
                continue
            payload = payloads.from_template(platform, template, document, channel)
            if payload is not None:
                yield payload, dict(template["headers"])

    def _record(self, hub: str, notification_id: str, kind: str, expression: str | None,
                installation: Mapping[str, Any], payload: dict[str, Any],
                headers: dict[str, str]) -> None:
        push = {"id": next(self._ids), "notificationId": notification_id, "hub": hub,
                "installationId": installation["installationId"],
                "platform": installation["platform"], "format": kind, "tags": expression,
                "at": now(), "payload": payload, "headers": headers}
        self.pushes.append(push)
        self.events.publish("push", push)
        self._wake()

    # --- what tests read ---------------------------------------------------------------------

    def received(self, installation_id: str, hub: str | None = None) -> list[dict[str, Any]]:
        """The pushes the device ``installation_id`` received (those still kept), oldest first."""
        return [push for push in self.pushes if push["installationId"] == installation_id
                and (hub is None or push["hub"] == hub)]

    async def wait_for_pushes(self, installation_id: str, count: int = 1) -> list[dict[str, Any]]:
        """The device's pushes once it has at least ``count`` (bound it: ``asyncio.timeout``)."""
        while len(found := self.received(installation_id)) < count:
            if self._changed is None:
                self._changed = asyncio.Event()
            self.waited.set()
            await self._changed.wait()
        return found

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def take_fault(self, operation: Operation) -> Fault | None:
        self.requests[operation] += 1
        fault = self.faults.take(operation)
        if fault is not None:
            self.events.publish("controls", self.controls())
        return fault

    def controls(self) -> dict[str, Any]:
        return {"faults": [fault.to_json() for fault in self.faults.pending]}

    def add_fault(self, fault: Fault) -> None:
        self.faults.add(fault)
        self.events.publish("controls", self.controls())

    def clear_faults(self) -> None:
        self.faults.clear()
        self.events.publish("controls", self.controls())

    def state(self) -> dict[str, Any]:
        """Every device and the pushes kept: the feed's history and ``GET .../state``."""
        return {"devices": [self.device_view(hub, installation)
                            for hub, kept in self.hubs.items() for installation in kept.values()],
                "pushes": list(self.pushes), "tier": self.tier, **self.controls()}

    def reset(self) -> None:
        """Forget installations, pushes and faults (the hubs and keys stay)."""
        for kept in self.hubs.values():
            kept.clear()
        self.pushes.clear()
        self.faults.clear()
        self.events.publish("reset", {})
        self._wake()
