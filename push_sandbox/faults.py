"""Failures the double answers on purpose, so the app's retries can be tested.

What each status means is Notification Hubs': 429 throttled, with ``Retry-After``
(https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-push-notification-faq,
"throttling"; azure-notificationhubs-dotnet issue 224); 403 quota exceeded
(https://learn.microsoft.com/en-us/rest/api/notificationhubs/send-template-notification,
"Response codes"); 401 a refused key (the same table); 500 and 503 the
service's own failures, which the SDKs retry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import HubError

Operation = Literal["send", "installation", "any"]
STATUSES = {
    401: "Unauthorized: the access key was incorrect (a fault the double was told to play).",
    403: "QuotaExceeded: the namespace's quota is spent (a fault the double was told to play).",
    429: "Throttled: too many requests (a fault the double was told to play).",
    500: "InternalServerError (a fault the double was told to play).",
    503: "ServiceUnavailable (a fault the double was told to play).",
}
OPERATIONS = ("send", "installation", "any")
MAX_COUNT = 10_000
MAX_RETRY_AFTER = 3600
#: Faults in force at once (sandbox-only bound: the list is the double's memory).
MAX_FAULTS = 100


@dataclass
class Fault:
    """Answer the next ``count`` requests of ``operation`` (None: all, until cleared)."""

    status: int
    count: int | None = 1
    operation: Operation = "send"
    retry_after: int = 1

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """From ``{"status", "count"?, "operation"?, "retry_after"?}``; ValueError says why."""
        if not isinstance(data, dict) or set(data) - {"status", "count", "operation",
                                                       "retry_after"}:
            raise ValueError('expected {"status": 401|403|429|500|503, "count"?: N|null, '
                             '"operation"?: "send"|"installation"|"any", "retry_after"?: s}')
        status, count = data.get("status"), data.get("count", 1)
        operation, retry_after = data.get("operation", "send"), data.get("retry_after", 1)
        if status not in STATUSES or isinstance(status, bool):
            raise ValueError(f"status must be one of {', '.join(map(str, STATUSES))}")
        if count is not None and (not _whole(count) or not 1 <= count <= MAX_COUNT):
            raise ValueError(f"count must be 1 to {MAX_COUNT}, or null for every request")
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
        if not _whole(retry_after) or not 0 <= retry_after <= MAX_RETRY_AFTER:
            raise ValueError(f"retry_after must be 0 to {MAX_RETRY_AFTER} seconds")
        return cls(status, count, operation, retry_after)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def error(self) -> HubError:
        headers = {"Retry-After": str(self.retry_after)} if self.status in (429, 503) else {}
        return HubError(self.status, STATUSES[self.status], headers)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Faults:
    """The faults in force, oldest first; each request takes from the first that fits."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """ValueError once ``MAX_FAULTS`` are in force (clear them, or let them run out)."""
        if len(self.pending) >= MAX_FAULTS:
            raise ValueError(f"at most {MAX_FAULTS} faults are in force at once: clear them "
                             "(DELETE /_control/faults) first")
        self.pending.append(fault)

    def clear(self) -> None:
        self.pending.clear()

    def take(self, operation: Operation) -> Fault | None:
        for fault in self.pending:
            if fault.operation in (operation, "any"):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self.pending.remove(fault)
                return fault
        return None
