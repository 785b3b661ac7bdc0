"""A PostgreSQL ledger whose socket is descriptor 1024 or above (review of the limits sweep, 2026-12-05).

A run raises its soft open-file limit to what its connections need (``runner.service.open_files``): at
``--concurrency`` 1000 and more, past 1024 (``select``'s FD_SETSIZE). The check made before every statement, whether
the server dropped the idle connection, asked ``select.select``, which refuses a descriptor past 1023 (ValueError):
read as dropped, so every statement of a ledger connection made after the HTTP pool had filled the low descriptors
(a reconnect after a server restart) connected to the server again — a new session, a look at its write mark.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runner.jobs import JobSpec
from runner.ledger.postgres import connection as pg_connection
from runner.ledger.postgres import open_postgres_ledger
from runner.ledger.postgres.reach import dropped

FAR = 1100  # past select's FD_SETSIZE (1024)


@contextmanager
def low_descriptors_taken() -> Iterator[None]:
    """Every descriptor below :data:`FAR` taken, as by a run's HTTP connections: the next one opened is above."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FAR + 64:
        pytest.skip(f"the hard open-file limit ({hard}) is below {FAR + 64}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, FAR + 64) if soft != resource.RLIM_INFINITY else soft, hard))
    held = []
    try:
        while (fd := os.open(os.devnull, os.O_RDONLY)) < FAR:
            held.append(fd)
        os.close(fd)
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_ledger_connection_past_descriptor_1023_is_not_made_again_at_every_statement(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects = []
    real = pg_connection.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        raw = real(*args, **kwargs)
        connects.append(raw.pgconn.socket)
        return raw

    monkeypatch.setattr(pg_connection, "connect", counting)
    with low_descriptors_taken(), open_postgres_ledger(pg_url, tmp_path / "state") as ledger:
        raw = ledger._conn.raw
        assert raw.pgconn.socket >= 1024, raw.pgconn.socket
        assert not dropped(raw)  # idle, and the server said nothing
        for i in range(10):
            job = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5}, vars={},
                                repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)
            ledger.register("m", "d", [job])
            assert ledger.get(job.key) is not None
    assert len(connects) == 1, f"connected {len(connects)} times (descriptors {connects[:5]}…)"
