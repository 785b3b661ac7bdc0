"""JobRecord from a plain row (the hot reads) and from a dict row (the others) agree, column for column."""

from __future__ import annotations

import pytest

from runner.jobs import JobState
from runner.ledger.records import JOB_COLUMNS, JobRecord


def _columns() -> list[str]:
    return [column.strip().removeprefix("j.") for column in JOB_COLUMNS.split(",")] + ["output"]


def test_from_tuple_reads_the_columns_in_their_order() -> None:
    """Every column gets a distinct value: a field read from the wrong position shows."""
    values = {name: f"v-{name}" for name in _columns()}
    values.update(request_json='{"prompt": "p"}', vars_json='{"i": 1}', state="running", sample=2, id=7)
    row = tuple(values[name] for name in _columns())
    assert JobRecord.from_tuple(row) == JobRecord.from_row(values)
    assert JobRecord.from_tuple(row).state is JobState.RUNNING


def test_from_tuple_refuses_what_from_row_refuses() -> None:
    """An unknown state or a row of the wrong shape raises (the ledger reports it as damage)."""
    values = {name: None for name in _columns()}
    values.update(request_json="{}", vars_json="{}", state="nonsense", sample=None)
    with pytest.raises(KeyError):
        JobRecord.from_tuple(tuple(values[name] for name in _columns()))
    with pytest.raises(ValueError):
        JobRecord.from_tuple(("too", "short"))


def test_non_finite_variables_of_an_older_ledger_are_read_as_their_text() -> None:
    """A ledger planned before NaN/±Infinity values were refused holds ``{"x":NaN}``; read as such it made every JSON
    output invalid (jq, HF datasets refuse it). They read as the text the value rendered in prompts and names."""
    values = {name: None for name in _columns()}
    values.update(request_json='{"prompt": "p"}', vars_json='{"n":NaN,"i":Infinity,"m":[-Infinity],"s":"NaN"}',
                  state="done", sample=0, id=1)
    expected = {"n": "nan", "i": "inf", "m": ["-inf"], "s": "NaN"}
    assert JobRecord.from_row(values).vars == expected
    assert JobRecord.from_tuple(tuple(values[name] for name in _columns())).vars == expected
