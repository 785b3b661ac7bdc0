"""Issue 10: no module in runner/ over 400 lines, and each ledger backend is ONE class (no mixins)
whose protocol verbs are its own methods (delegating to helper modules of functions)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import runner
from runner.ledger import LedgerBackend, MemoryLedger, SqliteLedger
from runner.ledger.postgres import PostgresLedger

PACKAGE_DIR = Path(runner.__file__).parent
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_no_module_is_over_400_lines(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{module} has {lines} lines; split it by concept"


def _verbs() -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(LedgerBackend) if not name.startswith("_"))


@pytest.mark.parametrize("backend", [SqliteLedger, MemoryLedger, PostgresLedger], ids=lambda c: c.__name__)
def test_each_backend_is_one_class_without_mixins(backend: type) -> None:
    assert backend.__mro__ == (backend, object)
    missing = [verb for verb in _verbs() if verb != "state_dir" and verb not in vars(backend)]
    assert not missing, f"{backend.__name__} does not define {missing} itself"
