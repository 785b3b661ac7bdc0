"""Matrix semantics: GitHub Actions' product, exclude and include rules, exactly."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runner.manifest.matrix as matrix_module
from runner.errors import ManifestError
from runner.manifest import count_jobs, expand, load_manifest
from runner.manifest.loader import LineMap
from runner.manifest.matrix import Matrix, compile_matrix


def compile_raw(raw: dict[str, Any] | None, *, budget: int = 10**9) -> Matrix:
    return compile_matrix(raw, lines=LineMap("m.yaml"), base=Path("."), budget=budget)


def reference(axes: dict[str, list[Any]], exclude: list[dict[str, Any]], include: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GitHub's documented rules, written as plainly as possible (lists of dicts)."""
    if not axes:
        return [dict(entry) for entry in include] or [{}]
    combos = [dict(zip(axes, values, strict=False)) for values in itertools.product(*axes.values())]
    combos = [c for c in combos if not any(all(c[k] == v for k, v in e.items()) for e in exclude)]
    originals = [dict(c) for c in combos]
    extra = []
    for entry in include:
        matched = False
        for original, current in zip(originals, combos, strict=False):
            if all(original[k] == v for k, v in entry.items() if k in original):
                current.update(entry)
                matched = True
        if not matched:
            extra.append(dict(entry))
    return combos + extra


def test_github_documented_example() -> None:
    """The fruit/animal example of GitHub's docs gives exactly its six combinations."""
    matrix = compile_raw(
        {
            "fruit": ["apple", "pear"],
            "animal": ["cat", "dog"],
            "include": [
                {"color": "green"},
                {"color": "pink", "animal": "cat"},
                {"fruit": "apple", "shape": "circle"},
                {"fruit": "banana"},
                {"fruit": "banana", "animal": "cat"},
            ],
        }
    )
    assert list(matrix.combos()) == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]
    assert matrix.combinations == 6


def test_product_order_is_first_axis_slowest() -> None:
    """Combinations come in the order GitHub documents: the first axis varies slowest."""
    matrix = compile_raw({"version": [10, 12], "os": ["ubuntu", "windows"]})
    assert [tuple(c.values()) for c in matrix.combos()] == [
        (10, "ubuntu"), (10, "windows"), (12, "ubuntu"), (12, "windows")
    ]


def test_exclude_is_a_partial_match() -> None:
    """An exclude entry removes every combination whose values equal all of its keys."""
    matrix = compile_raw(
        {"os": ["mac", "win"], "version": [12, 14, 16], "env": ["stg", "prod"],
         "exclude": [{"os": "mac", "version": 12, "env": "prod"}, {"os": "win", "version": 16}]}
    )
    combos = list(matrix.combos())
    assert len(combos) == 12 - 1 - 2 == matrix.combinations
    assert {"os": "win", "version": 16, "env": "stg"} not in combos
    assert {"os": "mac", "version": 12, "env": "stg"} in combos


def test_include_never_overwrites_original_values_but_overwrites_added_ones() -> None:
    """A later include replaces what an earlier include added, never an axis value."""
    matrix = compile_raw(
        {"city": ["Tokyo", "Lima"], "include": [{"mood": "calm"}, {"city": "Lima", "mood": "wild"}]}
    )
    assert list(matrix.combos()) == [{"city": "Tokyo", "mood": "calm"}, {"city": "Lima", "mood": "wild"}]


def test_include_that_extends_nothing_is_new_and_not_extended_later() -> None:
    """An unmatched include is a new combination; later includes do not extend it."""
    matrix = compile_raw(
        {"city": ["Tokyo"], "include": [{"city": "Oslo"}, {"city": "Oslo", "mood": "cold"}]}
    )
    assert list(matrix.combos()) == [{"city": "Tokyo"}, {"city": "Oslo"}, {"city": "Oslo", "mood": "cold"}]


