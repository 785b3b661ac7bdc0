"""Issue 12, item 4: manifest errors a user's typo deserves — the collision hint names the variable that
differs, empty prompts are refused, an exclude matching nothing is an error, and an output extension the
endpoint does not produce is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import endpoints
from runner.errors import ManifestError
from runner.manifest import expand, load_manifest


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(write(tmp_path, text))))
    return caught.value


# ------------------------------------------------------------------ 1. the collision hint


def test_the_collision_hint_names_the_variable_that_differs_not_repeat(tmp_path: Path) -> None:
    """{repeat} is already in output; the jobs differ in duration: the hint says so, with both values."""
    error = error_of(tmp_path, "name: x\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo]\n  duration: [5, 10]\n"
                               "repeats: 2\noutput: '{city}/{repeat}.mp4'\n")
    text = str(error)
    assert error.rule == "duplicate-output" and error.line == 7
    assert "they differ in duration (5 vs 10), which output does not use" in text
    assert 'add {duration} to output, e.g. output: "{city}/{repeat}-{duration}.mp4"' in text
    assert "{repeat}" not in text.split("add ")[1].split(" to output")[0], "repeat is already in the template"


def test_the_collision_hint_names_the_model_when_the_axis_is_the_model(tmp_path: Path) -> None:
    """Std and Pro of one subject written to one file: the hint names {model} and the two models."""
    error = error_of(tmp_path, "name: x\nprompt: 'a {subject}'\nmatrix:\n"
                               "  model: [kling-v3.0-std-t2v, kling-v3.0-pro-t2v]\n  subject: [fox]\n"
                               "output: '{subject}.mp4'\n")
    assert "they differ in model ('kling-v3.0-std-t2v' vs 'kling-v3.0-pro-t2v')" in str(error)
    assert 'output: "{subject}-{model}.mp4"' in str(error)


def test_the_collision_hint_names_values_that_clean_to_one_name(tmp_path: Path) -> None:
    """Both values are in the template but give one name (case): the hint says which and why."""
    error = error_of(tmp_path, "name: x\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo, tokyo]\noutput: '{city}'\n")
    assert "their city values 'Tokyo' and 'tokyo' give the same name" in str(error)


# ------------------------------------------------------------------ 2. empty prompts


def test_an_empty_csv_cell_as_the_prompt_is_refused_at_its_row(tmp_path: Path) -> None:
    """prompt: '{text}' with an empty CSV cell: an error at the CSV row naming {text}, not a priced job."""
    (tmp_path / "rows.csv").write_text("id,text\n1,a fox\n2,\n3,an owl\n")
    error = error_of(tmp_path, "name: x\nprompt: '{text}'\nmatrix:\n  rows: {file: rows.csv}\noutput: '{id}'\n")
    assert error.rule == "empty-prompt"
    assert (error.path, error.line) == (str(tmp_path / "rows.csv"), 3)
    assert "prompt is empty: {text} is empty in this job" in str(error)
    assert error.job == "{id: 2, text: '', repeat: 1}"


@pytest.mark.parametrize("value", ['""', '"   "', "null"])
def test_a_blank_matrix_value_as_the_prompt_is_refused_at_its_line(tmp_path: Path, value: str) -> None:
    """An empty, blank or null axis value that makes the whole prompt blank is refused at that value's line."""
    error = error_of(tmp_path, f"name: x\nprompt: '{{subject}}'\nmatrix:\n  subject:\n    - a fox\n    - {value}\n")
    assert error.rule == "empty-prompt" and error.line == 6 and "{subject}" in str(error)


def test_a_blank_include_value_and_a_blank_literal_prompt_are_refused(tmp_path: Path) -> None:
    """{var} bound to "" by an include names the include's key line; a literal blank prompt names prompt:."""
    error = error_of(tmp_path, "name: x\nprompt: ' {a}{b} '\nmatrix:\n  a: [x]\n  b: [y]\n  include:\n"
                               "    - {a: '', b: ''}\n")
    assert error.rule == "empty-prompt" and error.line == 7 and "{a}, {b} are empty" in str(error)
    error = error_of(tmp_path, "name: x\nprompt: '   '\n")
    assert error.rule == "empty-prompt" and error.line == 2 and "write what the video should show" in str(error)


def test_a_prompt_that_is_only_partly_empty_is_accepted(tmp_path: Path) -> None:
    """An empty value inside a prompt that still says something is the user's business."""
    (job,) = expand(load_manifest(write(tmp_path, "name: x\nprompt: 'a {style} fox'\nmatrix:\n  style: ['']\n")))
    assert job.request["prompt"] == "a  fox"


