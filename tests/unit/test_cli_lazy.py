"""Start-up (issue 14): `runner --version` and `runner --help` import no command and no heavy library.

Which modules are imported is asserted, never a timing (timings are bench/startup.py's figures).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runner.cli import COMMANDS, main

HEAVY = ("httpx", "anyio", "rich", "pydantic", "sqlite3", "sqlite_utils", "psycopg", "yaml", "runner.simulator", "runner.engine",
         "runner.ledger", "runner.manifest", "runner.service.running", "runner.client.connection", "runner.jobs")

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo.yaml"

# The modules are listed by an exit callback: the entry point runs those, then ends the process. (A name
# bound to None in sys.modules is one that cannot be imported: not listed.)
PROBE = """
import atexit, json, sys
sys.argv = ["runner", *json.loads(sys.argv[1])]
atexit.register(lambda: print(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)), file=sys.__stderr__,
                              flush=True))
from runner._entry import main
main()
"""


def imported_by(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=60,
                          check=False)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_by(*args)
    assert "runner._entry" in modules  # the probe ran the entry point
    loaded = sorted(name for name in modules for heavy in HEAVY if name == heavy or name.startswith(heavy + "."))
    assert loaded == []
    assert not any(name.startswith("runner.cli.") and name not in {"runner.cli.common", "runner.cli.group",
                                                                      "runner.cli.output"} for name in modules)


def test_version_answers_without_click_and_as_click_words_it() -> None:
    """`runner --version` alone is answered before the CLI is imported, in click's words."""
    assert "click" not in imported_by("--version")
    fast = subprocess.run([sys.executable, "-c", PROBE, json.dumps(["--version"])], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert fast == CliRunner().invoke(main, ["--version"]).output


def test_a_command_imports_its_own_module_only() -> None:
    modules = imported_by("simulate", "--help")
    assert "runner.cli.sim" in modules
    assert "runner.cli.run" not in modules and "runner.cli.report" not in modules


def test_plan_imports_neither_the_network_nor_the_engine(tmp_path: Path) -> None:
    """`runner plan` reads the manifest and the ledger: no HTTP client, event loop, engine, simulator or rich."""
    modules = imported_by("plan", str(DEMO), "--state", str(tmp_path))
    assert "runner.service.planning" in modules
    for heavy in ("httpx", "anyio", "rich", "runner.engine", "runner.simulator", "runner.reporting.dataset"):
        assert heavy not in modules, heavy


def test_the_table_says_each_commands_own_name_and_help() -> None:
    """The lazy table's one-line help (shown by `runner --help`) is the command's own."""
    ctx = click.Context(main)
    for name, where in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == where.short_help, name


def test_plan_of_the_demo_imports_only_what_it_uses(tmp_path: Path) -> None:
    """`runner plan` of a text-to-video manifest: no sqlite-utils (nor pandas, which it pulls in), no test
    assets, and no pydantic models of the endpoints the manifest does not name (issue 14, item 4)."""
    modules = imported_by("plan", str(DEMO), "--state", str(tmp_path))
    assert "runner.service.planning" in modules and "runner.endpoints.kling_plain" in modules
    for heavy in ("sqlite_utils", "pandas", "numpy", "runner.testing", "runner.endpoints.kling_i2v",
                  "runner.endpoints.kling_motion"):
        assert heavy not in modules, heavy


def test_plan_of_a_plain_manifest_imports_no_pydantic(tmp_path: Path) -> None:
    """`runner plan` of the demo reads its keys and checks its bodies in plain Python (issue 14, item 4):
    neither pydantic nor any pydantic model (the manifest's, the endpoints', a local file's) is imported."""
    modules = imported_by("plan", str(DEMO), "--state", str(tmp_path))
    assert "runner.service.planning" in modules and "runner.manifest.schema" in modules
    for heavy in ("pydantic", "annotated_types", "runner.manifest.spec_models", "runner.endpoints.kling",
                  "runner.endpoints.kling_t2v", "runner.endpoints.local_file", "runner.endpoints.inputs",
                  "importlib.metadata", "runner.reporting.inspect"):
        assert heavy not in modules, heavy


def test_plan_of_a_manifest_with_an_odd_value_still_asks_the_models(tmp_path: Path) -> None:
    """A value the plain reading does not vouch for (a duration written as 5.0) goes through the request model."""
    manifest = tmp_path / "odd.yaml"
    manifest.write_text(DEMO.read_text().replace("duration: 5 ", "duration: 5.0 "))
    modules = imported_by("plan", str(manifest), "--state", str(tmp_path / "s"))
    assert "runner.endpoints.kling_t2v" in modules and "pydantic" in modules


def test_plan_imports_no_ledger_backend_it_does_not_open(tmp_path: Path) -> None:
    """`runner plan` of a SQLite ledger: not the in-memory backend (the ledger package imports a name's
    module on first use), nor `statistics` (the forecast's median of done jobs, imported when one is)."""
    modules = imported_by("plan", str(DEMO), "--state", str(tmp_path))
    assert "runner.ledger.sqlite" in modules and "runner.reporting.eta" in modules
    for unused in ("runner.ledger.memory", "runner.ledger.memory_tables", "statistics"):
        assert unused not in modules, unused


def test_the_ledger_package_still_exports_every_name() -> None:
    import runner.ledger as ledger

    for name in ledger.__all__:
        assert getattr(ledger, name) is not None, name
    assert set(ledger.__all__) <= set(dir(ledger))


def test_a_run_without_a_terminal_imports_neither_rich_nor_httpxs_own_cli(tmp_path: Path) -> None:
    """`runner run` with stderr not a terminal (cron, a pipe): no rich (only the live display on a terminal
    uses it), and not httpx's command-line client (httpx imports it, with rich and pygments, whenever they
    are installed; runner never calls it)."""
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(DEMO.read_text())
    modules = imported_by("run", str(manifest), "--simulate", "--sim-task-seconds", "0", "--state", str(tmp_path / "s"))
    assert "runner.service.running" in modules and "httpx" in modules
    for unused in ("httpx._main", "rich", "pygments"):
        assert unused not in modules, unused


def test_product_code_never_imports_the_test_assets() -> None:
    """runner.testing builds example images at import: no endpoint, manifest or ledger module needs it."""
    probe = ("import sys, runner.endpoints as e, runner.manifest, runner.ledger; [e.get(s) for s in e.slugs()];"
             " print('runner.testing' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_run_of_a_plain_manifest_builds_no_request_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner run` of the demo against a provider (the simulator on a loopback port, in this process):
    the jobs are planned, sent and checked through the plain text-to-video specs, so neither the manifest's
    pydantic models nor the endpoints' are imported; pydantic itself is (the HTTP client uses it)."""
    from runner.simulator import SimConfig, Simulator, SimulatorThread

    server = SimulatorThread(Simulator(SimConfig(task_seconds=0.0))).start()
    try:
        monkeypatch.setenv("NOVITA_API_KEY", "sk-test-lazy-0123456789abcdef")
        modules = imported_by("-q", "run", str(DEMO), "--state", str(tmp_path), "--base-url", server.base_url,
                              "--poll-interval", "0.05")
    finally:
        server.stop()
    assert "runner.service.running" in modules and "runner.engine.submit" in modules and "pydantic" in modules
    for unused in ("runner.endpoints.kling", "runner.endpoints.kling_t2v", "runner.manifest.spec_models",
                   "runner.endpoints.local_file"):
        assert unused not in modules, unused
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # the run did submit, poll and download all 7 jobs
        assert db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone() == (7,)


def test_the_wire_models_are_built_on_first_use() -> None:
    """Importing what `runner run` imports builds none of the provider's answer models (``defer_build``):
    they are built when the first answer is read, after the first submit."""
    probe = ("import runner.service.running, runner.engine, runner.client.submit, runner.client.novita;"
             " import runner.novita_wire as w;"
             " models = (w.SubmitResponse, w.ErrorEnvelope, w.TaskInfo, w.VideoResult, w.TaskResult);"
             " built = [m.__pydantic_complete__ for m in models];"
             " w.TaskResult.model_validate({'task': {'status': 'TASK_STATUS_SUCCEED'}});"
             " print(built, w.TaskResult.__pydantic_complete__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[False, False, False, False, False] True"
