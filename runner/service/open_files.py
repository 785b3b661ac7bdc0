"""The open-file limit (``ulimit -n``, RLIMIT_NOFILE) a run needs, and what the run does when it is lower.

A run holds a socket per HTTP connection and, per download, the video's temporary file, beside a few dozen
descriptors of its own (stdio, the event loop, the ledger and its WAL, the rescue journal, a module being imported).
With the table full every open fails with EMFILE: a connect (nothing sent, but the run stopped as if the provider were
unreachable), a download's temporary file, an import between a POST and its record (limits sweep, 2026-12-05:
``--concurrency 200`` under ``ulimit -n 64`` held 51 paid jobs in doubt).

:func:`fit` does what servers do with the soft limit (Go's runtime, nginx's ``worker_rlimit_nofile``): it raises it
to what the run needs, as far as the hard limit allows. When even the hard limit is lower, the run opens fewer
connections and downloads at once, to fit, and says so once with the command that lifts it; below :data:`MINIMUM`
it does not start (exit 6). The concurrency, tasks outstanding at the provider, needs no descriptor and stays as
asked: requests wait for a connection instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.errors import DiskError

__all__ = ["MINIMUM", "RESERVE", "Fit", "fit"]

RESERVE = 32  # descriptors a run holds besides its connections and downloads (measured: 13 at --concurrency 1)
MINIMUM = 24  # below this a run does not start: the import, file or socket that fails first is a matter of luck


@dataclass(frozen=True, slots=True)
class Fit:
    """What the run opens at once: ``connections`` (every HTTP request's), ``downloads`` (each also a file), and the
    warning to give when that is less than asked (None: as asked)."""

    connections: int
    downloads: int
    notice: str | None = None


def fit(connections: int, downloads: int) -> Fit:
    """``connections`` and ``downloads`` at once, within the open-file limit (raising the soft limit if it must).

    Raises :class:`~runner.errors.DiskError` (exit 6, nothing sent) when the limit is below :data:`MINIMUM`."""
    needed = connections + downloads + RESERVE
    try:
        import resource  # (POSIX: elsewhere there is no such limit to meet)

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return Fit(connections, downloads)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= needed:
        return Fit(connections, downloads)
    target = needed if hard == infinite else min(hard, needed)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):  # (macOS refuses more than OPEN_MAX even under an infinite hard limit)
            pass
    if soft >= needed:
        return Fit(connections, downloads)
    if soft < MINIMUM:
        raise DiskError(f"the open-file limit (ulimit -n {soft}) is too low for a run, which needs {MINIMUM} descriptors"
                        f" at the least and {needed} for full speed; nothing was sent. Raise it (`ulimit -n {needed}`,"
                        " systemd: LimitNOFILE=) and run again")
    room = max(soft - RESERVE, 2)
    fewer_downloads = max(1, min(downloads, room // 4))  # a download holds a connection too
    fewer = max(1, room - fewer_downloads)
    return Fit(fewer, fewer_downloads, (
        f"the open-file limit (ulimit -n {soft}) is below the {needed} descriptors this run would use ({connections}"
        f" connections and {downloads} downloads at once): it opens at most {fewer} connections and {fewer_downloads}"
        " downloads at once, and requests wait for one (the concurrency, tasks outstanding at the provider, is"
        f" unchanged); `ulimit -n {needed}` (systemd: LimitNOFILE=) before the run lifts that"))
