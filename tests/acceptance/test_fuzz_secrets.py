"""The API key appears nowhere after a faulty, interrupted run: not in the ledger, logs, exports or outputs.

A real simulator process with every fault knob on (429s, gateway pages, drops,
expired URLs…), a real runner process with debug JSON logs, interrupted by a
SIGTERM and run again, then every export format and every byte under the state
directory and the export folder is scanned for the key — raw, URL-encoded and
base64-encoded.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from bench.crashlib import EVERY_FAULT
from bench.procs import SimProcess, runner_env

pytestmark = pytest.mark.timeout(120)

KEY = "sk-FUZZ-5e1d9c3b7a20-KEY-NEVER-WRITTEN"


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, urllib.parse.quote(secret).encode(), base64.b64encode(raw), base64.b64encode(raw)[:24],
            raw[len(raw) // 2 :]]


def _runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", "-v", "--log-json", *args]


def test_key_is_in_no_file_log_or_export_after_a_faulty_interrupted_run(tmp_path: Path) -> None:
    """After faults, a SIGTERM and a resume, no form of the key is in any output, file or export."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text('name: secrets\nprompt: "clip {i}"\nmatrix:\n  i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n'
                        'output: "{i}.mp4"\n')
    state, out = tmp_path / "state", tmp_path / "exports"
    env = runner_env(NOVITA_API_KEY=KEY, RUNNER_READ_TIMEOUT="1.5")
    texts: list[bytes] = []
    with SimProcess({"task_seconds": 0.3, "seed": 3, **EVERY_FAULT}, log=tmp_path / "sim.log") as sim:
        run = _runner("run", str(manifest), "--state", str(state), "--base-url", sim.base_url, "--rpm", "none",
                      "--poll-rpm", "none", "--poll-interval", "0.05")
        first = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        first.send_signal(signal.SIGTERM)
        texts.extend(first.communicate(timeout=60))
        second = subprocess.run(run, env=env, capture_output=True, timeout=90)
        texts.extend([second.stdout, second.stderr])
        assert second.returncode in (0, 1, 4), second.stderr.decode()[-2000:]
    out.mkdir()
    for fmt, dest in (("jsonl", out / "jobs.jsonl"), ("csv", out / "jobs.csv"), ("hf", out / "hf")):
        done = subprocess.run(_runner("export", str(manifest), "--state", str(state), "--format", fmt,
                                      "--to", str(dest)), env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        texts.extend([done.stdout, done.stderr])
    status = subprocess.run(_runner("status", str(manifest), "--state", str(state), "--json"), env=env,
                            capture_output=True, timeout=60)
    texts.extend([status.stdout, status.stderr])
    files = [p for root in (state, out) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mp4" for p in files) and any(p.name == "ledger.db" for p in files), files
    assert b"submit" in b"".join(texts), "the logs are empty: the scan would prove nothing"
    for form in _forms(KEY):
        for text in texts:
            assert form not in text, f"a form of the key ({form!r}) appears in the output"
        for path in files:
            assert form not in path.read_bytes(), f"a form of the key ({form!r}) appears in {path}"