def test_includes_apply_after_excludes() -> None:
    """An include that only matched excluded combinations becomes a new combination."""
    matrix = compile_raw(
        {"city": ["Tokyo", "Lagos"], "exclude": [{"city": "Lagos"}], "include": [{"city": "Lagos", "mood": "x"}]}
    )
    assert list(matrix.combos()) == [{"city": "Tokyo"}, {"city": "Lagos", "mood": "x"}]


def test_no_matrix_is_one_combination() -> None:
    """Without a matrix a manifest is one job per repeat."""
    assert list(compile_raw(None).combos()) == [{}]
    assert list(compile_raw({}).combos()) == [{}]


def test_include_only_matrix_is_one_combination_per_entry() -> None:
    """With no axes, each include is a combination of its own (GitHub's 'includes only')."""
    matrix = compile_raw({"include": [{"site": "prod", "dc": "a"}, {"site": "staging", "dc": "b"}]})
    assert list(matrix.combos()) == [{"site": "prod", "dc": "a"}, {"site": "staging", "dc": "b"}]


def test_values_match_as_text() -> None:
    """10 in an include matches "10" (e.g. read from a CSV file), and true matches "true"."""
    matrix = compile_raw(
        {"rows": [{"d": "10", "s": "true"}, {"d": "5", "s": "false"}], "include": [{"d": 10, "s": True, "tag": "x"}]}
    )
    assert list(matrix.combos()) == [{"d": "10", "s": "true", "tag": "x"}, {"d": "5", "s": "false"}]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def test_empty_axis_is_refused_with_its_line(tmp_path: Path) -> None:
    """An axis with no values would silently plan nothing: it is an error."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: '{city}'\nmatrix:\n  city: []\n"))
    assert (caught.value.line, caught.value.rule) == (4, "empty-axis")


def test_exclude_key_must_be_an_axis(tmp_path: Path) -> None:
    """An exclude naming no axis would exclude nothing: refused with a did-you-mean."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(
            write(tmp_path, "name: x\nprompt: '{city}'\nmatrix:\n  city: [a, b]\n  exclude:\n    - {citty: a}\n")
        )
    error = caught.value
    assert (error.line, error.rule) == (6, "exclude-key") and "did you mean 'city'?" in str(error)


@pytest.mark.parametrize("bad", ["repeat", "key", "my-var"])
def test_axis_names_must_be_free_variable_names(tmp_path: Path, bad: str) -> None:
    """Axis names become {variables}: identifiers only, and not the built-in repeat/key."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, f"name: x\nprompt: p\nmatrix:\n  {bad}: [a]\n"))
    assert caught.value.rule == "axis-name" and caught.value.line == 4


def test_axis_values_must_be_scalars(tmp_path: Path) -> None:
    """A nested list as an axis value is refused at its line."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: '{a}'\nmatrix:\n  a:\n    - x\n    - [y, z]\n"))
    assert (caught.value.line, caught.value.rule) == (6, "axis-value")


def test_count_matches_the_expansion_of_the_cities_example(tmp_path: Path) -> None:
    """count_jobs is computed without expanding and equals the number of jobs expanded."""
    manifest = load_manifest(Path(__file__).parents[2] / "manifests" / "cities.yaml")
    assert count_jobs(manifest) == 42 == sum(1 for _ in expand(manifest))


# ---------------------------------------------------------------- properties

NAMES = ["a", "b", "c"]
VALUES = st.integers(min_value=0, max_value=3)


