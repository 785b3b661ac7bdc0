"""The manifest's YAML loader: safe, typed like YAML 1.2, with lines, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import expand, load_manifest
from runner.manifest.loader import parse_yaml


def test_values_follow_the_yaml_1_2_core_schema() -> None:
    """yes/no/on/off, 16:9 and dates stay text; true/false, ints and floats are typed."""
    data, _ = parse_yaml(
        "a: [yes, no, on, off, NO, 16:9, 2024-01-01, true, False, 010, 0x1f, 0o17, 1.5, 1e3, ~, null, '5']\n",
        path="m.yaml",
    )
    assert data["a"] == [
        "yes", "no", "on", "off", "NO", "16:9", "2024-01-01", True, False, 10, 31, 15, 1.5, 1000.0, None, None, "5"
    ]


def test_keys_are_always_their_literal_text() -> None:
    """A key like `on:` or `1:` stays the string it looks like."""
    data, _ = parse_yaml("on: 1\n1: 2\nnull: 3\n", path="m.yaml")
    assert data == {"on": 1, "1": 2, "null": 3}


def test_lines_of_nodes_are_recorded_by_path() -> None:
    """Every value's 1-based line can be found from its path, falling back to the parent."""
    text = "name: x\nmatrix:\n  city:\n    - Tokyo\n    - Lima\n  time: [dawn, night]\n"
    _, lines = parse_yaml(text, path="m.yaml")
    assert lines.line_of("name") == 1
    assert lines.line_of("matrix") == 2
    assert lines.line_of("matrix", "city", 1) == 5
    assert lines.line_of("matrix", "time", 1) == 6
    assert lines.line_of("matrix", "time", 7, "nope") == 6


def test_invalid_yaml_names_line_and_column() -> None:
    """A syntax error is a ManifestError with the file, line and column."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml("name: x\nmatrix: {city: [Tokyo, Lima}\n", path="m.yaml")
    error = caught.value
    assert (error.path, error.line, error.rule) == ("m.yaml", 2, "yaml-syntax")
    assert "column" in str(error) and str(error).startswith("m.yaml:2:")


def test_duplicate_keys_are_refused() -> None:
    """YAML would keep only the last of two equal keys; the loader refuses instead."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml("name: a\nprompt: x\nname: b\n", path="m.yaml")
    assert caught.value.line == 3 and caught.value.rule == "duplicate-key"


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo hi']\n",
        "a: !!binary aGVsbG8=\n",
        "a: !custom x\n",
        "a: !!set {x, y}\n",
    ],
)
def test_unsafe_and_unknown_tags_are_refused(text: str) -> None:
    """Only plain scalars, lists and mappings are accepted: no object construction."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml(text, path="m.yaml")
    assert caught.value.rule == "yaml-tag" and caught.value.line == 1


@pytest.mark.timeout(10)  # a hang guard: the refusal/stream is proven by what it returns, not by a stopwatch
def test_alias_bomb_is_refused_quickly() -> None:
    """A "billion laughs" document is refused in well under a second, not expanded."""
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk":
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    with pytest.raises(ManifestError) as caught:
        parse_yaml(text, path="bomb.yaml")
    assert caught.value.rule == "yaml-size" and "alias bomb" in str(caught.value)


def test_bounded_aliases_are_expanded() -> None:
    """Anchors and aliases below the bound work and are counted every time they are used."""
    data, _ = parse_yaml("base: &b {duration: 5}\nx: *b\ny: [*b, *b]\n", path="m.yaml", limit=20)
    assert data["x"] == {"duration": 5} and data["y"] == [{"duration": 5}] * 2
    with pytest.raises(ManifestError):
        parse_yaml("base: &b [1, 2, 3, 4, 5]\ny: [*b, *b, *b, *b]\n", path="m.yaml", limit=20)


def test_recursive_alias_is_refused() -> None:
    """A node that contains itself is refused instead of looping."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml("a: &a [1, *a]\n", path="m.yaml")
    assert caught.value.rule == "yaml-alias"


def test_merge_keys_fill_in_without_overriding() -> None:
    """`<<: *base` copies keys the mapping does not set itself."""
    data, _ = parse_yaml("base: &b {duration: 5, sound: true}\nx:\n  <<: *b\n  duration: 10\n", path="m.yaml")
    assert data["x"] == {"duration": 10, "sound": True}


