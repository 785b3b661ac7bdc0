"""How a run fits its connections and downloads to the open-file limit (runner.service.open_files)."""

from __future__ import annotations

import resource

import pytest

from runner.errors import DiskError
from runner.service.open_files import RESERVE, Fit, fit


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """A fake RLIMIT_NOFILE: ``limits["now"]`` is (soft, hard); setrlimit beyond hard fails as the kernel's does."""
    held = {"now": (1024, 4096)}

    def getrlimit(which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return held["now"]

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        hard = held["now"][1]
        if hard != resource.RLIM_INFINITY and value[0] > hard:
            raise ValueError("not allowed to raise maximum limit")
        held["now"] = value

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    return held


def test_a_soft_limit_below_the_need_is_raised_within_the_hard_one(limits: dict[str, tuple[int, int]]) -> None:
    """Soft 256, hard 4096, 1,000 connections wanted: the soft limit goes to what the run needs; nothing capped."""
    limits["now"] = (256, 4096)
    opened = fit(1000, 100)
    assert (opened.connections, opened.downloads, opened.notice) == (1000, 100, None)
    assert limits["now"] == (1000 + 100 + RESERVE, 4096)


def test_a_hard_limit_below_the_need_caps_connections_and_downloads_and_says_so(
        limits: dict[str, tuple[int, int]]) -> None:
    """Hard 64: every descriptor the run opens at once fits in 64, and the warning gives the `ulimit -n` to type."""
    limits["now"] = (64, 64)
    opened = fit(241, 25)
    assert opened.connections + opened.downloads + RESERVE <= 64
    assert 1 <= opened.downloads <= opened.connections
    assert opened.notice is not None and "ulimit -n 64" in opened.notice and f"`ulimit -n {241 + 25 + RESERVE}`" in opened.notice


def test_enough_or_no_limit_changes_nothing(limits: dict[str, tuple[int, int]]) -> None:
    """A limit with room, or none at all: as asked, and the limit left as it was."""
    for now in ((4096, 4096), (resource.RLIM_INFINITY, resource.RLIM_INFINITY)):
        limits["now"] = now
        assert fit(216, 25) == Fit(216, 25, None)
        assert limits["now"] == now


def test_a_limit_below_the_minimum_refuses_the_run(limits: dict[str, tuple[int, int]]) -> None:
    """Hard 16: no run starts (exit 6: DiskError), and the line says which `ulimit -n` it needs."""
    limits["now"] = (16, 16)
    with pytest.raises(DiskError, match=r"ulimit -n 16\) is too low .* \(`ulimit -n 62`"):
        fit(25, 5)
