"""Table keys from text of any length or alphabet: one digest, so that the keys the app
has written stay the keys it reads."""

from __future__ import annotations

import hashlib
from functools import lru_cache


@lru_cache(maxsize=4096)
def digest(text: str, hex_digits: int = 32) -> str:
    """The first ``hex_digits`` hex digits of the SHA-256 of ``text`` (32: 128 bits, no
    collision to fear): fits any key (at most 1 KiB, no / \\ # ?) and holds no ``|`` or
    ``-`` for keys to join with."""
    return hashlib.sha256(text.encode()).hexdigest()[:hex_digits]
