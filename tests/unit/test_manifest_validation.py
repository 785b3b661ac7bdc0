"""Every job is checked against the request model before anything is planned."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import count_jobs, expand, load_manifest


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ManifestError:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    return caught.value


def test_axis_value_out_of_range_names_its_line_job_and_rule(tmp_path: Path) -> None:
    """duration 20 from an axis is reported at the line of the value 20, with the job."""
    error = error_of(
        tmp_path,
        "name: x\nprompt: '{city}'\nmatrix:\n  city: [Tokyo]\n  duration:\n    - 5\n    - 20\n",
    )
    assert (error.path, error.line) == (str(tmp_path / "m.yaml"), 7)
    assert error.job == "{city: Tokyo, duration: 20, repeat: 1}" and error.rule == "request:less_than_equal"
    assert str(error).startswith(f"{tmp_path / 'm.yaml'}:7: duration: Input should be less than or equal to 15 (got 20)")


def test_include_value_out_of_range_names_the_include_line(tmp_path: Path) -> None:
    """cfg_scale 1.5 added by an include is reported at that include's key."""
    error = error_of(
        tmp_path,
        "name: x\nprompt: '{city}'\nmatrix:\n  city: [Tokyo, Lima]\n  include:\n    - city: Lima\n      cfg_scale: 1.5\n",
    )
    assert error.line == 7 and error.job == "{city: Lima, cfg_scale: 1.5, repeat: 1}"
    assert error.rule == "request:less_than_equal"


def test_default_value_out_of_range_names_the_defaults_line(tmp_path: Path) -> None:
    """A bad value in defaults fails the first job at the defaults line."""
    error = error_of(tmp_path, "name: x\ndefaults:\n  duration: 5\n  aspect_ratio: '4:3'\nprompt: p\n")
    assert error.line == 4 and error.rule == "request:literal_error" and error.job == "{repeat: 1}"
    assert "'16:9', '9:16' or '1:1'" in str(error)


def test_unquoted_aspect_ratio_is_text(tmp_path: Path) -> None:
    """aspect_ratio: 16:9 without quotes works (YAML 1.1 would read 969)."""
    (job,) = expand(load_manifest(write(tmp_path, "name: x\ndefaults: {aspect_ratio: 9:16}\nprompt: p\n")))
    assert job.request["aspect_ratio"] == "9:16"


def test_prompt_with_multi_prompt_is_refused(tmp_path: Path) -> None:
    """prompt and multi_prompt are mutually exclusive."""
    error = error_of(
        tmp_path, "name: x\nprompt: p\nmulti_prompt:\n  - {prompt: a, duration: 5}\n"
    )
    assert error.rule == "prompt-xor-multi_prompt" and error.line == 3 and error.job == "{repeat: 1}"
    assert "mutually exclusive" in str(error)


def test_neither_prompt_nor_multi_prompt_is_refused(tmp_path: Path) -> None:
    """A manifest must ask for something."""
    error = error_of(tmp_path, "name: x\n")
    assert error.rule == "prompt-xor-multi_prompt" and error.line == 1


def test_shot_durations_must_sum_to_duration(tmp_path: Path) -> None:
    """Shots of 2 + 2 s in a 5 s video are refused at the multi_prompt line, naming the job."""
    error = error_of(
        tmp_path,
        "name: x\nmatrix:\n  subject: [fox]\nmulti_prompt:\n  - {prompt: 'a {subject}', duration: 2}\n"
        "  - {prompt: 'b {subject}', duration: 2}\n",
    )
    assert error.rule == "shot-durations" and error.line == 4 and error.job == "{subject: fox, repeat: 1}"
    assert "sum to 4 s but duration is 5 s" in str(error)


def test_shot_prompt_too_long_names_the_shot(tmp_path: Path) -> None:
    """A rendered shot prompt over 512 characters is refused at that shot's line."""
    long = "x" * 600
    error = error_of(
        tmp_path,
        f"name: x\nmatrix:\n  long: ['{long}']\nmulti_prompt:\n  - prompt: ok\n    duration: 2\n"
        "  - prompt: '{long}'\n    duration: 3\n",
    )
    assert error.line == 7 and error.rule == "request:string_too_long"
    assert "multi_prompt[1].prompt" in str(error)


