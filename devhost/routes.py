"""HTTP trigger routes: the Functions host's route templates and how a request picks one.

The host routes with ASP.NET Core route templates (``items/{id:int}``,
``files/{name?}``, ``static/{*path}``), literal segments matched without regard
to case in ASCII only (long s U+017F is not ``s``, the Kelvin sign not ``K``), a
trailing slash ignored, and the most specific template winning when
several match. This module implements the subset that function apps commonly
use; a template outside it is rejected at startup instead of silently routing
differently from Azure.
"""

import itertools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower case as ASP.NET Core routing compares (ordinal, ASCII only): no Unicode folding."""
    return text.translate(_ASCII_LOWER)


class RouteTemplateError(ValueError):
    """A route template this host cannot route like the Functions host would."""


def _is_int(value: str, bits: int) -> bool:
    if not re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII):
        return False
    return -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)


def _is_float(value: str) -> bool:
    if not value.isascii():  # float() would take other scripts' digits
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_guid(value: str) -> bool:
    if not value.isascii():
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if not value.isascii():
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _int_args(args: Sequence[str], count: int, name: str) -> list[int]:
    if len(args) != count or not all(_is_int(arg, 64) for arg in args):
        raise RouteTemplateError(f"route constraint {name} takes {count} integer argument(s)")
    return [int(arg) for arg in args]


Check = Callable[[str], bool]


def _constraint(name: str, args: Sequence[str]) -> Check:
    """A value check for one ``:name`` or ``:name(args)`` constraint."""
    simple: dict[str, Check] = {
        "int": lambda v: _is_int(v, 32),
        "long": lambda v: _is_int(v, 64),
        "bool": lambda v: ascii_lower(v) in ("true", "false"),
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _is_guid,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
    }
    key = ascii_lower(name)
    if key in simple:
        if args:
            raise RouteTemplateError(f"route constraint {name} takes no arguments")
        return simple[key]
    if key == "minlength":
        (low,) = _int_args(args, 1, name)
        return lambda v: len(v) >= low
    if key == "maxlength":
        (high,) = _int_args(args, 1, name)
        return lambda v: len(v) <= high
    if key == "length":
        if len(args) == 1:
            (low,) = (high,) = _int_args(args, 1, name)
        else:
            low, high = _int_args(args, 2, name)
        return lambda v: low <= len(v) <= high
    if key == "min":
        (low,) = _int_args(args, 1, name)
        return lambda v: _is_int(v, 64) and int(v) >= low
    if key == "max":
        (high,) = _int_args(args, 1, name)
        return lambda v: _is_int(v, 64) and int(v) <= high
    if key == "range":
        low, high = _int_args(args, 2, name)
        return lambda v: _is_int(v, 64) and low <= int(v) <= high
    raise RouteTemplateError(f"unsupported route constraint: {name}")


@dataclass(frozen=True)
class _Param:
    name: str
    checks: tuple[Check, ...] = ()
    optional: bool = False
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return bool(value) and all(check(value) for check in self.checks)


_PARAM = re.compile(
    r"(?P<star>\*{0,2})(?P<name>[^:?*=(){}]+)(?P<constraints>(?::[^:?{}]+)*)(?P<optional>\?)?"
)
_CONSTRAINT = re.compile(r"(?P<name>[A-Za-z]+)(?:\((?P<args>[^()]*)\))?")


def _parse_param(inner: str) -> _Param:
    found = _PARAM.fullmatch(inner)
    if found is None:
        raise RouteTemplateError(f"unsupported route parameter: {{{inner}}}")
    checks = []
    for text in filter(None, found["constraints"].split(":")):
        constraint = _CONSTRAINT.fullmatch(text)
        if constraint is None:
            raise RouteTemplateError(f"unsupported route constraint: {text}")
        args = [a.strip() for a in constraint["args"].split(",")] if constraint["args"] else []
        checks.append(_constraint(constraint["name"], args))
    catch_all = bool(found["star"])
    if catch_all and found["optional"]:
        raise RouteTemplateError(f"a catch-all parameter is already optional: {{{inner}}}")
    return _Param(found["name"], tuple(checks), bool(found["optional"]), catch_all)


@dataclass(frozen=True)
class _Segment:
    parts: tuple[str | _Param, ...]
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    @property
    def param(self) -> _Param | None:
        """The parameter when it is the whole segment."""
        if len(self.parts) == 1 and isinstance(self.parts[0], _Param):
            return self.parts[0]
        return None

    @property
    def precedence(self) -> int:
        """ASP.NET Core's inbound order: literal, complex, constrained, plain, catch-all."""
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, str):
            return 1
        if part.catch_all:
            return 5
        return 3 if part.checks else 4

    def bind(self, text: str, values: dict[str, str]) -> bool:
        if self.pattern is None:
            part = self.parts[0]
            if isinstance(part, str):
                return ascii_lower(text) == ascii_lower(part)
            if not part.accepts(text):
                return False
            values[part.name] = text
            return True
        found = self.pattern.fullmatch(text)
        if found is None:
            return False
        params = [p for p in self.parts if isinstance(p, _Param)]
        captured = dict(zip((p.name for p in params), found.groups(), strict=True))
        if not all(p.accepts(captured[p.name]) for p in params):
            return False
        values.update(captured)
        return True


