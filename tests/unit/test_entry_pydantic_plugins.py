"""`runner` does not look for pydantic plugins (issue 14, start-up).

Building the first pydantic model makes pydantic look for plugins: it reads the entry points of every
installed distribution (``importlib.metadata``), on every start of every command that reads a
manifest. No plugin is meant to observe runner's own validation, so the entry point sets pydantic's
documented switch ``PYDANTIC_DISABLE_PLUGINS`` unless the environment already says something (an
explicit ``PYDANTIC_DISABLE_PLUGINS=`` turns the discovery back on). Asserted with a plugin installed
on the path that says when it is loaded; never with a timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo.yaml"

PLUGIN = """
import os
from pathlib import Path

Path(os.environ["PLUGIN_MARK"]).write_text("loaded")


class _Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = _Plugin()
"""


def _plan(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    site = tmp_path / "site"
    info = site / "fakeplug-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pydantic]\nfakeplug = fakeplug_mod:plugin\n")
    (site / "fakeplug_mod.py").write_text(PLUGIN)
    mark = tmp_path / "mark"
    mark.unlink(missing_ok=True)
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    environ.update(PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
                   PLUGIN_MARK=str(mark), **env)
    # The demo with a duration written as 5.0: the plain reading passes it to the request model, so the
    # plan builds pydantic models (the demo itself imports no pydantic: tests/unit/test_cli_lazy.py).
    manifest = tmp_path / "odd.yaml"
    manifest.write_text(DEMO.read_text().replace("duration: 5 ", "duration: 5.0 "))
    proc = subprocess.run([sys.executable, "-m", "runner", "plan", str(manifest), "--state", str(tmp_path / "state")],
                          env=environ, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    return proc, mark


def test_plan_does_not_look_for_pydantic_plugins(tmp_path: Path) -> None:
    proc, mark = _plan(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not mark.exists(), "pydantic loaded the plugins of the installed distributions"


def test_the_environment_has_the_last_word(tmp_path: Path) -> None:
    """``PYDANTIC_DISABLE_PLUGINS=`` (empty: no plugin disabled) is the user's choice: the plugin is loaded."""
    proc, mark = _plan(tmp_path, PYDANTIC_DISABLE_PLUGINS="")
    assert proc.returncode == 0, proc.stderr
    assert mark.read_text() == "loaded"