def test_prompt_too_long_after_rendering_names_the_prompt_line(tmp_path: Path) -> None:
    """The 2500-character limit applies to the rendered prompt."""
    error = error_of(tmp_path, "name: x\nmatrix:\n  text: ['" + "y" * 2600 + "']\nprompt: 'A {text}'\n")
    assert error.line == 4 and error.rule == "request:string_too_long"


def test_unused_axis_is_refused_before_expanding(tmp_path: Path) -> None:
    """An axis that sets no field and feeds no template would pay for one video many times."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: 'A fox'\nmatrix:\n  take: [1, 2, 3]\n"))
    assert caught.value.rule == "unused-variable" and caught.value.line == 4
    assert "repeats" in str(caught.value)


def test_unknown_field_in_an_include_is_refused(tmp_path: Path) -> None:
    """An include key that is neither a field nor used anywhere is a typo: did-you-mean."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(
            write(tmp_path, "name: x\nprompt: '{city}'\nmatrix:\n  city: [Lima]\n  include:\n    - {city: Lima, cfg_scael: 0.8}\n")
        )
    assert caught.value.rule == "unused-variable" and caught.value.line == 6
    assert "did you mean 'cfg_scale'?" in str(caught.value)


def test_a_bad_job_deep_in_a_big_batch_is_found(tmp_path: Path) -> None:
    """A mistake in job 4,812 of 5,000 stops the expansion with that job's CSV line."""
    rows = "".join(f"clip {i},{20 if i == 4812 else 5}\n" for i in range(1, 5001))
    (tmp_path / "p.csv").write_text("prompt,duration\n" + rows)
    manifest = load_manifest(write(tmp_path, "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"))
    assert count_jobs(manifest) == 5000
    seen = 0
    with pytest.raises(ManifestError) as caught:
        for _ in expand(manifest):
            seen += 1
    assert seen == 4811
    assert caught.value.line == 4813 and caught.value.job == "{prompt: clip 4812, duration: 20, repeat: 1}"


@pytest.mark.parametrize(
    ("text", "line", "job", "phrase"),
    [
        ("name: x\nprompt: '{a}'\nmatrix:\n  a: [p]\n  duration: [2]\n", 5, "{a: p, duration: 2, repeat: 1}",
         "greater than or equal to 3"),
        ("name: x\nprompt: '{a} {b}'\nmatrix:\n  a: [p]\n", 2, "{a: p, repeat: 1}", "{b} is not a variable"),
        ("name: x\nprompt: p\nmulti_prompt: [{prompt: q, duration: 5}]\n", 3, "{repeat: 1}", "mutually exclusive"),
        ("name: x\nmatrix:\n  s: [1]\nmulti_prompt: [{prompt: '{s}', duration: 4}]\n", 4, "{s: 1, repeat: 1}",
         "shot durations sum to 4 s but duration is 5 s"),
        ("name: x\nprompt: '{a}'\nmatrix:\n  a: [p, q]\noutput: same\n", 5, "{a: q, repeat: 1}", "would both be saved"),
    ],
)
def test_error_text_names_file_line_job_and_rule(tmp_path: Path, text: str, line: int, job: str, phrase: str) -> None:
    """The message itself reads `file:line: <rule broken> (job {...})`."""
    error = error_of(tmp_path, text)
    message = str(error)
    assert message.startswith(f"{tmp_path / 'm.yaml'}:{line}: ")
    assert message.endswith(f"(job {job})")
    assert phrase in message


def test_output_name_without_room_for_the_temporary_name_names_file_line_and_job(tmp_path: Path) -> None:
    """A 240-byte output name is refused at plan time (it could never be downloaded), with line and job."""
    long = "n" * 236
    error = error_of(tmp_path, f"name: x\nprompt: '{{v}}'\nmatrix:\n  v: [{long}]\noutput: '{{v}}.mp4'\n")
    assert (error.path, error.line, error.rule) == (str(tmp_path / "m.yaml"), 5, "output-path")
    assert error.job is not None and "v: " in error.job
    assert "240 bytes" in str(error)
