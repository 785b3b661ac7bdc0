"""A `--state` that names the wrong folder, typed by a dataset builder in another directory (brief Q, 2026-12-05):
`run` refused it already; `plan` priced every job as new without a word, and an export or a report read it as a
batch of no jobs — exit 0, an empty CSV, and an hf re-export into the dataset folder removed every video there."""

from __future__ import annotations

from pathlib import Path

from runner.ledger import DB_NAME, open_ledger

from test_cli_support import FAST, ProviderFactory, provider, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

SIM = ("--simulate", "--sim-task-seconds", "0", *FAST)


def _videos(folder: Path) -> int:
    return len(list(folder.rglob("*.mp4")))


def _batch(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The three-job manifest run beside its own state/, its hf export made: (repo, manifest, dataset)."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    manifest = write_manifest(repo / "manifests")
    assert run_cli("run", str(manifest), *SIM, cwd=repo, key=None).code == 0
    dataset = tmp_path / "dataset"
    made = run_cli("export", str(manifest), "--format", "hf", "--to", str(dataset), cwd=repo)
    assert made.code == 0 and _videos(dataset) == 3, str(made)
    return repo, manifest, dataset


def test_plan_with_a_state_holding_no_ledger_says_where_the_jobs_are(tmp_path: Path) -> None:
    """`plan --state state` from the repository, whose jobs are in manifests/state: a warning naming that ledger
    and that a run with this state directory is refused, before the price of every job as new."""
    repo, manifest, _ = _batch(tmp_path)
    planned = run_cli("plan", str(manifest), "--state", "state", cwd=repo, key=None)
    assert planned.code == 0, str(planned)
    assert str(repo / "manifests" / "state") in planned.stderr and "refused" in planned.stderr, str(planned)
    assert not (repo / "state").exists()
    right = run_cli("plan", str(manifest), cwd=repo, key=None)
    assert right.code == 0 and "warning" not in right.stderr, str(right)


def test_plan_beside_a_simulated_run_does_not_say_a_real_run_is_refused(tmp_path: Path, provider: ProviderFactory) -> None:
    """The manifest tried with --simulate (its ledger in manifests/state), then planned for a real run into a new
    state directory: `plan` warned that `runner run` with it "is refused" and told to pass --state manifests/state,
    the simulated ledger a real run is refused in; a real run there is not refused (a simulated ledger paid for
    nothing) and pays for every job, as the plan prices them (brief T)."""
    repo, manifest, _ = _batch(tmp_path)
    simulated = repo / "manifests" / "state"
    planned = run_cli("plan", str(manifest), "--state", "real", cwd=repo, key=None)
    assert planned.code == 0, str(planned)
    assert str(simulated) in planned.stderr and "--simulate" in planned.stderr, str(planned)
    assert "a real run" in planned.stderr and "pass --state" not in planned.stderr.lower(), str(planned)
    sim = provider()
    real = run_cli("run", str(manifest), "--state", "real", *sim.engine_args(), cwd=repo)
    assert real.code == 0 and sim.accepted() == 3, str(real)  # not refused: each job paid for the first time


def test_exports_and_reports_refuse_a_state_holding_no_ledger(tmp_path: Path) -> None:
    """Every export format and the report, given a --state with no ledger: exit 2 naming the ledger that holds the
    jobs, nothing written, and the dataset exported before keeps its videos."""
    repo, manifest, dataset = _batch(tmp_path)
    for args in (["export", "--format", "jsonl"], ["export", "--format", "csv", "--to", str(tmp_path / "x.csv")],
                 ["export", "--format", "hf", "--to", str(dataset)], ["report", "--to", str(tmp_path / "report")],
                 ["status"], ["ls"]):
        refused = run_cli(args[0], str(manifest), *args[1:], "--state", "state", cwd=repo, key=None)
        assert refused.code == 2, str(refused)
        assert refused.stdout == "", str(refused)
        assert str(repo / "manifests" / "state") in refused.stderr, str(refused)
    assert _videos(dataset) == 3
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "report").exists()
    assert not (repo / "state").exists()


