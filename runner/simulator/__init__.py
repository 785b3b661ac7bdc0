"""The built-in Novita simulator: a fake provider for trying runner without a key, and for tests.

It models the real async API of ``docs/provider.md`` — auth, request
validation, the task life cycle, presigned result URLs that expire — and its
failures, each a seeded probability in :class:`SimConfig`: rate limits,
CREATE_TASK_FAILED (some after a paid task was created), every documented
refusal (ILLEGAL_PROMPT, the balance, a key not allowed…), gateway pages (some
after a paid task was created), dropped connections, slow and malformed
answers, a replayed task id, failed tasks, flaky polls, truncated downloads and
expired URLs, a transient TASK_STATUS_UNKNOWN. Where Novita's own docs and
clients disagree or say nothing, a fidelity knob chooses (``auth_401``,
``bare_key``, ``retry_after_header``, ``extra_in_results``, ``fresh_urls``,
``max_concurrent``, ``shared_rpm``, ``data_uri_images``, ``tasks_per_key``,
``task_retention_seconds``, ``task_usd``). Every registered endpoint is
served with its own validation, and a task's video has the size and length
its request asked for. ``stats()`` accounts for every paid task, so a test can
prove nothing was paid twice.

Three ways to reach it::

    sim = Simulator(SimConfig(task_seconds=0.5), clock=ManualClock())
    httpx.AsyncClient(transport=sim_transport(sim), base_url="http://sim")  # in-process
    with SimulatorThread(sim) as server: ...  # real loopback socket, server.base_url
    python -m runner.simulator --port 0       # a subprocess; prints its URL on stderr
"""

from __future__ import annotations

from runner.simulator.app import Simulator
from runner.simulator.asgi import DropConnection
from runner.simulator.config import Clock, ManualClock, SimConfig
from runner.simulator.server import SimulatorThread, serve, serve_until_signalled
from runner.simulator.tasks import TaskSnapshot
from runner.simulator.transport import sim_transport

__all__ = [
    "Clock",
    "DropConnection",
    "ManualClock",
    "SimConfig",
    "Simulator",
    "SimulatorThread",
    "TaskSnapshot",
    "serve",
    "serve_until_signalled",
    "sim_transport",
]
