"""The distribution is kling-runner (`runner` on PyPI is an unrelated package); the command and the import
package stay `runner`, and everything that reads the distribution's metadata reads the new name."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

from click.testing import CliRunner

from runner.distribution import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"])


def test_the_distribution_is_kling_runner_and_installs_the_runner_command() -> None:
    project = _project()
    assert project["name"] == DISTRIBUTION == "kling-runner"
    assert project["scripts"] == {"runner": "runner._entry:main"}
    installed = distribution(DISTRIBUTION)
    assert installed.version == project["version"]
    assert any(ep.name == "runner" and ep.group == "console_scripts" for ep in installed.entry_points)


def test_runner_version_reads_the_new_distribution_both_ways() -> None:
    """`runner --version` alone (answered before click is imported) and through click say the same version."""
    from runner import __version__
    from runner.cli import main

    expected = f"runner, version {_project()['version']}\n"
    fast = subprocess.run([sys.executable, "-m", "runner", "--version"], capture_output=True, text=True, timeout=60,
                          check=True)
    assert fast.stdout == expected and fast.stderr == ""
    assert CliRunner().invoke(main, ["--version", "--help"]).output == expected
    assert __version__ == _project()["version"]


def test_no_code_reads_the_old_distribution_name() -> None:
    """Nothing asks importlib.metadata (or click's version option) for a distribution called `runner`."""
    old = re.compile(r"""(version|distribution|metadata)\(\s*["']runner["']|package_name\s*=\s*["']runner["']""")
    offenders = [str(path.relative_to(ROOT)) for folder in ("runner", "bench") for path in (ROOT / folder).rglob("*.py")
                 if old.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_readme_says_how_to_install_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme[readme.index("## Install"):readme.index("## A manifest")]
    assert "kling-runner" in install and "pipx install ." in install and "pip install ." in install


def test_no_install_line_names_the_unrelated_pypi_package() -> None:
    """`pip install runner` (or `runner[postgres]`) would fetch someone else's package from PyPI."""
    wrong = re.compile(r"""pipx? install\s+['"]?runner\b""")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "README.md", *(ROOT / "docs").glob("*.md"))
                 if wrong.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
