"""Turns at a row: one instance's requests take them in order, and a row in use is kept."""

from __future__ import annotations

import asyncio

from shared.turns import Turn, Turns


class Instance:
    """Stands for a store: turns are kept per store, by weak reference."""


def test_a_turn_in_use_is_not_forgotten_to_make_room() -> None:
    async def scenario() -> tuple[bool, bool]:
        store = Instance()
        turns: Turns[Turn] = Turns(Turn, kept=1)
        first = turns.at(store, "p", "a")  # type: ignore[arg-type]
        async with first.taken():
            turns.at(store, "p", "b")  # type: ignore[arg-type]
            kept_while_held = turns.at(store, "p", "a") is first  # type: ignore[arg-type]
        turns.at(store, "p", "c")  # type: ignore[arg-type]
        forgotten_after = turns.at(store, "p", "a") is not first  # type: ignore[arg-type]
        return kept_while_held, forgotten_after

    assert asyncio.run(scenario()) == (True, True)


def test_a_request_waiting_for_its_turn_keeps_the_row() -> None:
    """Between one turn's end and the next waiter's start the lock is free, yet the row
    is still in use: forgetting it there would start a second, racing turn."""
    async def scenario() -> bool:
        store = Instance()
        turns: Turns[Turn] = Turns(Turn, kept=1)
        row = turns.at(store, "p", "a")  # type: ignore[arg-type]
        order: list[str] = []

        async def take(name: str) -> None:
            async with row.taken():
                order.append(name)
                await asyncio.sleep(0)

        first = asyncio.create_task(take("first"))
        second = asyncio.create_task(take("second"))
        await asyncio.sleep(0)
        await first  # the lock is released; "second" has not run yet
        turns.at(store, "p", "b")  # type: ignore[arg-type]  # room made: "a" is the oldest
        kept = turns.at(store, "p", "a") is row  # type: ignore[arg-type]
        await second
        return kept and order == ["first", "second"]

    assert asyncio.run(scenario())
