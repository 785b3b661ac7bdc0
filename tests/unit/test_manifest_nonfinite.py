"""NaN and ±Infinity in a manifest value are refused at their line: JSON cannot hold them.

A YAML ``.nan``/``.inf`` or a JSONL ``NaN`` reached the job's variables and every JSON the runner writes (exports,
``--json``, reports) as ``NaN``/``Infinity``, which jq and HF ``datasets`` refuse. The value quoted plans the same
job: its prompt, and so its key (the key hashes the request, never the variables), are the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import expand, load_manifest

HEAD = "name: n\ndefaults: {duration: 3}\nprompt: 'a {animal} at {x}'\n"
# The key `plan` gave the job `{animal: cat, x: .nan}` before values like .nan were refused (runner 95d41b3).
KEY_OF_NAN_BEFORE = "8e37b4acfab7eb2605b8"


@pytest.mark.parametrize(("text", "line", "rule", "shown"), [
    (HEAD + "matrix:\n  animal: [cat]\n  x: [1.5, .nan]\n", 6, "axis-value", "nan"),
    (HEAD + "matrix:\n  animal: [cat]\n  x: [-.inf]\n", 6, "axis-value", "-inf"),
    (HEAD + "matrix:\n  rows:\n    - {animal: cat, x: .inf}\n", 6, "rows-value", "inf"),
    (HEAD + "matrix:\n  animal: [cat]\n  x: ['1']\n  include:\n    - {animal: owl, x: .NaN}\n", 8, "include-shape", "nan"),
], ids=["axis-nan", "axis-minus-inf", "rows-inf", "include-nan"])
def test_a_non_finite_yaml_value_is_refused_at_its_line(
    tmp_path: Path, text: str, line: int, rule: str, shown: str
) -> None:
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(tmp_path / "m.yaml")))
    error = caught.value
    assert error.path == str(tmp_path / "m.yaml") and error.line == line and error.rule == rule, str(error)
    assert f"{shown} is not a number JSON can write" in str(error) and f"quote it ('{shown}')" in str(error), str(error)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_jsonl_value_is_refused_at_its_line(tmp_path: Path, constant: str) -> None:
    (tmp_path / "rows.jsonl").write_text(f'{{"animal": "cat", "x": 1}}\n{{"animal": "owl", "x": {constant}}}\n')
    (tmp_path / "m.yaml").write_text("name: n\nprompt: 'a {animal} at {x}'\nmatrix: {rows: {file: rows.jsonl}}\n")
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(tmp_path / "m.yaml")))
    error = caught.value
    assert error.path == str(tmp_path / "rows.jsonl") and error.line == 2 and error.rule == "rows-value", str(error)
    assert "is not a number JSON can write" in str(error), str(error)


def test_a_non_finite_default_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("name: n\nprompt: a cat\ndefaults:\n  cfg_scale: .nan\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml")
    assert caught.value.line == 4 and caught.value.rule == "defaults-value", str(caught.value)


def test_the_value_quoted_plans_the_same_job_and_key(tmp_path: Path) -> None:
    """The fix the message gives keeps a ledger's paid jobs: the same prompt, the same key as `.nan` had."""
    (tmp_path / "m.yaml").write_text(HEAD + "matrix:\n  animal: [cat]\n  x: ['nan']\n")
    (job,) = expand(load_manifest(tmp_path / "m.yaml"))
    assert job.request["prompt"] == "a cat at nan" and job.vars == {"animal": "cat", "x": "nan"}
    assert job.key == KEY_OF_NAN_BEFORE


@pytest.mark.parametrize("field", ["per_second", "per_second_sound"])
def test_an_infinite_price_is_refused_at_its_line(tmp_path: Path, field: str) -> None:
    """`per_second: .inf` planned: every estimate Infinity in `plan --json` and the ledger (invalid JSON)."""
    (tmp_path / "m.yaml").write_text(f"name: n\nprompt: a cat\npricing:\n  kling-v3.0-pro-t2v:\n    per_second: 0.1\n"
                                     f"    {field}: .inf\n".replace("per_second: 0.1\n    per_second: .inf",
                                                                    "per_second: .inf"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml")
    assert caught.value.line is not None and caught.value.line >= 5 and "finite" in str(caught.value), str(caught.value)
