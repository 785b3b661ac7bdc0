"""Jobs named on the command line (the review commands'): see :mod:`runner.reporting.select`."""

from __future__ import annotations

from runner.reporting.select import resolve_keys

__all__ = ["resolve_keys"]
