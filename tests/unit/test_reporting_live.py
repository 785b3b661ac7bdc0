"""The rich live display, rendered without a terminal: states, rates, ETA, spend, in-doubt jobs highlighted."""

from __future__ import annotations

import io

import anyio
import pytest
from rich.console import Console

from runner.engine import events as ev
from runner.jobs import JobState
from runner.reporting.live import render
from runner.reporting.progress import RichReporter
from runner.reporting.tracker import Snapshot


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def snapshot(**by_state: int) -> Snapshot:
    return Snapshot(
        scope="demo-timelapses", elapsed=75.0, counts={JobState(k): v for k, v in by_state.items()},
        spent_usd=2.24, submitted=4, done=3, submit_rate=3.2, finish_rate=2.4, eta=100.0,
        recent=("failed 53a6: upstream generation failed",),
    )


def draw(renderable: object, *, color: bool) -> str:
    console = Console(file=io.StringIO(), width=110, force_terminal=color, color_system="standard" if color else None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_live_panel_shows_states_rates_eta_and_spend() -> None:
    """The panel names the manifest, finished/total, each state's count, the rates, the ETA and the spend."""
    text = draw(render(snapshot(pending=2, running=2, done=3, failed=1)), color=False)
    assert "runner · demo-timelapses" in text
    assert "4/8 finished" in text
    for label, n in (("pending", 2), ("running", 2), ("done", 3), ("failed", 1)):
        assert any(label in line and str(n) in line for line in text.splitlines()), label
    assert "submits 3.2/min" in text and "finished 2.4/min" in text and "ETA 1m40s" in text
    assert "~2.24 USD (estimate)" in text
    assert "upstream generation failed" in text


def test_in_doubt_jobs_are_highlighted_only_when_there_are_some() -> None:
    """In-doubt jobs show in white on red with the way out; zero in doubt stays quiet."""
    held = draw(render(snapshot(done=3, in_doubt=2)), color=True)
    calm = draw(render(snapshot(done=3, in_doubt=0)), color=True)
    red_background = "\x1b[1;37;41m"  # bold, white on red
    assert red_background + "in doubt" in held
    assert "runner retry --in-doubt" in held
    assert red_background not in calm
    assert "retry --in-doubt" not in calm


def test_eta_reads_estimating_before_anything_finished() -> None:
    """With no finish yet there is no rate: the ETA says so instead of inventing one."""
    snap = Snapshot(scope=None, elapsed=3.0, counts={JobState.PENDING: 5}, spent_usd=0.0)
    text = draw(render(snap), color=False)
    assert "ETA estimating" in text and "whole ledger" in text


@pytest.mark.anyio
async def test_rich_reporter_leaves_the_final_frame_and_a_summary() -> None:
    """When the engine returns, the display shows the final counts and close() prints the ending."""
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    reporter = RichReporter(None, "demo", console=console, refresh=0.01, counts={JobState.PENDING: 1})
    async with anyio.create_task_group() as tg:
        tg.start_soon(reporter.run)
        await anyio.sleep(0.05)
        reporter.emit(ev.Accepted(key="a", task_id="t", estimated_usd=0.56))
        reporter.emit(ev.Succeeded(key="a", task_id="t"))
        reporter.emit(ev.Stored(key="a", path="x.mp4", bytes=5))
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()

    class Result:
        reason, error = "complete", None

    reporter.close(Result())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1/1 finished" in out
    assert out.rstrip().endswith("[complete]")
