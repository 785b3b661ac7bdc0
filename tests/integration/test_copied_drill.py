"""A state directory copied with ``cp -a`` on the same host, then opened to write by a command that does not go on
with the batch — a restore drill's ``runner verify`` putting videos back, a ``reject`` — must leave the live original
as it is: marking it moved (as a run from the copy does) refused the live batch's next cron run and told it to run
with ``--state`` of the drill's folder. A run, submit, collect or ``ledger copy`` from the copy still marks it."""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.ledger.sqlite.copy_note import COPY_OF_META
from runner.process_command import current, running
from runner.service.opening import refuse_moved


def _spec(i: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"a slow pan over city {i}", "duration": 5},
                         vars={"i": i}, repeat=1, output=f"{i}.mp4", estimated_usd=0.56)


@pytest.fixture
def command() -> Iterator[None]:
    before = current()
    yield
    running(before or "")


def _live_and_drill(tmp_path: Path) -> tuple[Path, Path]:
    """A live batch's ./state (two jobs sent, their task ids recorded) and a ``cp -a`` of it elsewhere."""
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register("m", "d", [_spec(i) for i in range(4)])
        for i in range(2):
            attempt = ledger.mark_submitting(_spec(i).key)
            assert attempt is not None
            assert ledger.mark_running(_spec(i).key, attempt, task_id=f"task-{i}", http_status=200)
    drill = tmp_path / "drill" / "state"
    drill.parent.mkdir()
    subprocess.run(["cp", "-a", str(state), str(drill)], check=True)
    return state, drill


def _refused(state: Path) -> str | None:
    """Why a run of ``state`` is refused (its ledger marked moved), None when it is not."""
    ledger = open_ledger(state)
    try:
        refuse_moved(ledger, "nothing was sent")
    except RunnerError as exc:
        return str(exc)
    ledger.close()
    return None


@pytest.mark.parametrize("words", ["verify", "reject", "review", "retry", "regenerate", "adopt"])
def test_a_command_that_sends_nothing_from_a_copy_leaves_the_live_original_as_it_is(
        tmp_path: Path, command: None, words: str, caplog: pytest.LogCaptureFixture) -> None:
    state, drill = _live_and_drill(tmp_path)
    running(words)
    with caplog.at_level(logging.WARNING, logger="runner.ledger"), open_ledger(drill) as ledger:
        assert ledger.meta("ledger_id") is not None
    said = caplog.text
    assert f"`runner {words}` sends nothing, so {state} is left as it is" in said, said
    assert "marks it moved" in said and "would pay again" in said
    assert _refused(state) is None  # the live batch's next run goes on from ./state


@pytest.mark.parametrize("words", ["run", "submit", "collect", "ledger copy", ""])
def test_a_command_that_goes_on_from_a_copy_marks_the_original_moved(tmp_path: Path, command: None,
                                                                      words: str) -> None:
    state, drill = _live_and_drill(tmp_path)
    running(words)  # "": no CLI command (the service used as a library): the safe side
    with open_ledger(drill):
        pass
    said = _refused(state)
    assert said is not None and f"--state {drill}" in said, said


@pytest.mark.parametrize("words", ["verify", "reject", "review", "retry", "regenerate", "adopt", "ledger reopen"])
def test_a_run_from_a_copy_a_command_that_sends_nothing_opened_first_marks_the_original(
        tmp_path: Path, command: None, words: str) -> None:
    """That command's open makes the copy's mark its own: the note it leaves is what a run from the copy looks at."""
    state, drill = _live_and_drill(tmp_path)
    running(words)
    with open_ledger(drill):
        pass
    assert f"path {socket.gethostname()}:{drill.resolve()}/ledger.db" in (drill / "ledger.mark").read_text()
    assert _refused(state) is None
    running("run")
    with open_ledger(drill) as ledger:
        assert ledger.meta(COPY_OF_META) is None  # the original marked: nothing left to look at
    said = _refused(state)
    assert said is not None and f"--state {drill}" in said, said
