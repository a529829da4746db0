"""Table keys hashed from text: one digest, whose output keys already written depend on."""

from __future__ import annotations

from shared import limits, threads
from shared.keys import digest

# SHA-256 of "alice", as every key written so far holds it.
ALICE = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"


def test_a_digest_is_the_sha256_prefix_keys_were_written_with():
    assert digest("alice") == ALICE[:32]
    assert digest("alice", 64) == ALICE  # Idempotency-Key partitions: the whole digest


def test_owner_and_limit_keys_are_made_with_it():
    assert threads.owner_key("alice") == ALICE[:32]
    limit = limits.Limit("RATE_LIMIT_SMS_PER_CALLER", "alice", 30, limits.HOUR)
    assert limits._partition(limit, 0) == f"RATE_LIMIT_SMS_PER_CALLER-{ALICE[:32]}-0"
