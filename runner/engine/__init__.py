"""The engine: submit, poll, apply updates and fetch, as lanes over bounded streams (see core.py)."""

from __future__ import annotations

from runner.engine import events
from runner.engine.core import Engine
from runner.engine.events import Event, Reporter
from runner.engine.fetch import materialise_targets
from runner.engine.policy import EngineConfig, Policy
from runner.engine.sources import SendUpdate, TaskUpdateSource
from runner.engine.state import RunResult, RunState, StopReason
from runner.engine.updates import TaskUpdate, update_from_result

__all__ = [
    "Engine",
    "EngineConfig",
    "Event",
    "Policy",
    "Reporter",
    "RunResult",
    "RunState",
    "SendUpdate",
    "StopReason",
    "TaskUpdate",
    "TaskUpdateSource",
    "events",
    "materialise_targets",
    "update_from_result",
]