def test_manifest_file_errors_name_the_file(tmp_path: Path) -> None:
    """A missing file, non-UTF-8 bytes or a non-mapping document are ManifestErrors."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "missing.yaml")
    assert caught.value.rule == "manifest-file"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(bad)
    assert caught.value.rule == "manifest-file"
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(listing)
    assert caught.value.rule == "manifest-shape" and caught.value.path == str(listing)


def test_raw_control_characters_are_refused_with_their_line() -> None:
    """A raw NUL in the file is a YAML error at its line; escaped in double quotes, it is refused at its line too (a
    provider may cut a prompt at a NUL), and so are ESC and DEL. A tab and line breaks are text."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml("name: x\nprompt: 'a\x00b'\n", path="m.yaml")
    assert (caught.value.line, caught.value.rule) == (2, "yaml-syntax")
    for escaped, shown in (("\\0", "\\x00"), ("\\e", "\\x1b"), ("\\x7f", "\\x7f")):
        with pytest.raises(ManifestError, match=f"control character '\\{shown}'") as caught:
            parse_yaml(f'name: x\nmatrix:\n  v: [ok, "a{escaped}b"]\n', path="m.yaml")
        assert (caught.value.line, caught.value.rule) == (3, "control-character")
    data, _ = parse_yaml('prompt: "a\\tb\\nc\\r\\u00a0"\n', path="m.yaml")
    assert data == {"prompt": "a\tb\nc\r\xa0"}


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param("extra: " + "[" * 500 + "]" * 500 + "\n", id="flow-sequences"),
        pytest.param("extra: " + "{a: " * 500 + "1" + "}" * 500 + "\n", id="flow-mappings"),
        pytest.param("extra:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(500)) + "  " * 501 + "v\n",
                     id="block-mappings"),
        pytest.param("extra:\n" + "".join("  " * i + "- \n" for i in range(1, 500)) + "  " * 500 + "- v\n",
                     id="block-sequences"),
    ],
)
def test_a_document_nested_too_deeply_is_a_manifest_error(tmp_path: Path, shape: str) -> None:
    """500 levels of nesting: a ManifestError naming the file and 'nested too deeply', not a RecursionError."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nprompt: hi\n" + shape)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.rule == "yaml-depth" and caught.value.path == str(path), caught.value
    assert "nested too deeply" in str(caught.value) and str(path) in str(caught.value)
    assert caught.value.line is not None and caught.value.line >= 3


def test_deep_nesting_stays_a_manifest_error_under_a_low_recursion_limit() -> None:
    """Even where the interpreter's stack is shallower than the depth bound, the error is a ManifestError."""
    import sys

    text = "extra: " + "[" * 90 + "]" * 90 + "\n"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(150)
    try:
        with pytest.raises(ManifestError) as caught:
            parse_yaml(text, path="m.yaml")
    finally:
        sys.setrecursionlimit(old)
    assert "nested too deeply" in str(caught.value)


def test_reasonable_nesting_is_accepted() -> None:
    """Nesting well past any real manifest (40 levels) still parses."""
    data, _ = parse_yaml("extra: " + "[" * 40 + "1" + "]" * 40 + "\n", path="m.yaml")
    value = data["extra"]
    for _ in range(39):
        value = value[0]
    assert value == [1]


def test_a_jsonl_rows_file_nested_too_deeply_is_a_manifest_error(tmp_path: Path) -> None:
    """A JSONL line nested 100 000 levels deep is refused with the data file's name and line."""
    (tmp_path / "rows.jsonl").write_text('{"a": "x"}\n{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    path = tmp_path / "m.yaml"
    path.write_text('name: x\nprompt: "{a}"\nmatrix:\n  rows: {file: rows.jsonl}\noutput: "{a}.mp4"\n')
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert "nested too deeply" in str(caught.value) and "rows.jsonl" in str(caught.value), caught.value
    assert caught.value.line == 2


@pytest.mark.timeout(60)  # a hang guard: the refusal/stream is proven by what it returns, not by a stopwatch
def test_a_very_long_value_is_refused_with_a_short_message(tmp_path: Path) -> None:
    """A 5 MB one-line prompt is refused quickly, and the message quotes the value cut short, not 5 MB of it."""
    path = tmp_path / "long.yaml"
    path.write_text('name: x\nprompt: "' + "a" * 5_000_000 + '"\n')
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    assert caught.value.line == 2 and "2500" in str(caught.value)
    assert len(str(caught.value)) < 400, str(caught.value)[:400]


@pytest.mark.timeout(10)  # a hang guard: the refusal/stream is proven by what it returns, not by a stopwatch
def test_an_alias_bomb_in_a_manifest_file_is_refused(tmp_path: Path) -> None:
    """The billion-laughs shape through load_manifest: a ManifestError, quickly, without expanding it."""
    text = 'name: x\nprompt: hi\nlol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk":
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.rule == "yaml-size" and caught.value.path == str(path)


@pytest.mark.parametrize(("text", "fix"), [
    ("name: x\nmatrix:\n  city: [a, b]\n   style: [c]\n", "line it up with its siblings"),
    ("name: x\nprompt: a: b\n", "quote the value"),
    ("name: x\nmatrix:\n\tcity: [a]\n", "indent with spaces, not tabs"),
])
def test_the_usual_yaml_slips_say_what_to_do(text: str, fix: str) -> None:
    """A bad indent, a ': ' in an unquoted value, a tab: the line and PyYAML's words, then the fix (the README walk:
    a bad indent named the line and "expected <block end>, but found '<block mapping start>'", nothing more)."""
    with pytest.raises(ManifestError) as caught:
        parse_yaml(text, path="m.yaml")
    assert caught.value.rule == "yaml-syntax" and fix in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("number", "said"), [("9" * 5000, "an integer of 5,000 digits"),
                                              ("0x" + "f" * 5000, "an integer of about 6,021 digits")])
def test_an_integer_too_long_to_read_says_so_in_a_short_message(tmp_path: Path, number: str, said: str) -> None:
    """A 5000-digit integer (past Python's 4300-digit limit) was 'not a valid int', the message quoting all 5000
    digits; one in hex was read, and `plan` ended in a traceback printing it (ValueError: Exceeds the limit). Both
    say how long they are, in a short message, and what to do."""
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nprompt: hi\ndefaults: {duration: " + number + "}\n")
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    text = str(caught.value)
    assert caught.value.line == 3 and said in text and "quote it" in text, text
    assert len(text) < 300, text
