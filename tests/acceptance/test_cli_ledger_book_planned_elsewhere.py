"""A batch planned into a ledger that has sent (another batch's) is refused by the book of this host's ledgers when
another ledger of the same provider planned its jobs: the manifest copied into the folder of another batch, whose
state/ already holds a ledger, or run with the --ledger of a database other batches share.

The book judged only ledgers that had sent nothing: a ledger that had sent another batch planned this one and paid for
it again without a word. Only the batch's jobs that ledger has not sent count: a ledger resumed, a copy, a batch
paid for there, are not refused. The simulator on a loopback port judges what was paid.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_support import TWO_OTHER_JOBS, ProviderFactory, provider, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

def test_a_manifest_copied_into_another_batchs_folder_is_refused_and_runs_where_it_ran(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    trio, other = write_manifest(first), write_manifest(second, TWO_OTHER_JOBS, "other.yaml")
    assert run_cli("run", str(trio), *sim.engine_args(), cwd=tmp_path).code == 0
    assert run_cli("run", str(other), *sim.engine_args(), cwd=tmp_path).code == 0  # b/state: another batch's ledger
    assert sim.accepted() == 5
    copy = write_manifest(second)
    refused = run_cli("run", str(copy), *sim.engine_args(), cwd=tmp_path)
    assert refused.code == 2 and "nothing was sent" in refused.stderr, str(refused)
    assert sim.accepted() == 5, "the batch was paid for again in another batch's ledger"
    said = refused.stderr
    assert f"the ledger {second / 'state'} has not sent trio's jobs yet, but at least 3 of them were planned in the" \
           f" ledger at {first / 'state'} (batch trio; last run " in said, said
    assert f"`runner run {copy} --state {first / 'state'} --base-url {sim.base_url}`" in said, said
    # Its own ledger's batch runs on there, and so does the one it was copied into, paying for nothing twice.
    assert run_cli("run", str(trio), *sim.engine_args(), cwd=tmp_path).code == 0
    assert run_cli("run", str(other), *sim.engine_args(), cwd=tmp_path).code == 0
    assert sim.accepted() == 5
    # Paid again there on purpose, once: not refused after.
    assert run_cli("run", str(copy), *sim.engine_args(), "--new-ledger", cwd=tmp_path).code == 0
    assert sim.accepted() == 8
    assert run_cli("run", str(copy), *sim.engine_args(), cwd=tmp_path).code == 0
    assert sim.accepted() == 8
