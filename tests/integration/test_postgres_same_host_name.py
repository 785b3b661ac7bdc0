"""Two machines of one host name on one PostgreSQL ledger (two VMs both ``ubuntu``, a StatefulSet's ``runner-0`` in two
clusters, ``docker compose`` replicas of one ``hostname:``): each lease row names its runner by that name and a PID of
its own machine. Here such a row reads as "a process of this host" that does not exist, or is some unrelated one. Work
is owned by the lease alone (its TTL on the server's clock), never by a PID judged here: a live runner of the other
machine, its submit on the wire, keeps its jobs — none is taken over, held in doubt or sent again — until its lease
expires. This guards that rule: a liveness test by host name and PID would fail it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from runner.jobs import JobSpec, JobState
from runner.ledger.api import LEASE_TTL_S
from runner.ledger.postgres import open_postgres_ledger


def spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                         vars={}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56)


def _gone_pid() -> int:
    """A PID no process of this machine has now (a child reaped): the other machine's runner's, as seen here."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_a_live_runner_whose_lease_names_this_host_and_a_pid_it_has_not_keeps_its_work(pg_url: str,
                                                                                      tmp_path: Path) -> None:
    with open_postgres_ledger(pg_url, tmp_path) as setup:
        setup.register("m", "d", [spec(1), spec(2), spec(3)])
    other_machine = open_postgres_ledger(pg_url, tmp_path)
    try:
        assert other_machine.mark_submitting(spec(1).key) is not None  # its POST on the wire
        assert [job.key for job in other_machine.claim_pending(1, other_machine.owner)] == [spec(2).key]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            changed = admin.execute("UPDATE leases SET host = %s, pid = %s WHERE owner = %s",
                                    (socket.gethostname(), _gone_pid(), other_machine.owner)).rowcount
        assert changed == 1
        with open_postgres_ledger(pg_url, tmp_path) as here:
            assert here.recover_expired(here.owner) == 0, "a live runner's submit held in doubt"
            assert here.mark_submitting(spec(1).key) is None, "a submit on the wire sent again"
            assert [job.key for job in here.claim_pending(5, here.owner)] == [spec(3).key], "its claim taken"
            first = here.get(spec(1).key)
            assert first is not None and first.state is JobState.SUBMITTING and first.owner == other_machine.owner
        later = time.time() + LEASE_TTL_S + 1  # its lease expired (the machine down): only then is its work taken
        with open_postgres_ledger(pg_url, tmp_path, clock=lambda: later) as here:
            assert here.recover_expired(here.owner) == 1
            assert here.get(spec(1).key).state is JobState.IN_DOUBT  # type: ignore[union-attr]
            assert spec(2).key in [job.key for job in here.claim_pending(5, here.owner)]
    finally:
        other_machine.close()
