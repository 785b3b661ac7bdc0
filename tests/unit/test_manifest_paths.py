"""Output names: no template value can escape the outputs folder or collide."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path, PurePosixPath

import pytest

from runner.errors import ManifestError
from runner.manifest import expand, load_manifest
from runner.manifest.paths import PathRejected, finish_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def outputs(tmp_path: Path, values: list[str], template: str = "{v}") -> list[str]:
    """Outputs of one job per value (values come from a JSONL file, so any character fits)."""
    (tmp_path / "v.jsonl").write_text("".join(json.dumps({"v": value}) + "\n" for value in values))
    manifest = load_manifest(
        write(tmp_path, f"name: x\nprompt: 'clip {{v}}'\nmatrix:\n  rows: {{file: v.jsonl}}\noutput: '{template}'\n")
    )
    return [job.output for job in expand(manifest)]


def inside(output: str) -> bool:
    """True when ``output`` stays in the outputs folder on POSIX and Windows."""
    parts = PurePosixPath(output).parts
    return (
        not PurePosixPath(output).is_absolute()
        and "\\" not in output
        and ":" not in output
        and "\x00" not in output
        and all(part not in ("", ".", "..") and not part.startswith((".", "-")) for part in parts)
    )


ATTACKS = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "C:\\autoexec",
    "~/.ssh/id_rsa",
    "-rf",
    ".hidden",
    "sub/../../x",
    "x/./y",
    "..a",
]


@pytest.mark.parametrize("value", ATTACKS)
def test_template_values_cannot_escape_the_outputs_folder(tmp_path: Path, value: str) -> None:
    """Slashes, backslashes, drive letters and leading dots in values are neutralised (NUL is refused: below)."""
    (output,) = outputs(tmp_path, [value], "clips/{v}")
    assert inside(output) and output.startswith("clips/") and output.count("/") == 1
    assert output.endswith(".mp4")


@pytest.mark.parametrize("value", ["..", ".", "", "   "])
def test_values_that_leave_no_name_are_refused(tmp_path: Path, value: str) -> None:
    """A value that would make an empty or dot-only segment stops the expansion, naming the job."""
    with pytest.raises(ManifestError) as caught:
        outputs(tmp_path, [value], "clips/{v}/take")
    assert caught.value.rule == "output-path" and caught.value.line == 5
    assert caught.value.job is not None and caught.value.job.startswith("{v: ")


@pytest.mark.parametrize("name", ["CON", "nul", "Com1", "LPT9", "aux"])
def test_windows_device_names_are_renamed(tmp_path: Path, name: str) -> None:
    """CON, NUL, COM1… are prefixed with _ whatever their case."""
    (output,) = outputs(tmp_path, [name])
    assert output == f"_{name}.mp4"


def test_mp4_is_appended_when_missing() -> None:
    """The name always ends in .mp4."""
    assert finish_path("a/b") == "a/b.mp4"
    assert finish_path("a/b.MP4") == "a/b.MP4"
    assert finish_path("a/b.txt") == "a/b.txt.mp4"


def test_overlong_names_are_refused() -> None:
    """A segment over 255 bytes cannot be created on common file systems."""
    with pytest.raises(PathRejected):
        finish_path("é" * 200)


@pytest.mark.parametrize("rendered", ["x\ud800y", "a/\udcff", "\udfff/b"])
def test_a_name_that_cannot_be_written_as_utf8_is_refused(rendered: str) -> None:
    """A lone surrogate is no character: no file system, ledger or terminal takes it (the last line of defence)."""
    with pytest.raises(PathRejected, match="lone surrogate"):
        finish_path(rendered)


@pytest.mark.parametrize("value", [
    "clip_\u202egnp.4pm",  # RIGHT-TO-LEFT OVERRIDE: the name shows as clip_4pm.4pm.png
    "a\u2066b\u2069c", "a\u200fb", "zero\u200bwidth", "line\u2028break", "bom\ufeff", "c1\x85next", "c1\x9bcsi",
])
def test_characters_that_make_a_name_read_otherwise_are_replaced_in_values(tmp_path: Path, value: str) -> None:
    """Bidi controls, zero-width spaces, separators and C1 controls in a value become ``_``: a name reads as it is."""
    (output,) = outputs(tmp_path, [value], "clips/{v}")
    assert output.isprintable() and output.startswith("clips/") and output.endswith(".mp4"), repr(output)
    assert "_" in output


def test_joiners_that_scripts_and_emoji_need_are_kept(tmp_path: Path) -> None:
    family, persian = "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert outputs(tmp_path, [family, persian]) == [f"{family}.mp4", f"{persian}.mp4"]


def test_an_output_template_with_an_invisible_character_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="U\\+202E") as caught:
        load_manifest(write(tmp_path, "name: x\nprompt: '{v}'\nmatrix:\n  v: [a]\noutput: 'clip_\u202e{v}'\n"))
    assert caught.value.rule == "output-template" and caught.value.line == 5


@pytest.mark.parametrize("template", ["/abs/{v}", "../{v}", "a/../{v}", "a\\{v}", "./{v}"])
def test_unsafe_output_templates_are_refused_at_load(tmp_path: Path, template: str) -> None:
    """The template's own text must be a plain relative path."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, f"name: x\nprompt: '{{v}}'\nmatrix:\n  v: [a]\noutput: '{template}'\n"))
    assert caught.value.rule == "output-template" and caught.value.line == 5


