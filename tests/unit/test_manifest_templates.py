"""Templates: {var} fields, escapes, built-ins, and what they may not do."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ManifestError
from runner.jobs import JobSpec
from runner.manifest import expand, load_manifest, templates
from runner.manifest.templates import compile_template


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def jobs_of(tmp_path: Path, text: str) -> list[JobSpec]:
    return list(expand(load_manifest(write(tmp_path, text))))


def error_of(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(write(tmp_path, text))))
    return caught.value


def test_variables_defaults_and_escaped_braces_render(tmp_path: Path) -> None:
    """{var} takes axis values and defaults; {{ and }} are literal braces."""
    (job,) = jobs_of(
        tmp_path,
        "name: x\ndefaults: {duration: 8}\nprompt: 'A {{quoted}} {animal}, {duration} seconds'\n"
        "matrix:\n  animal: [fox]\n",
    )
    assert job.request["prompt"] == "A {quoted} fox, 8 seconds"


def test_repeat_is_one_based_and_every_combination_comes_first(tmp_path: Path) -> None:
    """{repeat} counts from 1; all first samples come before any second sample."""
    jobs = jobs_of(tmp_path, "name: x\nprompt: '{a}'\nmatrix:\n  a: [p, q]\nrepeats: 2\noutput: '{a}-{repeat}'\n")
    assert [(j.vars["a"], j.repeat, j.output) for j in jobs] == [
        ("p", 1, "p-1.mp4"), ("q", 1, "q-1.mp4"), ("p", 2, "p-2.mp4"), ("q", 2, "q-2.mp4")
    ]
    assert len({j.key for j in jobs}) == 4


def test_key_is_available_in_output(tmp_path: Path) -> None:
    """{key} in output is the job key; it is the default output name."""
    (job,) = jobs_of(tmp_path, "name: x\nprompt: a fox\n")
    assert job.output == f"{job.key}.mp4"
    (job,) = jobs_of(tmp_path, "name: x\nprompt: a fox\noutput: 'foxes/{key}-{duration}s'\n")
    assert job.output == f"foxes/{job.key}-5s.mp4"


def test_key_cannot_be_used_in_the_prompt(tmp_path: Path) -> None:
    """{key} hashes the prompt, so the prompt cannot contain it."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: 'video {key}'\n"))
    assert (caught.value.line, caught.value.rule) == (2, "key-in-request")


@pytest.mark.parametrize("template", ["{a.__class__}", "{a[0]}", "{0}", "{}", "{a!r}", "{a:>10}", "{a", "a}"])
def test_only_plain_variable_fields_are_allowed(tmp_path: Path, template: str) -> None:
    """Attribute/index access, positional fields, conversions, specs and stray braces are refused."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, f"name: x\nmatrix:\n  a: [1]\nprompt: '{template}'\n"))
    assert (caught.value.line, caught.value.rule) == (4, "template-syntax")


def test_missing_variable_names_file_line_job_and_rule(tmp_path: Path) -> None:
    """A template field no source provides stops expansion at the first job, with a did-you-mean."""
    error = error_of(
        tmp_path, "name: x\nprompt: 'A {style} view of {citty}'\nmatrix:\n  city: [Tokyo]\n  style: [wide]\n"
    )
    assert error.path == str(tmp_path / "m.yaml") and error.line == 2
    assert error.rule == "missing-variable" and error.job == "{city: Tokyo, style: wide, repeat: 1}"
    assert "{citty}" in str(error) and "did you mean 'city'?" in str(error)


def test_variable_missing_from_some_combinations_only(tmp_path: Path) -> None:
    """A variable only an include provides fails on the first job that lacks it."""
    error = error_of(
        tmp_path,
        "name: x\nprompt: '{city} {mood}'\nmatrix:\n  city: [Oslo, Rome]\n  include:\n    - {city: Oslo, mood: calm}\n",
    )
    assert error.rule == "missing-variable" and error.job == "{city: Rome, repeat: 1}"


def test_values_are_inserted_verbatim_not_re_templated(tmp_path: Path) -> None:
    """A value containing braces is text, never a template (no injection)."""
    (job,) = jobs_of(tmp_path, "name: x\nprompt: 'Say {word}'\nmatrix:\n  word: ['{key} {{x}}']\n")
    assert job.request["prompt"] == "Say {key} {{x}}"


def test_negative_prompt_and_shot_prompts_are_templates(tmp_path: Path) -> None:
    """negative_prompt (in defaults) and multi_prompt shot prompts use {var} too."""
    (job,) = jobs_of(
        tmp_path,
        "name: x\ndefaults: {duration: 6, negative_prompt: 'no {thing}'}\n"
        "multi_prompt:\n  - {prompt: 'wide {place}', duration: 2}\n  - {prompt: 'close {place}', duration: '{rest}'}\n"
        "matrix:\n  place: [harbour]\n  thing: [text]\n  rest: [4]\n",
    )
    assert job.request["negative_prompt"] == "no text"
    assert job.request["multi_prompt"] == [{"prompt": "wide harbour", "duration": 2}, {"prompt": "close harbour", "duration": 4}]
    assert "prompt" not in job.request


def test_negative_prompt_from_an_axis_overrides_the_default_template(tmp_path: Path) -> None:
    """A negative_prompt axis value replaces the defaults' one, verbatim."""
    jobs = jobs_of(
        tmp_path,
        "name: x\ndefaults: {negative_prompt: 'no {a}'}\nprompt: '{a}'\n"
        "matrix:\n  a: [x]\n  negative_prompt: ['blurry {a}', '']\noutput: '{key}'\n",
    )
    assert [j.request["negative_prompt"] for j in jobs] == ["blurry {a}", "no x"]


_texts = st.lists(st.one_of(st.text(alphabet="ab {}é\n", max_size=6).map(lambda s: s.replace("{", "{{").replace("}", "}}")),
                            st.sampled_from(["{a}", "{b}", "{c}", "{d}"])), max_size=6).map("".join)
_vals = st.dictionaries(st.sampled_from("abcd"), st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.none()))


@given(_texts, _vals)
def test_render_is_format_map(text: str, values: dict[str, object]) -> None:
    """Joined from its pieces or formatted, a template renders what ``str.format_map`` gives, missing names alike."""
    templates._joins.clear()
    template = compile_template(text, where="prompt", path="m.yaml", line=1)
    for _ in range(2):  # once to make the join, once through it
        try:
            expected: object = text.format_map(values)
        except KeyError as exc:
            expected = KeyError(*exc.args)
        try:
            got: object = template.render(values)
        except KeyError as exc:
            got = KeyError(*exc.args)
        assert repr(got) == repr(expected)


def test_a_template_of_strings_is_joined_from_pieces_made_once() -> None:
    templates._joins.clear()
    template = compile_template("A {{literal}} shot of {subject} at {place}", where="prompt", path="m.yaml", line=1)
    assert template.render({"subject": "a fox", "place": "dawn"}) == "A {literal} shot of a fox at dawn"
    assert callable(templates._joins[template.text])  # parsed once: the next jobs are joined
    assert template.render({"subject": 1, "place": "dawn"}) == "A {literal} shot of 1 at dawn"
    assert templates._joins[template.text] is None  # a value not a string: format_map from then on
