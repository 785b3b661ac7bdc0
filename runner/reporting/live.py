"""The rich live display of a run: jobs by state, rates, ETA, spend, in-doubt jobs highlighted.

:func:`render` is a pure function of a :class:`~runner.reporting.tracker.Snapshot`,
so it is tested without a terminal.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runner.jobs import JobState
from runner.reporting.text import duration
from runner.reporting.tracker import Snapshot

__all__ = ["IN_DOUBT_STYLE", "render"]

IN_DOUBT_STYLE = "bold white on red"
_STATE_STYLES = {
    JobState.PENDING: "dim",
    JobState.SUBMITTING: "cyan",
    JobState.RUNNING: "cyan",
    JobState.SUCCEEDED: "blue",
    JobState.DONE: "green",
    JobState.FAILED: "red",
    JobState.LOST: "bold red",
    JobState.IN_DOUBT: IN_DOUBT_STYLE,
}
_ALWAYS = (JobState.PENDING, JobState.RUNNING, JobState.DONE, JobState.IN_DOUBT)


def _states(snapshot: Snapshot) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    table.add_column("state")
    table.add_column("jobs", justify="right")
    table.add_column("")
    for state in JobState:
        count = snapshot.counts.get(state, 0)
        if not count and state not in _ALWAYS:
            continue
        style = _STATE_STYLES[state]
        note = ""
        if state is JobState.IN_DOUBT:
            if count:
                note = "held: may be billed; decide with runner retry --in-doubt"
            else:
                style = "dim"
        label = "in doubt" if state is JobState.IN_DOUBT else str(state)
        table.add_row(Text(label, style=style), Text(str(count), style=style),
                      Text(note, style="bold red" if note else ""))
    return table


def render(snapshot: Snapshot) -> RenderableType:
    """The live panel for one snapshot."""
    total = snapshot.total
    header = Text()
    header.append(f"{snapshot.finished}/{total} finished", style="bold")
    header.append(f"   elapsed {duration(snapshot.elapsed)}")
    if snapshot.stopping:
        header.append(f"   stopping ({snapshot.stopping}): no new submits", style="bold yellow")
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=max(total, 1), completed=snapshot.finished, width=48,
                            complete_style="green", finished_style="green"),
                Text(f"{100 * snapshot.finished / total:.0f}%" if total else "-"))
    eta = "done" if snapshot.eta == 0 else ("estimating…" if snapshot.eta is None else duration(snapshot.eta))
    rates = Text()
    rates.append(f"submits {snapshot.submit_rate:.1f}/min   finished {snapshot.finish_rate:.1f}/min   ETA {eta}")
    spend = Text(f"spent so far ~{snapshot.spent_usd:.2f} USD (estimate)")
    if snapshot.rate_limited:
        spend.append(f"   submits refused and retried later: {snapshot.rate_limited}", style="yellow")
    parts: list[RenderableType] = [header, bar, _states(snapshot), rates, spend]
    if snapshot.recent:
        recent = Text()
        for i, line in enumerate(snapshot.recent):
            style = "bold red" if line.startswith(("IN DOUBT", "LOST", "fatal")) else "yellow"
            recent.append(("\n" if i else "") + line, style=style)
        parts.append(recent)
    title = f"runner · {snapshot.scope or 'whole ledger'}"
    border = "red" if snapshot.in_doubt else "blue"
    return Panel(Group(*parts), title=title, title_align="left", border_style=border, expand=False)
