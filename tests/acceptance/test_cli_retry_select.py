"""`runner retry MANIFEST KEY|PREFIX… [--reason TEXT] [--dry-run] [--budget USD]`: what a user types after
a run left some jobs failed, against the simulator on a loopback port."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from runner.ledger import open_ledger

from test_cli_support import (
    THREE_JOBS_USD,
    ProviderFactory,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_retry_one_failed_job_by_prefix_after_a_dry_run_then_a_run_pays_for_it_alone(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider(p_task_failed=1.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 1
    sim.sim.configure(p_task_failed=0.0)
    with open_ledger(state, readonly=True) as ledger:
        failed = list(ledger.iter_jobs("trio"))
    key = failed[0].key
    before = hashlib.sha256((state / "ledger.db").read_bytes()).hexdigest()

    dry = run_cli("retry", str(manifest), key[:10], "--state", str(state), "--dry-run", cwd=tmp_path)
    assert dry.code == 0, str(dry)
    assert key[:16] in dry.stdout and "1 new paid task(s)" in dry.stdout and "nothing changed" in dry.stdout, str(dry)
    assert f"{THREE_JOBS_USD / 3:.2f} USD" in dry.stdout, str(dry)
    assert hashlib.sha256((state / "ledger.db").read_bytes()).hexdigest() == before
    assert counts(state) == {"failed": 3}

    nothing = run_cli("retry", str(manifest), "--reason", "no-such-reason", "--state", str(state), cwd=tmp_path)
    assert nothing.code == 2, str(nothing)
    assert "matches none of the 3 failed job(s); their reasons: '" in nothing.stderr, str(nothing)
    assert sum(int(n) for n in re.findall(r"×(\d+)", nothing.stderr)) == 3, str(nothing)  # each reason, counted

    over = run_cli("retry", str(manifest), key[:10], "--state", str(state), "--budget", f"{THREE_JOBS_USD:.2f}",
                   cwd=tmp_path)  # 3 paid already: one more passes the budget
    assert over.code == 2 and "--budget" in over.stderr and "nothing changed" in over.stderr, str(over)

    result = run_cli("retry", str(manifest), key[:10], "--state", str(state), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert "1 failed job(s) back to pending" in result.stdout and "new paid task" in result.stdout, str(result)
    assert counts(state) == {"failed": 2, "pending": 1}
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 1, str(again)  # the two left failed still count
    assert counts(state) == {"done": 1, "failed": 2}
    assert sim.accepted() == 4
    listed = run_cli("ls", str(manifest), "--state", str(state), "--only", "failed", "--only", "done", cwd=tmp_path)
    assert listed.code == 0 and len(listed.stdout.splitlines()) == 1 + 3, str(listed)  # a header, both states
