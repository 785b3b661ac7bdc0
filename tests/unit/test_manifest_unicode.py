"""Job identity does not depend on Unicode normalisation: NFC and NFD manifests are one batch."""

from __future__ import annotations

import contextlib
import json
import os
import unicodedata
from pathlib import Path

import httpx
import pytest

from runner.errors import ManifestError
from runner.jobs import JobSpec, canonical_json, job_key
from runner.manifest import expand, load_manifest

# Every text field that is hashed and sent: prompt, a templated negative_prompt, matrix values
# (template variables) from the manifest and from a data file, an include, a salt.
SINGLE = """\
name: cafe
salt: "crème"
defaults:
  duration: 5
  negative_prompt: "flou, {mood} filigrane"
prompt: "Un {style} de {city} à l'aube"
matrix:
  city: [Zürich, São Paulo, Malmö]
  style: {file: styles.txt}
  mood: [sombre]
  include:
    - {city: Reykjavík, style: "éclat", mood: "pâle"}
output: "{city}/{style}-{repeat}.mp4"
"""

MULTI = """\
name: plans
defaults:
  duration: 6
multi_prompt:
  - prompt: "Plan large du marché de {city}, crépuscule"
    duration: 3
  - prompt: "Gros plan: {dish} fumant, façade"
    duration: 3
matrix:
  city: [Genève, Île-de-France]
  dish: [crêpes, piñata]
output: "{city}-{dish}.mp4"
"""

STYLES = "cinéma\nfilm 35 mm, grain doré\n"


def _write(directory: Path, text: str, form: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "styles.txt").write_text(unicodedata.normalize(form, STYLES), encoding="utf-8")
    path = directory / "m.yaml"
    path.write_text(unicodedata.normalize(form, text), encoding="utf-8")
    return path


def _jobs(path: Path) -> list[JobSpec]:
    return list(expand(load_manifest(path)))


def _wire(job: JobSpec) -> bytes:
    """The bytes the client would POST for this job."""
    request = httpx.Request("POST", "https://api.novita.ai/v3/async/x", json=job.request)
    return request.read()


def test_nfc_and_nfd_manifests_give_the_same_keys_bodies_and_names(tmp_path: Path) -> None:
    """The same manifest written in NFC and in NFD plans the same keys, wire bodies, vars and file names."""
    for name, text in (("single", SINGLE), ("multi", MULTI)):
        nfc = _jobs(_write(tmp_path / name / "nfc", text, "NFC"))
        nfd = _jobs(_write(tmp_path / name / "nfd", text, "NFD"))
        assert nfc and len(nfc) == len(nfd)
        assert unicodedata.normalize("NFD", text) != text  # the test really writes two different files
        for a, b in zip(nfc, nfd, strict=True):
            assert a.key == b.key, (a.request, b.request)
            assert _wire(a) == _wire(b)
            assert a.vars == b.vars
            assert a.output == b.output
            sent = json.loads(_wire(b))
            assert canonical_json(sent) == unicodedata.normalize("NFC", canonical_json(sent))


def test_job_key_normalises_the_salt_and_build_normalises_the_body() -> None:
    """A JobSpec built from NFD text hashes and sends NFC text."""
    body = {"prompt": unicodedata.normalize("NFD", "Zürich à l'aube"), "duration": 5}
    spec = JobSpec.build(model="m", request=body, vars={"city": unicodedata.normalize("NFD", "Zürich")},
                         repeat=1, output="a.mp4", salt=unicodedata.normalize("NFD", "crème"))
    assert spec.request["prompt"] == "Zürich à l'aube"
    assert spec.vars["city"] == "Zürich"
    assert spec.key == job_key("m", {"prompt": "Zürich à l'aube", "duration": 5}, 1, "crème")
    assert job_key("m", {"prompt": "x"}, 1, unicodedata.normalize("NFD", "crème")) == job_key(
        "m", {"prompt": "x"}, 1, "crème")


# A lone surrogate ("\ud800": half of a UTF-16 pair, the JSON or YAML escape without its other half) is not a
# character: UTF-8 cannot write it. Used only in output it crashed `plan --list` and `run` with tracebacks.
LONE = "x\ud800y"


def _error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        _jobs(path)
    return caught.value


def _says_lone_surrogate(error: ManifestError) -> None:
    text = str(error)
    assert "'x\\ud800y' holds a lone surrogate '\\ud800'" in text and "write the character itself" in text, text
    text.encode("utf-8")  # the message itself can be printed


