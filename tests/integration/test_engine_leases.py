"""The engine's lease keeper on a shared ledger (runner/engine/leases.py), on the memory backend."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from runner.engine import EngineConfig, Policy
from runner.engine.events import NullReporter
from runner.engine.leases import LeaseKeeper
from runner.engine.sources import Watch
from runner.engine.state import RunState
from runner.errors import LedgerError
from runner.jobs import JobSpec
from runner.ledger import MemoryLedger


def _spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i},
                         repeat=1, output=f"c{i}.mp4", estimated_usd=0.5)


def _config(ttl: float = 0.2) -> EngineConfig:
    return EngineConfig(manifest="m", shared=True, policy=Policy(lease_ttl_s=ttl))


class Expired(MemoryLedger):
    """A ledger on which this runner's lease has expired: another runner may have taken its work."""

    def renew_lease(self, owner: str, *, ttl: float = 60.0) -> bool:
        return False


def test_a_refused_renewal_stops_the_run(tmp_path: Path) -> None:
    ledger = Expired(state_dir=tmp_path)
    state = RunState(concurrency=2)
    keeper = LeaseKeeper(ledger, _config(), state, NullReporter(), clock=lambda: 0.0, watch=None)
    anyio.run(keeper.run)  # returns at once: nothing renewed
    assert isinstance(state.fatal, LedgerError) and "lease" in str(state.fatal)
    assert state.halted


def test_running_tasks_taken_over_are_followed_once(tmp_path: Path) -> None:
    ledger = MemoryLedger(state_dir=tmp_path)
    ledger.register("m", "d", [_spec(i) for i in range(3)])
    for i in range(2):  # two tasks this owner now holds (as after recover_expired), not yet followed
        attempt = ledger.mark_submitting(_spec(i).key)
        assert attempt is not None
        ledger.mark_running(_spec(i).key, attempt, task_id=f"t{i}", http_status=200)
    state = RunState(concurrency=4)
    send, receive = anyio.create_memory_object_stream[Watch](8)
    keeper = LeaseKeeper(ledger, _config(), state, NullReporter(), clock=lambda: 0.0, watch=send)
    assert keeper.recover() == 2
    assert keeper.recover() == 0  # already followed: never twice
    got = [receive.receive_nowait() for _ in range(2)]
    assert sorted(w.task_id for w in got) == ["t0", "t1"] and state.held == 2
    assert keeper.others_busy() is True  # one job is still pending (claimable, or another runner's)
    send.close()
    receive.close()


@pytest.mark.parametrize("ttl", [0.2])
def test_the_lease_is_renewed_every_quarter_ttl(tmp_path: Path, ttl: float) -> None:
    renewals: list[float] = []

    class Counting(MemoryLedger):
        def renew_lease(self, owner: str, *, ttl: float = 60.0) -> bool:
            renewals.append(ttl)
            return True

    ledger = Counting(state_dir=tmp_path)
    keeper = LeaseKeeper(ledger, _config(ttl), RunState(concurrency=1), NullReporter(), clock=lambda: 0.0, watch=None)

    async def main() -> None:
        with anyio.move_on_after(ttl * 1.1):
            await keeper.run()

    anyio.run(main)
    assert 4 <= len(renewals) <= 6 and set(renewals) == {ttl}  # at once, then every ttl/4


class _Clocks:
    """A host's clocks a test moves: the loop's (monotonic: it stops while the machine is suspended), the boot's
    steady clock (CLOCK_BOOTTIME: it counts a suspend, nothing steps it) and the wall clock (NTP, `date -s` step it)."""

    def __init__(self) -> None:
        self.loop, self.steady, self.wall = 50.0, 7000.0, 1.8e9

    def boot(self) -> tuple[str, float]:
        return "boot-1", self.steady


@pytest.mark.parametrize(("suspended_s", "wall_step_s", "may_send"), [
    (60.0, -86400.0, False),  # suspended past the lease, the wall clock set back a day meanwhile: expired
    (0.0, 86400.0, True),  # the wall clock stepped ahead a day, no time gone by: the lease holds
    (0.0, -86400.0, True),
    (60.0, 0.0, False),  # suspended past the lease: expired, as before
], ids=["suspended-and-set-back", "stepped-ahead", "set-back", "suspended"])
def test_a_post_leaves_by_the_boot_s_steady_clock_whatever_the_wall_clock_did(
        tmp_path: Path, suspended_s: float, wall_step_s: float, may_send: bool) -> None:
    """may_send timed the lease on the loop clock and the wall clock. Suspended (the loop clock stopped) past the lease
    with the wall clock set back meanwhile (a VM resumed, its clock then corrected by NTP), neither said the lease
    had gone: the POST left although another runner may have taken the job over (in doubt, retried, sent again:
    paid twice). Stepped ahead with no time gone by, a live lease's POST was held back. The steady clock decides."""
    clocks = _Clocks()
    keeper = LeaseKeeper(MemoryLedger(state_dir=tmp_path), _config(60.0), RunState(concurrency=1), NullReporter(),
                         clock=lambda: clocks.loop, watch=None, wall=lambda: clocks.wall, boot=clocks.boot)
    assert keeper.renew() and keeper.may_send()
    clocks.steady += suspended_s
    clocks.wall += suspended_s + wall_step_s
    assert keeper.may_send() is may_send


def test_without_a_steady_clock_the_wall_clock_times_the_lease(tmp_path: Path) -> None:
    """No CLOCK_BOOTTIME (macOS): the loop clock and the wall clock, as before."""
    clocks = _Clocks()
    keeper = LeaseKeeper(MemoryLedger(state_dir=tmp_path), _config(60.0), RunState(concurrency=1), NullReporter(),
                         clock=lambda: clocks.loop, watch=None, wall=lambda: clocks.wall, boot=lambda: None)
    assert keeper.renew() and keeper.may_send()
    clocks.wall += 60.0  # suspended past the lease
    assert not keeper.may_send()
