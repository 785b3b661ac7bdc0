"""This boot's id and steady clock (runner/boot.py), which time TASK_NOT_FOUND spans and a lease's last look."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from runner import boot

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CLOCK_BOOTTIME and boot_id are Linux's")


def test_a_stamp_names_this_boot_and_runs_with_the_monotonic_clock() -> None:
    """The id is the kernel's boot id; the clock never runs behind the monotonic clock (it counts a suspend as well)
    and a wall clock's step does not move it."""
    first = boot.this_boot()
    assert first is not None
    assert first[0] == Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    monotonic = time.monotonic()
    second = boot.this_boot()
    assert second is not None and second[0] == first[0] and first[1] <= second[1]
    assert second[1] >= monotonic - 1.0  # CLOCK_BOOTTIME ≥ CLOCK_MONOTONIC: the same count, plus suspends


def test_no_boot_id_is_no_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the boot cannot be named, answers are timed as before (the ledger's clock): no stamp."""
    monkeypatch.setattr(boot, "_BOOT_ID", None)
    assert boot.this_boot() is None
