"""What a command stopped by a signal outside the engine says of the requests it had on the wire.

`runner adopt KEY TASK` asks the provider about the task (a task-result GET) before it records anything: Ctrl-C
while that GET was on the wire said "SIGINT: stopped (no request was on the wire)". No command has a paid request (a
submit's POST) on the wire when such a stop unwinds — the engine's own handlers stop a run's submits — but some have a
look-up or a download: the line says what is true of every one. And that Ctrl-C landed inside the look-up's event
loop, which swallowed it: adopt went on waiting for the answer till the read timeout (about two minutes; a second
Ctrl-C was ignored as the first's unwinding). The look-up is cut at once now (runner.service.stoppable); the 30 s
finish_cli allows is a guard against that hang, not a timed assertion.

A real subprocess against a provider that reads the request and never answers; the GET seen, the signal sent.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from runner.client.connection import provider_identity
from runner.ledger import open_ledger
from runner.ledger.rescue import CRASH_ENV
from runner.service.provider import PROVIDER_META

from test_cli_support import (
    SIX_JOBS,
    ProviderFactory,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest


def test_adopt_stopped_with_its_look_up_on_the_wire_does_not_say_no_request_was(
        tmp_path: Path, provider: ProviderFactory) -> None:
    sim = provider()
    manifest = write_manifest(tmp_path, SIX_JOBS.replace("concurrency: 1", "concurrency: 3"))
    state = tmp_path / "state"
    killed = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path,
                     env={CRASH_ENV: "write-ahead-group"})  # write-aheads committed, no POST: jobs left submitting
    assert killed.code == -signal.SIGKILL, str(killed)
    with open_ledger(state, readonly=True) as ledger:
        key = next(job.key for job in ledger.iter_jobs("six") if str(job.state) == "submitting")

    with socket.create_server(("127.0.0.1", 0)) as silent:  # a provider that never answers
        silent.settimeout(60)  # a guard against a hang, not a timed assertion
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with open_ledger(state) as ledger:  # the ledger's provider, which now reads requests and answers none
            ledger.set_meta(PROVIDER_META, provider_identity(url))
        proc = start_cli("adopt", key, "task-0001", "--state", str(state), cwd=tmp_path)
        stderr = ""
        try:
            try:
                conn, _ = silent.accept()
            except TimeoutError:
                proc.kill()
                raise AssertionError(f"adopt sent no request: {finish_cli(proc)}") from None
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:  # the whole GET received: it is on the wire
                    chunk = conn.recv(4096)
                    assert chunk, "the connection closed before a request"
                    request += chunk
                assert request.startswith(b"GET ") and b"task-0001" in request, request
                proc.send_signal(signal.SIGINT)
                stderr = finish_cli(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                stderr += finish_cli(proc)
    assert proc.returncode == 3, stderr
    assert "SIGINT: stopped" in stderr and "no request was on the wire" not in stderr, stderr
    assert "no paid request was on the wire" in stderr, stderr
    assert "run the same `runner adopt` again" in stderr, stderr
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(key, "six")
        assert job is not None and str(job.state) == "in_doubt" and job.task_id is None  # nothing attached
    assert sim.accepted() == 0  # nothing paid
