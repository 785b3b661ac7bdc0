"""The registry of environment variables runner reads (runner/environment.py) is whole, and a typo gets a word."""

from __future__ import annotations

import re
from pathlib import Path

from runner.environment import KNOWN, unknown

ROOT = Path(__file__).resolve().parents[2]
# Variables named on purpose as typos, to test the warning about them.
TYPOS = {"RUNNER_BUDGET", "NOVITA_APIKEY", "RUNNER_CONCURENCY", "RUNNER_NOT_A_THING"}


def test_every_variable_named_in_the_project_is_known() -> None:
    """A variable the code, the docs, CI or the tests name must be in KNOWN, or the CLI would call it unknown."""
    named: set[str] = set()
    for folder in ("runner", "bench", "tests", "docs", ".ci", "contrib"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".sh", ".service", ".timer", ""}:
                named |= set(re.findall(r"\b(?:RUNNER|NOVITA)_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8", "replace")))
    for path in (ROOT / "README.md", ROOT / "Makefile"):
        named |= set(re.findall(r"\b(?:RUNNER|NOVITA)_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8")))
    assert named - TYPOS - KNOWN == set()


def test_a_typo_gets_the_name_it_probably_meant() -> None:
    environ = {"RUNNER_BUDGET": "5", "NOVITA_APIKEY": "k", "RUNNER_CONCURENCY": "8", "RUNNER_NOT_A_THING": "1",
               "RUNNER_RPM": "none", "PATH": "/bin", "NOVITA_API_KEY": "k"}
    assert unknown(environ) == [("NOVITA_APIKEY", "NOVITA_API_KEY"), ("RUNNER_BUDGET", "RUNNER_BUDGET_USD"),
                                ("RUNNER_CONCURENCY", "RUNNER_CONCURRENCY"), ("RUNNER_NOT_A_THING", None)]
