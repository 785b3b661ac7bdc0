"""The refusal before a batch the account cannot pay: its advice is one the CLI takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.client.balance import Balance
from runner.config import RunSettings
from runner.errors import UsageError
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.service.balance import check_balance
from runner.service.outcome import Notice


class _Account:
    def __init__(self, available_usd: float) -> None:
        self.available_usd = available_usd

    async def balance(self) -> Balance:
        return Balance(available_usd=self.available_usd)


def _jobs(n: int) -> list[JobSpec]:
    return [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={"i": i},
                          repeat=1, output=f"c{i}.mp4", estimated_usd=0.56) for i in range(n)]


async def _refusal(tmp_path: Path, available_usd: float) -> str:
    said: list[Notice] = []
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "d", _jobs(3))
        with pytest.raises(UsageError) as refused:
            await check_balance(_Account(available_usd), ledger, "m", RunSettings(), said.append)  # type: ignore[arg-type]
    return refused.value.message


@pytest.mark.anyio
async def test_a_balance_that_pays_part_of_the_batch_suggests_the_budget_that_fits(tmp_path: Path) -> None:
    message = await _refusal(tmp_path, 0.5)
    assert "the account balance is 0.50 USD" in message and "--budget 0.50" in message


@pytest.mark.anyio
async def test_an_overdrawn_account_is_told_to_top_up_never_to_pass_a_negative_budget(tmp_path: Path) -> None:
    """A balance of -5,000 USD: `--budget -5000.00` is advice the CLI refuses (a budget is 0 or more)."""
    message = await _refusal(tmp_path, -5000.0)
    assert "-5000.00 USD" in message and "--budget" not in message and "Top up the account" in message


@pytest.mark.anyio
async def test_a_balance_a_hair_below_zero_is_not_shown_as_minus_zero(tmp_path: Path) -> None:
    message = await _refusal(tmp_path, -0.004)
    assert "is 0.00 USD" in message and "-0.00" not in message and "--budget" not in message