@st.composite
def matrices(draw: st.DrawFn) -> tuple[dict[str, list[int]], list[dict[str, int]], list[dict[str, int]]]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    axes = {name: draw(st.lists(VALUES, min_size=1, max_size=4)) for name in names}
    exclude = (
        draw(st.lists(st.dictionaries(st.sampled_from(names), VALUES, min_size=1, max_size=3), max_size=4))
        if names
        else []
    )
    include = draw(
        st.lists(st.dictionaries(st.sampled_from([*NAMES, "x", "y"]), VALUES, min_size=1, max_size=4), max_size=5)
    )
    return axes, exclude, include


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices())
def test_matrix_matches_the_reference_implementation(
    case: tuple[dict[str, list[int]], list[dict[str, int]], list[dict[str, int]]],
) -> None:
    """For random axes, excludes and includes, combinations and their count equal the reference."""
    axes, exclude, include = case
    raw: dict[str, Any] = {**axes, "exclude": exclude, "include": include}
    expected = reference(axes, exclude, include)
    matrix = compile_raw(raw)
    assert list(matrix.combos()) == expected
    assert matrix.combinations == len(expected) and matrix.exact
    with patch.object(matrix_module, "CLASS_LIMIT", 0):  # the count-by-streaming path
        streamed = compile_raw(raw)
    assert streamed.combinations == len(expected) and list(streamed.combos()) == expected


def test_count_is_an_upper_bound_only_when_past_the_budget() -> None:
    """When classes are too many to count and the product exceeds the budget, the count is an upper bound."""
    raw = {"a": list(range(50)), "b": list(range(50)), "exclude": [{"a": 1}], "include": [{"z": 1}]}
    with patch.object(matrix_module, "CLASS_LIMIT", 0):
        matrix = compile_raw(raw, budget=100)
    assert not matrix.exact and matrix.combinations == 2500 + 1
    assert compile_raw(raw, budget=100).combinations == 2450 and compile_raw(raw).exact


def test_misspelt_exclude_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """`exlude:` is not silently an axis of mappings: it is refused with a did-you-mean."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: '{a}'\nmatrix:\n  a: [1, 2]\n  exlude:\n    - {a: 1}\n"))
    assert caught.value.rule == "unknown-key" and caught.value.line == 5
    assert "did you mean 'exclude'?" in str(caught.value)


def test_empty_exclude_and_include_are_allowed(tmp_path: Path) -> None:
    """`exclude:` with all entries commented out means no excludes."""
    manifest = load_manifest(
        write(tmp_path, "name: x\nprompt: '{a}'\nmatrix:\n  a: [1, 2]\n  exclude:\n  #  - {a: 1}\n  include: []\n")
    )
    assert count_jobs(manifest) == 2


@pytest.mark.parametrize("raw", [
    {"city": ["Zu\u0308rich", "Oslo", "Malmo\u0308"], "mood": ["calm", "we\u0301ird", "cold", "dry"]},  # plain product of two
    {"city": ["Zu\u0308rich", "Oslo"], "mood": ["calm", "we\u0301ird"], "n": [1, 2]},  # three axes
    {"city": ["Zu\u0308rich", "Oslo"], "mood": ["calm", "we\u0301ird"], "exclude": [{"city": "Oslo", "mood": "calm"}],
     "include": [{"city": "Zu\u0308rich", "note": "a\u0301"}, {"city": "Bergen"}]},
])
def test_normal_combos_are_the_combos_put_in_nfc(raw: dict[str, Any]) -> None:
    """``combos(normal=True)`` is ``nfc`` of each combination (what the expansion used to do job by job)."""
    from runner.jobs import nfc

    matrix = compile_raw(raw)
    plain = [nfc(c) for c in matrix.combos()]
    assert list(matrix.combos(normal=True)) == plain
    assert any(any(not str(v).isascii() for v in c.values()) for c in plain)


def test_the_plain_product_of_two_axes_puts_each_value_in_nfc_once_not_once_per_combination() -> None:
    """A million-job product of two axes of a thousand values each: 2,000 normalisations, not a million."""
    matrix = compile_raw({"city": [f"city {i}" for i in range(30)], "mood": [f"mood {j}" for j in range(40)]})
    calls = 0
    original = matrix_module.nfc

    def counted(value: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(value)

    with patch.object(matrix_module, "nfc", counted):
        assert sum(1 for _ in matrix.combos(normal=True)) == 1200
    assert calls <= 30 + 3  # each head value, the two names and the list of the other axis's values
