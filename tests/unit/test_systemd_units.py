"""The systemd units shipped in contrib/systemd/: the keys a oneshot run needs, the README's copy, and
`systemd-analyze verify` where systemd is installed."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
SERVICE, TIMER, NOTIFY = "runner-videos.service", "runner-videos.timer", "runner-notify@.service"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def test_the_oneshot_service_has_its_backstop_and_names_its_failure_unit() -> None:
    """Type=oneshot with TimeoutStartSec= (not RuntimeMaxSec=) past --max-runtime; OnFailure= names a shipped unit."""
    unit = _unit(SERVICE)
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    assert "RuntimeMaxSec" not in service
    max_runtime = int(re.search(r"--max-runtime (\d+)", service["ExecStart"]).group(1))  # type: ignore[union-attr]
    assert int(service["TimeoutStartSec"]) > max_runtime
    assert set(service["SuccessExitStatus"].split()) == {"3", "75"}
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) > 60  # the read timeout
    failure = unit["Unit"]["OnFailure"]
    assert failure == "runner-notify@%n.service" and (UNITS / NOTIFY).is_file()
    assert _unit(NOTIFY)["Service"]["ExecStart"]


def test_the_readme_shows_the_shipped_units_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(.*?)```", readme, re.DOTALL)
    for name in (SERVICE, TIMER, NOTIFY):
        assert (UNITS / name).read_text(encoding="utf-8") in blocks, f"README's copy of {name} differs"


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    """The units as systemd reads them: no unknown key, no value it cannot parse (paths pointed at this venv)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (the units' keys are checked by the tests above)")
    runner = Path(sys.executable).parent / "runner"
    for name in (SERVICE, TIMER, NOTIFY):
        text = (UNITS / name).read_text(encoding="utf-8")
        text = text.replace("/srv/videos/.venv/bin/runner", str(runner)).replace("/srv/videos", str(tmp_path))
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = subprocess.run([analyze, "verify", *(str(tmp_path / name) for name in (SERVICE, TIMER, NOTIFY))],
                          capture_output=True, text=True, timeout=60, check=False)
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if str(tmp_path) in line]
    assert proc.returncode == 0 and not said, proc.stdout + proc.stderr
