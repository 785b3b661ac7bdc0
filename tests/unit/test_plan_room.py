"""`runner plan`'s room warning weighs each disk as a run does: the ledger's 64 MiB on the state directory's disk,
the videos on the outputs' (runner/service/planning.py, runner/engine/admission.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.service.planning import Notice, plan
from runner.storage import Room
from runner.storage.local import LocalStore
from runner.storage.room import DISK_RESERVE, video_bytes

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo.yaml"


def _warnings(state: Path) -> list[str]:
    said: list[Notice] = []
    plan(DEMO, state, notify=said.append)
    return [notice.text for notice in said if "free" in notice.text]


def test_plan_looks_for_the_ledger_s_reserve_on_the_ledger_s_disk(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With the outputs on a disk of their own, plan counted the 64 MiB against it (a warning for a disk with room for
    every video) and never looked at the disk that holds the ledger."""
    summary = plan(DEMO, tmp_path / "state").as_dict()
    jobs = summary["counts"]["pending"]
    video = video_bytes(summary["model"], {"duration": 5})
    room = {"ledger.db": DISK_RESERVE}
    monkeypatch.setattr(LocalStore, "room", lambda self, rel, other: Room(jobs * video, room[other]))  # the videos, exactly
    assert _warnings(tmp_path / "state") == []
    room["ledger.db"] = DISK_RESERVE - 1
    said = _warnings(tmp_path / "state")
    assert len(said) == 1 and "(the ledger)" in said[0], said
