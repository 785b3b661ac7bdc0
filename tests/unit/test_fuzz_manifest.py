"""Bad input, fuzzed: whatever a manifest holds, the user gets a located ManifestError, never a traceback.

Property-based (hypothesis): random YAML documents built from the manifest's own
vocabulary and from junk, raw random text, hostile template values (path
traversal) and alias bombs, all through ``load_manifest`` + ``expand``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ManifestError
from runner.manifest import expand, load_manifest

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MAX_JOBS_CONSUMED = 50

TOP_KEYS = ["name", "model", "defaults", "prompt", "multi_prompt", "negative_prompt", "matrix", "repeats",
            "output", "limits", "salt", "max_jobs", "pricing", "retries", "in_doubt", "rows", "include",
            "exclude", "duration", "aspect_ratio", "sound", "cfg_scale", "file", "nmae", "promt"]
FIELD_VALUES = ["{city}", "{x}/{y}", "../{city}", "A {style} shot", "16:9", "9:16", "1:1", "kling-v3.0-pro-t2v",
                "*alias", "{", "}", "{{}}", "{repeat}", "{key}.mp4", "out/{city}.mp4", "/abs/{city}.mp4"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(FIELD_VALUES), st.sampled_from(TOP_KEYS),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(TOP_KEYS), st.text(max_size=10)), children, max_size=5),
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(TOP_KEYS), values, min_size=0, max_size=8)


def _check(path: Path) -> None:
    """Load and expand; only a located ManifestError may come out."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        manifest = load_manifest(path)
        for _ in itertools.islice(expand(manifest), MAX_JOBS_CONSUMED):
            pass
    except ManifestError as exc:
        assert exc.path == str(path), f"error without the manifest's path: {exc!r}"
        if exc.line is not None:
            # YAML also breaks lines at \r, \x85, \u2028 and \u2029; splitlines() counts those too.
            assert 1 <= exc.line <= len(text.splitlines()) + 1, f"line {exc.line} outside the file: {exc}"
        assert str(exc).startswith(str(path)), str(exc)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@FUZZ
@given(doc=documents)
def test_random_manifest_structures_fail_only_with_located_errors(tmp_path: Path, doc: dict[str, Any]) -> None:
    """Any YAML mapping of manifest-like keys and junk values: planned, or a ManifestError naming the file."""
    _check(_write(tmp_path, yaml.safe_dump(doc, allow_unicode=True)))


@FUZZ
@given(doc=values)
def test_random_yaml_documents_of_any_shape_fail_cleanly(tmp_path: Path, doc: Any) -> None:
    """A document that is a list, a scalar or nothing at all is refused with a located error."""
    _check(_write(tmp_path, yaml.safe_dump(doc, allow_unicode=True)))


yaml_chars = st.sampled_from([*"abc:{}[]-,&*!|>'\"#%@`?\n \t0123456789.", "\x00", "\ufeff", "\u2028", "é"])


@FUZZ
@given(text=st.text(yaml_chars, max_size=120))
def test_random_text_fails_cleanly(tmp_path: Path, text: str) -> None:
    """Raw random text (broken YAML, tabs, NULs, anchors, tags): a ManifestError, never a traceback."""
    _check(_write(tmp_path, text))


@FUZZ
@given(data=st.binary(max_size=80))
def test_random_bytes_fail_cleanly(tmp_path: Path, data: bytes) -> None:
    """A file that is not UTF-8 text is refused with a located error."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _check(path)


def test_a_typo_in_a_key_is_reported_at_its_line(tmp_path: Path) -> None:
    """A mistyped top-level key is named with the line it sits on."""
    path = _write(tmp_path, 'name: t\nprompt: "a {city}"\nmatrix:\n  city: [a, b]\nouptut: "{city}.mp4"\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.path == str(path) and info.value.line == 5, str(info.value)


HOSTILE = ["../../../etc/passwd", "..", ".", "/etc/cron.d/x", "a/../../b", "..\\..\\windows", "C:\\x",
           "\x00evil", "~/.ssh/id_rsa", "CON", "nul.txt", "-rf", " ", "a" * 300, "\u202e4pm.exe", "./.git/config"]


@FUZZ
@given(value=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)),
       template=st.sampled_from(["{v}.mp4", "{v}/{v}.mp4", "out/{v}", "{v}"]))
def test_template_values_cannot_escape_the_outputs_folder(tmp_path: Path, value: str, template: str) -> None:
    """A value with '..', '/', NUL or a drive cannot put a file outside outputs/<manifest>/."""
    doc = {"name": "t", "prompt": "clip {v}", "matrix": {"v": [value]}, "output": template}
    path = _write(tmp_path, yaml.safe_dump(doc, allow_unicode=True))
    try:
        jobs = list(expand(load_manifest(path)))
    except ManifestError as exc:
        assert exc.path == str(path)
        return
    root = (tmp_path / "state" / "outputs" / "t").resolve()
    for job in jobs:
        out = job.output
        assert not out.startswith(("/", "\\")) and "\x00" not in out, out
        assert ".." not in Path(out).parts and "\\" not in out, out
        assert (root / out).resolve().is_relative_to(root), out
        assert out.endswith(".mp4"), out


@pytest.mark.timeout(20)  # a hang guard: the refusal is proven by the error it raises, not by a stopwatch
def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """A billion-laughs document is refused in well under a second, not expanded into memory."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    text = "\n".join(lines) + '\nname: bomb\nprompt: "x {v}"\nmatrix:\n  v: *a9\noutput: "{v}.mp4"\n'
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        for _ in expand(load_manifest(path)):
            pass
    assert info.value.path == str(path)


def test_alias_bomb_inside_a_value_file_row_is_refused(tmp_path: Path) -> None:
    """Aliases nested under the matrix (quadratic blow-up) are refused with a located error."""
    inner = "[" + ", ".join(["*x"] * 64) + "]"
    text = (f'name: bomb2\nprompt: "x {{v}}"\nanchor: &x [{", ".join(["q"] * 64)}]\n'
            f"matrix:\n  v: &y {inner}\n  w: [{', '.join(['*y'] * 64)}]\noutput: \"{{v}}.mp4\"\n")
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        for _ in expand(load_manifest(path)):
            pass
    assert info.value.path == str(path)
