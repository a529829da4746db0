"""Fault injection: make the sandbox fail the way Twilio (or the network) can.

Retry, timeout and error-handling code only runs when something goes wrong;
faults make that happen on demand, deterministically (``count``, a seeded
``probability``) so tests can assert on it.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from http.client import responses
from typing import Literal, get_args

FaultKind = Literal["status", "rate_limit", "delay", "drop", "malformed"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

#: Twilio's code and message for the statuses a "status" fault usually answers.
DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}

# JSON types accepted for each field by Fault.from_json (bool is refused where int is meant).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "status": (int,),
    "code": (int, type(None)),
    "message": (str, type(None)),
    "retry_after": (int,),
    "delay": (int, float),
    "count": (int, type(None)),
    "probability": (int, float),
    "path_contains": (str, type(None)),
    "seed": (int, type(None)),
}


@dataclass
class Fault:
    """One way to fail the next matching REST requests.

    kind: ``status`` (answer ``status`` with a Twilio error body), ``rate_limit``
    (429/20429 with ``Retry-After: retry_after``), ``delay`` (wait ``delay`` seconds,
    then answer normally), ``drop`` (abort the TCP connection, no answer), or
    ``malformed`` (201 whose body is not JSON).
    count: how many requests it hits, counting down as it does; None for all.
    probability: chance of hitting a matching request, drawn from ``random.Random(seed)``.
    path_contains: only requests whose path contains this text match.
    """

    kind: FaultKind
    status: int = 500
    code: int | None = None
    message: str | None = None
    retry_after: int = 1
    delay: float = 1.0
    count: int | None = None
    probability: float = 1.0
    path_contains: str | None = None
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, not {self.kind!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {self.status}")
        if self.retry_after < 0 or self.delay < 0:
            raise ValueError("retry_after and delay must not be negative")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be at least 1 (or None for all), not {self.count}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, not {self.probability}")
        # Not for security: a reproducible sequence of hits is the point.
        self._rng = random.Random(self.seed)  # noqa: S311

    @classmethod
    def from_json(cls, data: object) -> "Fault":
        """A fault from the JSON the control endpoint receives; ValueError when invalid."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault is a JSON object")
        unknown = set(data) - set(_JSON_TYPES)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(map(str, unknown)))}")
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, _JSON_TYPES[name]):
                raise ValueError(f"fault field {name!r} has the wrong type")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        return cls(**dict(data))

    def to_json(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def error(self) -> tuple[int, str]:
        """Twilio code and message a ``status`` fault answers with."""
        default_code, default_message = DEFAULT_ERRORS.get(
            self.status, (self.status, responses.get(self.status, "Error"))
        )
        return self.code or default_code, self.message or default_message

    def matches(self, path: str) -> bool:
        return self.path_contains is None or self.path_contains in path

    def fires(self) -> bool:
        """Whether this matching request is hit (one draw only when it is left to chance)."""
        return self.probability >= 1.0 or self._rng.random() < self.probability


class FaultInjector:
    """The active faults, in the order they were added, and what they have done."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.applied: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear(self) -> None:
        self.faults.clear()

    def reset_counts(self) -> None:
        self.applied.update(dict.fromkeys(FAULT_KINDS, 0))

    def pick(self, path: str) -> Fault | None:
        """The fault that hits a request to ``path`` (the first that matches and fires)."""
        for fault in self.faults:
            if fault.matches(path) and fault.fires():
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                self.applied[fault.kind] += 1
                return fault
        return None
