"""Tags and tag expressions, by Notification Hubs' rules.

https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-tags-segment-push-message
("Routing and tag expressions"): a tag is up to 120 characters of letters,
digits and ``_ @ # . : -``; a device has up to 60; a send targets a boolean
expression of tags with ``&&``, ``||``, ``!`` and parentheses, of at most 20
tags if it has only ORs, else 6 (how deep ``!`` and parentheses may nest is not
documented: this double reads ``MAX_DEPTH`` levels and ``MAX_TOKENS`` tokens,
refusing deeper or longer ones with 400 rather than recursing without end). Each
installation also carries ``$InstallationId:{id}`` (and ``$UserId:{userId}`` when it has one)
(https://learn.microsoft.com/en-us/azure/notification-hubs/notification-hubs-push-notification-registration-management,
"Installations").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import HubError

MAX_TAG_LENGTH = 120
MAX_TAGS = 60
MAX_OR_ONLY = 20
MAX_MIXED = 6
TAG = re.compile(r"[A-Za-z0-9_@#.:\-]{1,120}")
_TOKEN = re.compile(r"\s*(?:(\$(?:InstallationId|UserId):\{[^{}]{1,256}\})|([A-Za-z0-9_@#.:\-]+)"
                    r"|(&&|\|\||!|\(|\)))")
#: Longest expression read.
MAX_EXPRESSION = 4096
#: Deepest nesting of ``!`` and ``(`` read, and most tokens (sandbox-only bounds).
MAX_DEPTH = 32
MAX_TOKENS = 256

Match = Callable[[frozenset[str]], bool]


def check_tags(tags: object, where: str = "tags") -> list[str]:
    """``tags`` (a JSON array of strings; None: none) as a list, or HubError 400 if it is
    no array or one breaks the rules above. A string or an object is refused, not read
    letter by letter or key by key: the REST page types ``tags`` as an array of strings
    (https://learn.microsoft.com/en-us/rest/api/notificationhubs/create-overwrite-installation)."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise HubError(400, f"{where} must be an array of tags (strings), not "
                            f"{type(tags).__name__}.")
    kept = list(tags)
    if len(kept) > MAX_TAGS:
        raise HubError(400, f"{where}: at most {MAX_TAGS} tags, not {len(kept)}.")
    for tag in kept:
        if not isinstance(tag, str) or not TAG.fullmatch(tag):
            shown = tag[:40] if isinstance(tag, str) else type(tag).__name__
            raise HubError(400, f"{where}: {shown!r} is no tag: up to {MAX_TAG_LENGTH} letters, "
                                "digits and _ @ # . : -")
    return kept  # type: ignore[return-value]


def own_tags(installation_id: str, user_id: str | None) -> set[str]:
    """The tags Notification Hubs gives every installation."""
    tags = {f"$InstallationId:{{{installation_id}}}"}
    if user_id:
        tags.add(f"$UserId:{{{user_id}}}")
    return tags


def parse(expression: str) -> Match:
    """A test of a device's tags, or HubError 400 for a malformed or too long expression."""
    if len(expression) > MAX_EXPRESSION:
        raise HubError(400, "ServiceBusNotification-Tags is too long.")
    tokens = _tokens(expression)
    if len(tokens) > MAX_TOKENS:
        raise HubError(400, f"ServiceBusNotification-Tags has more than {MAX_TOKENS} tokens.")
    named = sum(1 for kind, _ in tokens if kind == "tag")
    or_only = {value for kind, value in tokens if kind == "op"} <= {"||"}
    limit = MAX_OR_ONLY if or_only else MAX_MIXED
    if named > limit:
        shape = "of ORs only" if or_only else "with && or !"
        raise HubError(400, f"A tag expression {shape} names {limit} tags at most, not {named}.")
    parser = _Parser(tokens)
    match = parser.expression()
    if parser.position != len(tokens):
        raise HubError(400, "ServiceBusNotification-Tags is no valid tag expression.")
    return match


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression.rstrip()):
        found = _TOKEN.match(expression, position)
        if found is None:
            raise HubError(400, "ServiceBusNotification-Tags is no valid tag expression: tags "
                                "are letters, digits and _ @ # . : -, joined by && || ! ( ).")
        special, tag, operator = found.groups()
        if operator:
            tokens.append(("op", operator))
        else:
            name = special or tag
            if len(name) > MAX_TAG_LENGTH + (0 if tag else 300):
                raise HubError(400, f"A tag is at most {MAX_TAG_LENGTH} characters.")
            tokens.append(("tag", name))
        position = found.end()
    if not tokens:
        raise HubError(400, "ServiceBusNotification-Tags is empty.")
    return tokens


class _Parser:
    """Recursive descent: ``!`` binds tighter than ``&&``, which binds tighter than ``||``."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.position, self.depth = tokens, 0, 0

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise HubError(400, f"ServiceBusNotification-Tags nests ! and ( ) more than "
                                f"{MAX_DEPTH} deep.")

    def _peek(self) -> str | None:
        if self.position < len(self.tokens):
            kind, value = self.tokens[self.position]
            return value if kind == "op" else None
        return None

    def expression(self) -> Match:
        """Terms joined by ``||``; each term, factors joined by ``&&``."""
        return self._joined("||", lambda: self._joined("&&", self._not))

    def _joined(self, operator: str, operand: Callable[[], Match]) -> Match:
        parts = [operand()]
        while self._peek() == operator:
            self.position += 1
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        combine = any if operator == "||" else all
        return lambda tags: combine(part(tags) for part in parts)

    def _not(self) -> Match:
        if self._peek() == "!":
            self.position += 1
            self._deeper()
            inner = self._not()
            self.depth -= 1
            return lambda tags: not inner(tags)
        return self._atom()

    def _atom(self) -> Match:
        if self.position >= len(self.tokens):
            raise HubError(400, "ServiceBusNotification-Tags ends too early.")
        kind, value = self.tokens[self.position]
        self.position += 1
        if kind == "tag":
            return lambda tags: value in tags
        if value == "(":
            self._deeper()
            inner = self.expression()
            self.depth -= 1
            if self._peek() != ")":
                raise HubError(400, "ServiceBusNotification-Tags has an unclosed parenthesis.")
            self.position += 1
            return inner
        raise HubError(400, f"ServiceBusNotification-Tags has {value!r} where a tag belongs.")
