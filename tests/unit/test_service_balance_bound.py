"""The balance check holds a run's start for a bounded time (runner/service/balance.py), on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from trio.testing import MockClock

from runner.client.balance import Balance
from runner.config import RunSettings
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.service.balance import BALANCE_CHECK_S, check_balance
from runner.service.outcome import Notice


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


class _Stalled:
    """A balance route that answers a byte a second: each try within its timeouts, all of them for minutes."""

    async def balance(self) -> Balance:
        await anyio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.anyio
@pytest.mark.parametrize(("max_runtime", "bound"), [(20.0, 5.0), (None, BALANCE_CHECK_S)])
async def test_a_balance_check_that_stalls_holds_the_start_no_longer_than_its_bound(
    tmp_path: Path, max_runtime: float | None, bound: float,
) -> None:
    """Its tries held a run's start for 154 s, past --max-runtime 20, before the first POST (hostile-data sweep,
    2026-12-05). It is bounded as a whole (a quarter of --max-runtime, at most 30 s), then the run goes on unchecked."""
    said: list[Notice] = []
    jobs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i},
                          repeat=1, output=f"c{i}.mp4", estimated_usd=0.56) for i in range(3)]
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "d", jobs)
        started = anyio.current_time()
        await check_balance(_Stalled(), ledger, "m", RunSettings(max_runtime=max_runtime),  # type: ignore[arg-type]
                            said.append)
        assert anyio.current_time() - started == pytest.approx(bound)
    assert any(f"within {bound:g} s; going on without checking it" in notice.text for notice in said), said