def test_a_lone_surrogate_in_a_jsonl_row_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "prompt": "a fox"}\n{"id": "x\\ud800y", "prompt": "an owl"}\n')
    (tmp_path / "m.yaml").write_text("name: s\nprompt: '{prompt}'\nmatrix: {rows: {file: rows.jsonl}}\n"
                                     "output: '{id}.mp4'\n")
    error = _error(tmp_path / "m.yaml")
    assert error.path == str(tmp_path / "rows.jsonl") and error.line == 2 and error.rule == "rows-value"
    _says_lone_surrogate(error)


@pytest.mark.parametrize(("matrix", "line", "rule"), [
    ('  animal: [fox]\n  id: ["x\\ud800y"]\n', 6, "axis-value"),
    ('  rows:\n    - {id: a, animal: fox}\n    - {id: "x\\ud800y", animal: owl}\n', 7, "rows-value"),
    ('  animal: [fox]\n  id: [a]\n  include:\n    - {id: "x\\ud800y", animal: owl}\n', 8, "include-shape"),
], ids=["axis", "rows", "include"])
def test_a_lone_surrogate_in_a_yaml_value_is_refused_at_its_line(
    tmp_path: Path, matrix: str, line: int, rule: str
) -> None:
    (tmp_path / "m.yaml").write_text(f"name: s\nprompt: 'a {{animal}}'\noutput: '{{id}}.mp4'\nmatrix:\n{matrix}")
    error = _error(tmp_path / "m.yaml")
    assert error.path == str(tmp_path / "m.yaml") and error.line == line and error.rule == rule, str(error)
    _says_lone_surrogate(error)


def test_a_lone_surrogate_in_a_default_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text('name: s\nprompt: a fox\ndefaults:\n  negative_prompt: "x\\ud800y"\n')
    error = _error(tmp_path / "m.yaml")
    assert error.line == 4 and error.rule == "defaults-value"
    _says_lone_surrogate(error)


def test_a_lone_surrogate_in_the_name_of_a_value_file_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text('name: s\nprompt: a {s}\nmatrix:\n  s: {file: "\\udcff.txt"}\n')
    with contextlib.suppress(OSError):  # the file it names, where the file system takes such a name
        (tmp_path / os.fsdecode(b"\xff.txt")).write_text("fox\n")
    error = _error(tmp_path / "m.yaml")
    assert error.line == 4 and error.rule == "matrix-source" and "lone surrogate" in str(error)


def test_a_surrogate_pair_is_one_character_and_plans(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"id": "fox\\ud83e\\udd8a", "prompt": "a fox"}\n')
    (tmp_path / "m.yaml").write_text("name: s\nprompt: '{prompt}'\nmatrix: {rows: {file: rows.jsonl}}\n"
                                     "output: '{id}.mp4'\n")
    (job,) = _jobs(tmp_path / "m.yaml")
    assert job.output == "fox\U0001f98a.mp4"


# A control character (NUL, ESC, DEL…) in a prompt or value: a provider may cut a prompt at a NUL and bill the video,
# a terminal obeys an ESC. Read from a data file, it was sent as is.
@pytest.mark.parametrize(("name", "content", "line", "rule"), [
    ("v.csv", "animal,id\nfox,a\n\"o\x00wl\",b\n", 3, "rows-value"),
    ("v.jsonl", '{"animal": "fox", "id": "a"}\n{"animal": "o\\u001bwl", "id": "b"}\n', 2, "rows-value"),
    ("v.txt", "fox\n# a comment\no\x7fwl\n", 3, "axis-value"),
], ids=["csv", "jsonl", "text"])
def test_a_control_character_in_a_data_file_is_refused_at_its_line(
    tmp_path: Path, name: str, content: str, line: int, rule: str
) -> None:
    (tmp_path / name).write_text(content)
    axis = "animal: {file: v.txt}\n  id: [a]" if name.endswith(".txt") else f"rows: {{file: {name}}}"
    (tmp_path / "m.yaml").write_text(f"name: s\nprompt: 'a {{animal}}'\noutput: '{{id}}/{{animal}}.mp4'\n"
                                     f"matrix:\n  {axis}\n")
    error = _error(tmp_path / "m.yaml")
    assert error.path.endswith(name) and error.line == line and error.rule == rule, str(error)
    assert "holds the control character" in str(error) and "UTF-8" in str(error)


