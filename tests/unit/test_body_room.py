"""The weighted limiter of inline bodies' bytes (runner/engine/room.py): at most its cap held, a larger body alone.

No wall clock: a waiter is seen blocked with ``wait_all_tasks_blocked`` and released by ``give``.
"""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from runner.engine.room import BodyRoom

pytestmark = pytest.mark.anyio
MIB = 1024 * 1024


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_body_that_does_not_fit_waits_until_room_is_given_back() -> None:
    room = BodyRoom(100 * MIB)
    await room.take(60 * MIB)
    await room.take(40 * MIB)  # exactly the cap: fits
    taken = anyio.Event()

    async def third() -> None:
        await room.take(30 * MIB)
        taken.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await wait_all_tasks_blocked()
        assert not taken.is_set() and room.held == 100 * MIB
        room.give(20 * MIB)  # 80 + 30 > 100: still waiting
        await wait_all_tasks_blocked()
        assert not taken.is_set() and room.held == 80 * MIB
        room.give(40 * MIB)  # 40 + 30 ≤ 100
        await taken.wait()
    assert room.held == 70 * MIB and room.peak == 100 * MIB


async def test_a_body_larger_than_the_cap_goes_alone() -> None:
    room = BodyRoom(100 * MIB)
    assert room.try_take(10 * MIB)
    assert not room.try_take(150 * MIB), "a body larger than the cap waits for every other body to be answered"
    assert room.held == 10 * MIB
    done = anyio.Event()

    async def big() -> None:
        await room.take(150 * MIB)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(big)
        await wait_all_tasks_blocked()
        assert not done.is_set()
        room.give(10 * MIB)
        await done.wait()
    assert room.held == 150 * MIB
    assert not room.try_take(1), "nothing else while it is held"
    room.give(150 * MIB)
    assert room.try_take(100 * MIB) and room.held == 100 * MIB


async def test_a_wait_cancelled_takes_nothing() -> None:
    room = BodyRoom(10)
    await room.take(10)
    with anyio.move_on_after(0) as scope:  # cancelled at its first checkpoint: no wall-clock time passes
        await room.take(5)
    assert scope.cancelled_caught and room.held == 10
    room.give(10)
    assert room.held == 0 and room.try_take(10)


async def test_two_waiters_both_get_in_as_room_frees() -> None:
    room = BodyRoom(10)
    await room.take(10)
    got: list[int] = []

    async def waiter(size: int) -> None:
        await room.take(size)
        got.append(size)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, 4)
        tg.start_soon(waiter, 6)
        await wait_all_tasks_blocked()
        assert got == []
        room.give(10)
    assert sorted(got) == [4, 6] and room.held == 10


def test_room_given_back_twice_is_a_bug() -> None:
    room = BodyRoom(10)
    assert room.try_take(3)
    room.give(3)
    with pytest.raises(AssertionError, match="given back twice"):
        room.give(3)
