"""Child processes of the crash tests: whatever happened, a child is killed if alive, reaped and its pipes closed."""

from __future__ import annotations

import subprocess


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