def test_tabs_line_breaks_and_no_break_spaces_in_a_data_file_are_text(tmp_path: Path) -> None:
    (tmp_path / "v.jsonl").write_text('{"animal": "a\\tfox\\non\\r\\nthe\\u00a0hill", "id": "a"}\n')
    (tmp_path / "m.yaml").write_text("name: s\nprompt: 'a {animal}'\noutput: '{id}.mp4'\n"
                                     "matrix:\n  rows: {file: v.jsonl}\n")
    (job,) = _jobs(tmp_path / "m.yaml")
    assert job.request["prompt"] == "a a\tfox\non\r\nthe\xa0hill"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_manifest_or_rows_file_says_to_save_it_as_utf8(tmp_path: Path, encoding: str) -> None:
    """Windows Notepad's "Unicode" and Excel's "Unicode Text" save UTF-16: plan said only "'utf-8' codec can't decode
    byte 0xff in position 0", which tells no operator what to do. The message adds that it looks like UTF-16 and to
    save it as UTF-8."""
    def utf16(text: str) -> bytes:
        return text.encode(encoding) if encoding == "utf-16" else b"\xfe\xff" + text.encode(encoding)

    (tmp_path / "m.yaml").write_bytes(utf16("name: x\nprompt: a fox\n"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml")
    assert "looks like UTF-16" in str(caught.value) and "save it as UTF-8" in str(caught.value), caught.value
    (tmp_path / "rows.csv").write_bytes(utf16("id,prompt\n1,a fox\n"))
    (tmp_path / "r.yaml").write_text("name: x\nprompt: '{prompt}'\nmatrix: {rows: {file: rows.csv}}\noutput: '{id}.mp4'\n")
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(tmp_path / "r.yaml")))
    assert "rows.csv" in str(caught.value) and "looks like UTF-16" in str(caught.value), caught.value


@pytest.mark.parametrize("source", ["rows.csv", "rows.jsonl", "list.txt"])
def test_a_value_file_with_a_byte_that_is_not_utf8_is_refused_at_its_line(tmp_path: Path, source: str) -> None:
    """A file of image paths with one name in Latin-1 (an `é` saved by an old tool) at line 90,002 of 100,001 was
    refused as "'utf-8' codec can't decode byte 0xff in position 3139": a position in the decoder's last piece read,
    not in the file, and no line. The error names the line and the byte."""
    def line(n: int) -> bytes:
        name = b"img/caf\xe9.png" if n == 90_000 else b"img/a%d.png" % n
        if source.endswith(".csv"):
            return name + b",a"
        return b'{"image": "' + name + b'", "t": "a"}' if source.endswith(".jsonl") else name

    header = [b"image,t"] if source.endswith(".csv") else []
    (tmp_path / source).write_bytes(b"\n".join(header + [line(n) for n in range(100_000)]) + b"\n")
    axis = "{rows: {file: " + source + "}}" if source != "list.txt" else "{image: {file: list.txt}, t: [a]}"
    (tmp_path / "m.yaml").write_text(f"name: x\nprompt: '{{t}}'\nmatrix: {axis}\noutput: '{{image}}.mp4'\n")
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(tmp_path / "m.yaml")))
    error = caught.value
    at = 90_000 + len(header) + 1
    assert error.path == str(tmp_path / source) and error.line == at, str(error)
    column = line(90_000).index(b"\xe9") + 1
    assert f"line {at} is not UTF-8 (byte 0xe9 at column {column})" in str(error), str(error)
    assert "save it as UTF-8" in str(error), str(error)
    assert "position" not in str(error), str(error)


def test_a_manifest_with_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    """The manifest itself said "the manifest is not UTF-8 ('utf-8' codec can't decode byte 0xe9 in position 70…)":
    no line, while every other refusal of a manifest names one. Its line and column are named, as a value file's."""
    (tmp_path / "m.yaml").write_bytes(b"name: one\nmodel: kling-v3.0-std-i2v\nprompt: 'z'\ndefaults: {image: img/caf\xe9.png}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml")
    assert caught.value.line == 4 and "line 4 is not UTF-8 (byte 0xe9 at column 26)" in str(caught.value), caught.value
    assert "save it as UTF-8" in str(caught.value) and "position" not in str(caught.value), caught.value