def test_two_jobs_writing_one_file_are_refused_naming_both(tmp_path: Path) -> None:
    """Two jobs mapping to one output name is an error that names both jobs."""
    with pytest.raises(ManifestError) as caught:
        load_and_expand = load_manifest(
            write(
                tmp_path,
                "name: x\nprompt: '{city} at {time}'\nmatrix:\n  city: [Tokyo, Lima]\n  time: [dawn, dusk]\n"
                "output: '{city}'\n",
            )
        )
        list(expand(load_and_expand))
    error = caught.value
    assert error.rule == "duplicate-output" and error.line == 6
    assert "{city: Tokyo, time: dawn, repeat: 1}" in str(error) and "{city: Tokyo, time: dusk, repeat: 1}" in str(error)


def test_names_differing_only_by_case_or_sanitising_collide(tmp_path: Path) -> None:
    """Tokyo.mp4 and tokyo.mp4 are one file on macOS and Windows; a/b and a_b become one name."""
    for values in (["Tokyo", "tokyo"], ["a/b", "a_b"]):
        with pytest.raises(ManifestError) as caught:
            outputs(tmp_path, values)
        assert caught.value.rule == "duplicate-output"


def test_values_are_normalised_to_nfc(tmp_path: Path) -> None:
    """A decomposed é and a composed é give the same (composed) name, so they collide."""
    (output,) = outputs(tmp_path, ["cafe\u0301"])
    assert output == "caf\u00e9.mp4"
    with pytest.raises(ManifestError):
        outputs(tmp_path, ["cafe\u0301", "caf\u00e9"])


@pytest.mark.parametrize("values", [["\u015b", "\u017f\u0301"], ["\u03ad", "\u03f5\u0301"]],
                         ids=["long-s-acute", "lunate-epsilon-acute"])
def test_names_one_only_after_case_folding_a_decomposed_form_collide(tmp_path: Path, values: list[str]) -> None:
    """A case-insensitive, normalising file system (APFS, the default on macOS) folds case over the decomposed form:
    ``\u017f\u0301`` (long s, acute) is ``\u015b`` (s acute) there, one file. Their NFC forms differ and so did
    their casefold, so both jobs were planned, both paid, and the second video went beside the first's name."""
    first, second = values
    assert unicodedata.normalize("NFC", first) != unicodedata.normalize("NFC", second)
    with pytest.raises(ManifestError) as caught:
        outputs(tmp_path, values)
    assert caught.value.rule == "duplicate-output"


@pytest.mark.parametrize("length", [224, 237, 250, 255])
def test_names_that_leave_no_room_for_the_temporary_name_are_refused(length: int) -> None:
    """A file name must leave RESERVED_NAME_BYTES free (the download's temporary name is longer)."""
    with pytest.raises(PathRejected) as caught:
        finish_path("n" * (length - 4) + ".mp4")
    assert str(length) in str(caught.value) and "temporary" in str(caught.value)


def test_longest_name_allowed_is_downloadable() -> None:
    """255 - RESERVED_NAME_BYTES is accepted, and its temporary and beside names fit in 255 bytes."""
    from runner.storage.api import MAX_NAME_BYTES, RESERVED_NAME_BYTES, beside_name
    from runner.storage.local import temp_name

    name = finish_path("n" * (MAX_NAME_BYTES - RESERVED_NAME_BYTES - 4) + ".mp4")
    beside = beside_name(name, "k" * 20)
    assert len(temp_name(Path(beside), "f" * 12).name.encode()) <= MAX_NAME_BYTES


def test_whole_output_path_is_bounded() -> None:
    """Folders of 200 bytes each, 20 deep: refused (PATH_MAX), though each part is short enough."""
    with pytest.raises(PathRejected) as caught:
        finish_path("/".join(["d" * 200] * 20) + "/x.mp4")
    assert "bytes" in str(caught.value)


def test_an_output_template_too_long_is_quoted_short_in_its_error(tmp_path: Path) -> None:
    """A 4 KB output template past the path limit: the error names the line and the limit, and quotes the template
    cut short (operator sweep, 2026-12-04: the message quoted all of it, 5 KB)."""
    deep = "/".join(["d" * 200] * 20) + "/{v}.mp4"
    manifest = write(tmp_path, f'name: t\nprompt: "a {{v}}"\noutput: "{deep}"\nmatrix:\n  v: [cat]\n')
    with pytest.raises(ManifestError) as refused:
        list(expand(load_manifest(manifest)))
    said = str(refused.value)
    assert "at most 3072 fit" in said and "(4,027 characters)" in said and len(said) < 800, said


@pytest.mark.parametrize("value", ["_rejected", "_orphans", "_Rejected"])
def test_a_value_naming_the_folders_runner_keeps_videos_in_is_refused(tmp_path: Path, value: str) -> None:
    """The review sweep: a matrix value `_rejected` wrote a job's video into the folder where regenerate keeps the
    rejected samples (and `_orphans` into the orphans'). Refused at plan time, naming the value's line."""
    with pytest.raises(ManifestError, match="where runner keeps rejected and orphaned videos"):
        outputs(tmp_path, [value], "{v}/clip.mp4")
    assert outputs(tmp_path, [value], "clips/{v}.mp4") == [f"clips/{value}.mp4"]  # a file of that name is fine
