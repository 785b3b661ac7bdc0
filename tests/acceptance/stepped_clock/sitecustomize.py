"""A wall clock a test can step, for the runner processes it starts (``PYTHONPATH=<this folder>:…``).

``RUNNER_TEST_CLOCK_FILE`` names a file holding an offset in seconds (a test rewrites it between runs or during
one: a step of NTP, a VM restored from a snapshot, a laptop resumed days later). Read again at most every 20 ms,
it is added to ``time.time``, ``time.time_ns``, ``datetime.now`` / ``utcnow`` / ``today``, and to ``time.gmtime``,
``localtime``, ``strftime`` and ``ctime`` when they read the clock themselves. The steady clocks (``monotonic``,
``perf_counter``, ``CLOCK_BOOTTIME``: the event loop's) are left alone, as a real step leaves them. Without the
variable nothing changes. Loaded by Python at start-up (the ``site`` module), before the runner's first import.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from typing import Any

_FILE = os.environ.get("RUNNER_TEST_CLOCK_FILE")

if _FILE:
    _real_time, _real_time_ns, _real_monotonic = time.time, time.time_ns, time.monotonic
    _real_gmtime, _real_localtime, _real_strftime, _real_ctime = time.gmtime, time.localtime, time.strftime, time.ctime
    _state = {"offset": 0.0, "read": -1.0}

    def _offset() -> float:
        now = _real_monotonic()
        if now - _state["read"] > 0.02:
            _state["read"] = now
            try:
                with open(_FILE, encoding="utf-8") as file:
                    _state["offset"] = float(file.read().strip() or 0)
            except (OSError, ValueError):
                pass  # mid-rewrite: the last offset read
        return _state["offset"]

    def _time() -> float:
        return _real_time() + _offset()

    def _time_ns() -> int:
        return _real_time_ns() + int(_offset() * 1e9)

    def _gmtime(secs: float | None = None) -> time.struct_time:
        return _real_gmtime(_time() if secs is None else secs)

    def _localtime(secs: float | None = None) -> time.struct_time:
        return _real_localtime(_time() if secs is None else secs)

    def _strftime(fmt: str, t: Any = None) -> str:
        return _real_strftime(fmt, _localtime() if t is None else t)

    def _ctime(secs: float | None = None) -> str:
        return _real_ctime(_time() if secs is None else secs)

    class _SteppedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> Any:
            return cls.fromtimestamp(_time(), tz)

        @classmethod
        def utcnow(cls) -> Any:
            return cls.fromtimestamp(_time(), _dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return cls.fromtimestamp(_time())

    time.time, time.time_ns = _time, _time_ns  # type: ignore[assignment]
    time.gmtime, time.localtime, time.strftime, time.ctime = _gmtime, _localtime, _strftime, _ctime  # type: ignore[assignment]
    _dt.datetime = _SteppedDatetime  # type: ignore[misc]