def test_a_blank_shot_prompt_is_refused(tmp_path: Path) -> None:
    """A multi-shot prompt that renders blank (whitespace passes the model's min_length) is refused at its row."""
    error = error_of(tmp_path, "name: x\nmulti_prompt:\n  - {prompt: 'wide {a}', duration: 2}\n"
                               "  - {prompt: '{b}', duration: 3}\nmatrix:\n  rows:\n    - {a: x, b: '  '}\n")
    assert error.rule == "empty-prompt" and error.line == 7
    assert "multi_prompt[1].prompt is empty: {b} is empty" in str(error)


# ------------------------------------------------------------------ 3. exclude matching nothing


def test_an_exclude_matching_nothing_is_an_error_naming_the_nearest_value(tmp_path: Path) -> None:
    """A typo '16:9 ' excludes nothing: refused at that key's line with the value that exists."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo, Lima]\n"
                                      "  aspect_ratio: ['16:9', '9:16']\n  exclude:\n    - city: Lima\n"
                                      "      aspect_ratio: '16:9 '\n"))
    error = caught.value
    assert error.rule == "exclude-unmatched" and error.line == 8
    assert "exclude entry {city: Lima, aspect_ratio: '16:9 '} matches no combination" in str(error)
    assert "aspect_ratio has no value '16:9 '; did you mean '16:9'? (its values: 16:9, 9:16)" in str(error)


def test_an_exclude_whose_values_never_meet_in_one_row_is_an_error(tmp_path: Path) -> None:
    """Both values exist in rows, but never in the same row: the entry's line, and why."""
    (tmp_path / "rows.csv").write_text("subject,duration\nfox,5\nowl,10\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: 'a {subject}'\nmatrix:\n  rows: {file: rows.csv}\n"
                                      "  exclude:\n    - {subject: fox, duration: 10}\n"))
    assert caught.value.rule == "exclude-unmatched" and caught.value.line == 6
    assert "no row of rows has subject 'fox' and duration '10' together" in str(caught.value)


def test_excludes_that_match_and_includes_that_extend_nothing_are_fine(tmp_path: Path) -> None:
    """GitHub Actions' semantics: an exclude matching a combination (even one already excluded) and an include
    that matches nothing (it becomes a new combination) are both accepted."""
    manifest = load_manifest(write(tmp_path, "name: x\nprompt: 'a {city} {t}'\nmatrix:\n  city: [Tokyo, Lima]\n"
                                             "  t: [1, 2]\n  exclude:\n    - {city: Lima}\n    - {city: Lima, t: 2}\n"
                                             "  include:\n    - {city: Oslo, t: 3}\n"))
    assert [job.vars for job in expand(manifest)] == [{"city": "Tokyo", "t": 1}, {"city": "Tokyo", "t": 2},
                                                      {"city": "Oslo", "t": 3}]


# ------------------------------------------------------------------ 4. output extensions


@pytest.mark.parametrize("output", ["x.webm", "{city}/{repeat}.MOV", "{city}.gif"])
def test_an_output_extension_the_endpoint_does_not_produce_is_refused(tmp_path: Path, output: str) -> None:
    """x.webm would silently become x.webm.mp4: refused at the output line with the fix."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, f"name: x\nprompt: 'a {{city}}'\nmatrix:\n  city: [Tokyo]\noutput: '{output}'\n"))
    error = caught.value
    ext = "." + output.rsplit(".", 1)[1]
    assert error.rule == "output-extension" and error.line == 5
    assert f"ends in {ext!r}, but kling-v3.0-pro-t2v makes .mp4 files: end it in .mp4 (or leave" in str(error)


@pytest.mark.parametrize(("output", "name"), [("x.MP4", "x.MP4"), ("x", "x.mp4"), ("{city}-v1.5", "Tokyo-v1.5.mp4"),
                                              ("{city}.{city}", "Tokyo.Tokyo.mp4")])
def test_mp4_or_no_extension_is_accepted(tmp_path: Path, output: str, name: str) -> None:
    """.mp4 in any case, no extension (.mp4 is added), a version number or a value after the dot are fine."""
    (job,) = expand(load_manifest(write(tmp_path, f"name: x\nprompt: 'a {{city}}'\nmatrix:\n  city: [Tokyo]\n"
                                                  f"output: '{output}'\n")))
    assert job.output == name


def test_every_endpoint_says_what_it_produces() -> None:
    """The expected extension is one field of the endpoint spec (every Kling endpoint makes MP4)."""
    assert {spec.slug: spec.output_extension for spec in endpoints.all_specs()} == {
        slug: ".mp4" for slug in endpoints.slugs()}