def test_an_hf_export_from_a_ledger_that_never_saw_the_manifest_is_refused(tmp_path: Path) -> None:
    """--state naming another batch's state directory: its ledger records no job of this manifest. The hf export is
    refused (exit 2) instead of exporting nothing and removing the dataset's videos as no longer exported."""
    repo, manifest, dataset = _batch(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_manifest = write_manifest(other, "name: other\nprompt: a quiet lake\ndefaults: {duration: 3}\n", "other.yaml")
    assert run_cli("run", str(other_manifest), *SIM, cwd=other, key=None).code == 0
    assert (other / "state" / DB_NAME).exists()
    for args in (["export", "--format", "hf", "--to", str(dataset)], ["export", "--format", "jsonl"]):
        refused = run_cli(args[0], str(manifest), *args[1:], "--state", str(other / "state"), cwd=repo, key=None)
        assert refused.code == 2, str(refused)
        assert "trio" in refused.stderr and str(other / "state") in refused.stderr, str(refused)
    assert _videos(dataset) == 3


def test_the_review_commands_given_a_state_holding_no_ledger_say_where_the_jobs_are(tmp_path: Path) -> None:
    """review, accept, reject, regenerate, verify and runs said "there is no ledger at state/ledger.db … give the
    --state DIR the batch ran with" and no more: they now name the ledger that holds the manifest's jobs."""
    repo, manifest, _ = _batch(tmp_path)
    for args in (["review", "--port", "0"], ["reject", "0000", "--reason", "r"], ["accept", "0000"], ["regenerate"],
                 ["verify", "--check-only"], ["runs"]):
        refused = run_cli(args[0], str(manifest), *args[1:], "--state", "state", cwd=repo, key=None)
        assert refused.code == 2, str(refused)
        assert f"pass --state {repo / 'manifests' / 'state'}" in refused.stderr, str(refused)
    assert not (repo / "state").exists()


def test_a_run_into_another_batchs_ledger_is_refused_when_the_manifests_own_records_its_jobs(tmp_path: Path) -> None:
    """`--state ../other/state` names a state directory whose ledger exists but records another batch: the guard
    looked only for a missing ledger, so the run planned every job anew there and paid for each again (brief Q: two
    jobs paid twice before its budget stopped it). Refused (exit 2, nothing sent), naming both; `plan` warns;
    `--new-ledger` plans it there on purpose; a new manifest's first run into an existing ledger still runs."""
    repo, manifest, _ = _batch(tmp_path)
    mine = repo / "manifests" / "state"
    other = tmp_path / "other"
    other.mkdir()
    other_manifest = write_manifest(other, "name: other\nprompt: a quiet lake\ndefaults: {duration: 3}\n", "other.yaml")
    assert run_cli("run", str(other_manifest), *SIM, cwd=other, key=None).code == 0
    for how in (["--state", str(other / "state")], []):
        env = None if how else {"RUNNER_STATE_DIR": str(other / "state")}
        refused = run_cli("run", str(manifest), *how, *SIM, cwd=repo, key=None, env=env)
        assert refused.code == 2, str(refused)
        assert str(mine) in refused.stderr and str(other / "state") in refused.stderr, str(refused)
        assert "simulator listening" not in refused.stderr
    planned = run_cli("plan", str(manifest), "--state", str(other / "state"), cwd=repo, key=None)
    assert planned.code == 0 and str(mine) in planned.stderr and "refused" in planned.stderr, str(planned)
    exported = run_cli("export", str(manifest), "--state", str(other / "state"), cwd=repo, key=None)
    assert exported.code == 2 and f"--state {mine}" in exported.stderr, str(exported)
    status = run_cli("status", str(manifest), "--state", str(other / "state"), cwd=repo, key=None)
    assert status.code == 0 and f"--state {mine}" in status.stderr, str(status)  # 0 jobs there, and where they are
    with open_ledger(other / "state", readonly=True) as ledger:
        assert ledger.total("trio") == 0
    fresh = write_manifest(repo / "manifests", "name: fresh\nprompt: a new idea\ndefaults: {duration: 3}\n", "fresh.yaml")
    first = run_cli("run", str(fresh), "--state", str(other / "state"), *SIM, cwd=repo, key=None)
    assert first.code == 0, str(first)  # known nowhere: its first run goes where it is told
    chosen = run_cli("run", str(manifest), "--state", str(other / "state"), "--new-ledger", *SIM, cwd=repo, key=None)
    assert chosen.code == 0, str(chosen)
    with open_ledger(other / "state", readonly=True) as ledger:
        assert ledger.total("trio") == 3 and ledger.total("other") == 1


def test_a_retry_given_another_batchs_state_plans_nothing_there(tmp_path: Path, provider: ProviderFactory) -> None:
    """`runner retry MANIFEST --failed --state OTHER` (a mistaken --state: another batch's ledger) planned the
    manifest into that ledger first, found no failed job there and said so (exit 0): the second-ledger guard then
    took OTHER for the manifest's own ledger, and the next `runner run --state OTHER` paid for every job again (the
    README walk, 2026-12-05: the demo's 7 jobs paid twice). Each kind of retry is refused now (exit 2) naming the
    ledger that holds the jobs, nothing is planned there, and the run stays refused: nothing is paid twice."""
    sim = provider()
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    manifest = write_manifest(repo / "manifests")
    mine = repo / "manifests" / "state"
    assert run_cli("run", str(manifest), *sim.engine_args(), cwd=repo).code == 0
    other = tmp_path / "other"
    other.mkdir()
    other_manifest = write_manifest(other, "name: other\nprompt: a quiet lake\ndefaults: {duration: 3}\n", "other.yaml")
    assert run_cli("run", str(other_manifest), *sim.engine_args(), cwd=other).code == 0
    for kind in ("--failed", "--in-doubt", "--lost"):
        refused = run_cli("retry", str(manifest), kind, "--state", str(other / "state"), cwd=repo)
        assert refused.code == 2, str(refused)
        assert f"--state {mine}" in refused.stderr, str(refused)
    with open_ledger(other / "state", readonly=True) as ledger:
        assert ledger.total("trio") == 0
    again = run_cli("run", str(manifest), "--state", str(other / "state"), *sim.engine_args(), cwd=repo)
    assert again.code == 2, str(again)
    assert sim.accepted() == 4 and sim.max_per_body() == 1


def test_the_review_commands_given_another_batchs_ledger_say_where_the_jobs_are(tmp_path: Path) -> None:
    """`--state` naming another batch's state directory (its ledger records no job of the manifest): `verify` said
    "0 stored video(s) checked … 0 missing or damaged" and exited 0 (a nightly check saying all is well of a batch it
    never looked at), `regenerate` "no rejected clips", `review` served an empty page. Each is refused now (exit 2)
    naming the ledger that holds the jobs, as with a --state holding no ledger."""
    repo, manifest, _ = _batch(tmp_path)
    mine = repo / "manifests" / "state"
    other = tmp_path / "other"
    other.mkdir()
    other_manifest = write_manifest(other, "name: other\nprompt: a quiet lake\ndefaults: {duration: 3}\n", "other.yaml")
    assert run_cli("run", str(other_manifest), *SIM, cwd=other, key=None).code == 0
    for args in (["verify", "--check-only"], ["verify"], ["regenerate"], ["regenerate", "--dry-run"],
                 ["review", "--port", "0"], ["reject", "0000", "--reason", "r"], ["accept", "0000"]):
        refused = run_cli(args[0], str(manifest), *args[1:], "--state", str(other / "state"), cwd=repo, key=None)
        assert refused.code == 2, str(refused)
        assert f"pass --state {mine}" in refused.stderr, str(refused)
    with open_ledger(other / "state", readonly=True) as ledger:
        assert ledger.total("trio") == 0


def test_a_retry_after_the_manifests_name_was_edited_retries_its_failed_jobs(tmp_path: Path,
                                                                              provider: ProviderFactory) -> None:
    """The manifest's `name:` edited after a run whose jobs all failed (the same videos asked for: one job each, by
    what is paid for): `runner retry --failed` refused its own ledger as another batch's ("holds no job of trio2",
    exit 2), for it knew the manifest by name only; the second-ledger guard knows it by its jobs too. The retry goes
    on now, as before that refusal: the next run sends the three jobs again once each and stores them."""
    sim = provider(p_task_failed=1.0)
    repo = tmp_path / "repo"
    repo.mkdir()
    manifest = write_manifest(repo)
    assert run_cli("run", str(manifest), *sim.engine_args(), cwd=repo).code == 1
    assert sim.accepted() == 3
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("name: trio", "name: trio2"), encoding="utf-8")
    sim.sim.configure(p_task_failed=0.0)
    retried = run_cli("retry", str(manifest), "--failed", cwd=repo)
    assert retried.code == 0, str(retried)
    assert run_cli("run", str(manifest), *sim.engine_args(), cwd=repo).code == 0
    assert sim.accepted() == 6 and sim.max_per_body() == 2
    with open_ledger(repo / "state", readonly=True) as ledger:
        assert ledger.total("trio2") == 3 and ledger.total("trio") == 3


def test_verify_after_the_manifests_name_was_edited_says_to_run_it_once(tmp_path: Path) -> None:
    """`runner verify` of the manifest with its `name:` edited, in its own ledger: refused (exit 2: its jobs are read
    by name) with "check --state … or run the manifest first", as if the ledger were another batch's; it says now that
    the ledger holds the manifest's jobs under another name, and after one run (which sends nothing) verify checks
    the three videos."""
    repo, manifest, _ = _batch(tmp_path)
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("name: trio", "name: trio2"), encoding="utf-8")
    refused = run_cli("verify", str(manifest), cwd=repo, key=None)
    assert refused.code == 2, str(refused)
    assert "under another manifest's name" in refused.stderr, str(refused)
    assert run_cli("run", str(manifest), *SIM, cwd=repo, key=None).code == 0
    checked = run_cli("verify", str(manifest), cwd=repo, key=None)
    assert checked.code == 0 and "3 stored" in checked.stdout + checked.stderr, str(checked)
