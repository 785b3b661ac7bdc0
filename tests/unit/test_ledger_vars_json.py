"""The ledger's ``vars_json`` through json's C encoder made once: byte for byte what ``JSONEncoder.encode`` wrote."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.ledger.sqlite import first
from runner.ledger.sqlite.planning import _vars_json

_BEFORE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode

_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
            | st.dates() | st.datetimes())
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@given(st.dictionaries(st.text(max_size=12), _values, max_size=6))
def test_vars_json_is_what_the_json_encoder_wrote(variables: dict[str, object]) -> None:
    assert _vars_json(variables) == _BEFORE(variables)


def test_vars_json_examples() -> None:
    odd = {"b": 1, "a": "cre\u0300me", "d": datetime.date(2024, 1, 2), "f": float("nan"), "s": "\ud800",
           "n": {"z": [1.5, None, True], "y": "q\"\t"}}
    assert _vars_json(odd) == _BEFORE(odd)
    assert _vars_json({}) == "{}"


def test_variables_of_strings_are_written_without_the_general_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual variables (a matrix of texts) go through a function made once per set of names, not the encoder."""
    def refused(*args: object) -> object:
        raise AssertionError("the general encoder was used")

    monkeypatch.setattr(first, "_vars_c", lambda value, level: refused())
    for variables in ({"subject": "fox", "place": "a \"field\"\n"}, {"b%": "%s", "a": "é"}, {}, {"x": "1"}):
        assert _vars_json(variables) == _BEFORE(variables)
    with pytest.raises(AssertionError, match="general encoder"):
        _vars_json({"n": 1})  # not all strings: the encoder, as before
