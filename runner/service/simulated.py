"""The built-in simulator a ``--simulate`` run talks to, started for the run and ended with it.

Each run starts one of its own, and a provider outlives the runner that paid it: tasks an earlier run of the ledger
left running (a Ctrl-C, SIGTERM, a kill) are known to it from the ledger — a fresh simulator knew none of them, so
the next run polled them as tasks the provider does not know ("running 3" until its runtime ran out, run after run:
a task is lost only after 6 h over three runs). Each finishes its simulated time from when it was sent, as the
earlier simulator would have finished it. A simulated ledger's tasks were never paid; the real provider is never
asked about them (``check_provider_kind``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.service.outcome import Notice, Notify

__all__ = ["simulator_for"]


@contextlib.contextmanager
def simulator_for(ledger: LedgerBackend, task_seconds: float, say: Notify) -> Iterator[str]:
    """A simulator on a loopback port knowing the tasks ``ledger`` records as running or succeeded; its base URL."""
    from runner.simulator import SimConfig, Simulator, SimulatorThread

    sim = Simulator(SimConfig(task_seconds=task_seconds))
    known = sim.restore((job.task_id, job.model, job.request, job.submitted_at)
                        for job in ledger.iter_jobs(states=(JobState.RUNNING, JobState.SUCCEEDED))
                        if job.task_id is not None)
    with SimulatorThread(sim) as server:
        say(Notice(f"simulator listening on {server.base_url} (tasks take {task_seconds:g} s)"))
        if known:
            say(Notice(f"the simulator knows the {known} task(s) an earlier run of this ledger left running"))
        yield server.base_url
