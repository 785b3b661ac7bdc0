"""A process paused (SIGSTOP, Ctrl-Z, a frozen VM) longer than the read timeout must not turn answered
submits into in-doubt jobs: time spent paused does not count against a submit's timeout."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from test_cli_support import (
    KEY,
    ProviderFactory,
    clean_env,
    cli_argv,
    counts,
    provider,
    run_args,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

READ_TIMEOUT_S = 1.0
PAUSE_S = 3.0  # longer than the read timeout: the answers arrive while the runner is stopped


def test_sigstop_past_the_read_timeout_keeps_answered_submits(tmp_path: Path, provider: ProviderFactory) -> None:
    """SIGSTOP while POSTs are on the wire, for 3x the read timeout, then SIGCONT: every job done, none in doubt."""
    sim = provider(p_slow=1.0, slow_seconds=0.3)  # every answer is held 0.3 s: the POSTs are pending when we stop
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        cli_argv(*run_args("run", manifest, state, *sim.engine_args())), cwd=tmp_path,
        env=clean_env({"NOVITA_API_KEY": KEY, "RUNNER_READ_TIMEOUT": str(READ_TIMEOUT_S)}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: sim.accepted() >= 1, what="a submit on the wire")
        proc.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_S)  # the pause itself is what is tested: it has to be real time
        proc.send_signal(signal.SIGCONT)
        sim.sim.configure(p_slow=0.0)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in stderr, stderr
    assert counts(state) == {"done": 3}, stderr
    assert proc.returncode == 0, stderr
    assert sim.max_per_body() == 1
