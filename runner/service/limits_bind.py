"""Which run setting will bind a run's throughput: the one ``runner plan`` names (issue 14).

Each limit allows so many jobs a minute: ``concurrency`` C tasks outstanding of T seconds each
allow C × 60 / T (T: the typical task time plan's forecast uses, learned from this ledger, or
``TASK_SECONDS``); ``rpm`` allows that many submits; ``poll_rpm`` about
``poll_rpm / POLLS_PER_JOB`` (the first poll goes at the typical task time); ``downloads`` D workers
of about ``DOWNLOAD_SECONDS`` each allow D × 60 / s. A lifted limit (``none``) allows any rate; the
poller without ``--poll-rpm`` follows the tasks' due times and backs off on 429. The smallest binds.
The times are assumptions, printed with the figures: a run learns the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.config import MAX_DOWNLOADS, RunSettings, download_workers
from runner.reporting.eta import DEFAULT_TASK_SECONDS

__all__ = ["DOWNLOAD_SECONDS", "POLLS_PER_JOB", "TASK_SECONDS", "binding_limit", "binding_text"]

TASK_SECONDS = DEFAULT_TASK_SECONDS  # assumed time of one task when the ledger has none done (the forecast's too)
POLLS_PER_JOB = 2.0  # polls a job needs: the first just after the typical task time, rarely more than one again
DOWNLOAD_SECONDS = 5.0  # assumed time of one download (tens of MB)


def binding_limit(settings: RunSettings, *, task_seconds: float = TASK_SECONDS) -> dict[str, Any]:
    """Jobs a minute each limit allows, and the name of the smallest (``plan --json``'s ``binding_limit``)."""
    per_minute: dict[str, float | None] = {
        "concurrency": settings.concurrency * 60.0 / max(task_seconds, 1e-9),
        "rpm": settings.rpm,
        "poll_rpm": None if settings.poll_rpm is None else settings.poll_rpm / POLLS_PER_JOB,
        "downloads": _downloads(settings) * 60.0 / DOWNLOAD_SECONDS,
    }
    capped = {name: rate for name, rate in per_minute.items() if rate is not None}
    name = min(capped, key=lambda n: capped[n])  # concurrency and downloads are never lifted
    return {
        "name": name,
        "value": _downloads(settings) if name == "downloads" else getattr(settings, name),
        "jobs_per_minute": round(capped[name], 2),
        "jobs_per_minute_by_limit": {n: None if r is None else round(r, 2) for n, r in per_minute.items()},
        "assumed": {"task_seconds": task_seconds, "polls_per_job": POLLS_PER_JOB, "download_seconds": DOWNLOAD_SECONDS},
    }


def _downloads(settings: RunSettings) -> int:
    return download_workers(settings.downloads, settings.concurrency)


def binding_text(binding: Mapping[str, Any]) -> str:
    """One line for ``runner plan``: the limit that binds and what the others allow."""
    rates = binding["jobs_per_minute_by_limit"]
    others = ", ".join(f"{n} {'no cap' if r is None else f'~{r:g}/min'}" for n, r in rates.items() if n != binding["name"])
    assumed = binding["assumed"]
    most = ", the most runner starts at once" if binding["name"] == "downloads" and binding["value"] >= MAX_DOWNLOADS else ""
    return (f"throughput: {binding['name']} ({binding['value']:g}{most}) binds at about {binding['jobs_per_minute']:g} jobs/min"
            f" (tasks of ~{_seconds(assumed['task_seconds'])} s, downloads of ~{assumed['download_seconds']:g} s assumed);"
            f" {others}")


def _seconds(value: float) -> str:
    """A task time as the line says it: 3 significant digits below 100 s (1.07), whole seconds above (1235)."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