def _parse_segment(text: str) -> _Segment:
    parts: list[str | _Param] = []
    for position, piece in enumerate(re.split(r"(\{[^{}]*\})", text)):
        if not piece:
            continue
        if position % 2:  # a captured {parameter}
            parts.append(_parse_param(piece[1:-1]))
        elif "{" in piece or "}" in piece:
            raise RouteTemplateError(f"unbalanced braces in route segment: {text}")
        else:
            parts.append(piece)
    if not parts:
        raise RouteTemplateError("empty route segment")
    if len(parts) == 1:
        return _Segment(tuple(parts))
    if any(isinstance(p, _Param) and (p.optional or p.catch_all) for p in parts):
        raise RouteTemplateError(f"optional or catch-all parameter inside a segment: {text}")
    if any(isinstance(a, _Param) and isinstance(b, _Param) for a, b in itertools.pairwise(parts)):
        raise RouteTemplateError(f"adjacent parameters need a literal between them: {text}")
    regex = "".join("(.+?)" if isinstance(p, _Param) else re.escape(p) for p in parts)
    return _Segment(tuple(parts), re.compile(regex, re.IGNORECASE | re.ASCII | re.DOTALL))


def join_template(prefix: str, route: str) -> str:
    """The full template the host registers: route prefix, then the function's route."""
    return "/".join(part for part in (prefix.strip("/"), route.strip("/")) if part)


class RouteTemplate:
    """A parsed route template that matches request path segments."""

    def __init__(self, template: str) -> None:
        self.template = template
        texts = template.strip("/").split("/") if template.strip("/") else []
        self._segments = [_parse_segment(t) for t in texts]
        names = [
            ascii_lower(p.name) for s in self._segments for p in s.parts if isinstance(p, _Param)
        ]
        if len(names) != len(set(names)):
            raise RouteTemplateError(f"repeated route parameter in {template}")
        for index, segment in enumerate(self._segments):
            param = segment.param
            rest = self._segments[index + 1 :]
            if param is not None and param.catch_all and rest:
                raise RouteTemplateError(f"a catch-all parameter must come last: {template}")
            if (
                param is not None
                and param.optional
                and any(s.param is None or not s.param.optional for s in rest)
            ):
                raise RouteTemplateError(f"only optional parameters may follow one: {template}")
        self.precedence = tuple(s.precedence for s in self._segments)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Route values for a request path's segments, or None if the template does not match."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self._segments):
            param = segment.param
            if param is not None and param.catch_all:
                rest = "/".join(segments[index:])
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                return values
            if index >= len(segments):
                if param is not None and param.optional:
                    continue
                return None
            if not segment.bind(segments[index], values):
                return None
        return values if len(segments) <= len(self._segments) else None


def path_segments(raw_path: str) -> list[str]:
    """Decoded segments of a request path as the client sent it (an encoded / stays inside)."""
    path = raw_path.split("?", 1)[0].strip("/")
    return [unquote(segment) for segment in path.split("/")] if path else []


@dataclass(frozen=True)
class RouteMatch:
    """The function a request goes to, with its route values."""

    name: str
    params: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    """The path has routes, none for this method."""

    allowed: frozenset[str]


@dataclass(frozen=True)
class _Entry:
    name: str
    template: RouteTemplate
    methods: frozenset[str] | None


class RouteTable:
    """All HTTP trigger routes of an app, tried most specific first."""

    def __init__(self, entries: Iterable[tuple[str, RouteTemplate, frozenset[str] | None]] = ()):
        self._entries: list[_Entry] = []
        for name, template, methods in entries:
            self.add(name, template, methods)

    def add(self, name: str, template: RouteTemplate, methods: frozenset[str] | None) -> None:
        """Register a function's route; ``methods`` None means every method."""
        self._entries.append(_Entry(name, template, methods))
        self._entries.sort(key=lambda e: (e.template.precedence, e.name))

    def resolve(self, method: str, segments: Sequence[str]) -> RouteMatch | MethodNotAllowed | None:
        allowed: set[str] = set()
        for entry in self._entries:
            params = entry.template.match(segments)
            if params is None:
                continue
            if entry.methods is None or method.upper() in entry.methods:
                return RouteMatch(entry.name, params)
            allowed |= entry.methods
        return MethodNotAllowed(frozenset(allowed)) if allowed else None
