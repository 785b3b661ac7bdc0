"""Bulk sources: axis values from files, and rows (inline, CSV, JSONL)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fifo_swap import no_block, swap_before_open

from runner.errors import ManifestError
from runner.manifest import count_jobs, expand, load_manifest


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    return caught.value


def test_axis_values_from_a_text_file(tmp_path: Path) -> None:
    """One value a line, blank and # lines skipped, path relative to the manifest."""
    write(tmp_path / "data" / "subjects.txt", "# subjects\na fox\n\n  a boat  \n#skip\na kite\n")
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            "name: x\nprompt: 'Film of {subject}'\nmatrix:\n  subject: {file: data/subjects.txt}\n",
        )
    )
    jobs = list(expand(manifest))
    assert [job.vars["subject"] for job in jobs] == ["a fox", "a boat", "a kite"]
    assert count_jobs(manifest) == 3


def test_missing_value_file_names_the_manifest_line(tmp_path: Path) -> None:
    """A {file:} that does not exist is refused at the line of the axis."""
    path = write(tmp_path / "m.yaml", "name: x\nprompt: '{s}'\nmatrix:\n  s: {file: nope.txt}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.line == 4 and caught.value.rule == "matrix-source" and "nope.txt" in str(caught.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("make", "words"), [
    (lambda p: os.mkfifo(p), "is a named pipe (FIFO), not a regular file; name a file of values"),
    (lambda p: p.symlink_to("/dev/zero"), "is a device (/dev/zero), not a regular file; name a file of values"),
    (lambda p: p.mkdir(), "is a folder (looked for"),
    (lambda p: p.symlink_to(p), "cannot be read: "),  # a symlink loop
], ids=["fifo", "device", "folder", "loop"])
def test_a_value_file_that_is_not_a_regular_file_is_named_for_what_it_is(
    tmp_path: Path, make: Any, words: str
) -> None:
    """Not "not found": a FIFO, a device, a folder or a symlink loop is refused at the axis's line, saying which."""
    make(tmp_path / "s.txt")
    for axis in ("s: {file: s.txt}", "rows: {file: s.txt}"):
        path = write(tmp_path / "m.yaml", f"name: x\nprompt: '{{s}}'\nmatrix:\n  {axis}\n")
        with pytest.raises(ManifestError) as caught:
            load_manifest(path)
        error = caught.value
        assert error.line == 4 and error.rule == "matrix-source" and "'s.txt' " + words in str(error), str(error)
        assert "not found" not in str(error)


@pytest.mark.parametrize(("axis", "name"), [("s: {file: s.txt}", "s.txt"), ("rows: {file: s.csv}", "s.csv")])
def test_a_value_file_swapped_for_a_fifo_after_its_check_is_refused_at_its_line_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, axis: str, name: str
) -> None:
    """A FIFO put in place between the check of the file (a stat) and the open that reads it: the open waited for
    a writer forever (load_manifest, hence `plan` and `run`, hung); it is refused like a FIFO named at once."""
    values = write(tmp_path / name, "s\na fox\n")
    path = write(tmp_path / "m.yaml", f"name: x\nprompt: '{{s}}'\nmatrix:\n  {axis}\n")
    swapped = swap_before_open(monkeypatch, values.resolve())
    error = no_block(lambda: load_manifest(path), values)
    assert swapped, "the file was never opened"
    assert isinstance(error, ManifestError), repr(error)
    assert error.line == 4 and error.rule == "matrix-source" and error.path == str(path), str(error)
    assert f"'{name}' is a named pipe (FIFO), not a regular file; name a file of values" in str(error), str(error)


def test_empty_value_file_is_an_empty_axis(tmp_path: Path) -> None:
    """A file with only comments gives no values: refused like an empty list."""
    write(tmp_path / "s.txt", "# nothing yet\n\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{s}'\nmatrix:\n  s: {file: s.txt}\n"))
    assert caught.value.rule == "empty-axis" and caught.value.path.endswith("s.txt")


def test_inline_rows_zip_variables_and_cross_other_axes(tmp_path: Path) -> None:
    """A rows source adds several variables at once, row by row, crossed with other axes."""
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            "name: x\nprompt: '{subject} in {place}'\nmatrix:\n"
            "  rows:\n    - {subject: fox, duration: 5}\n    - {subject: owl, duration: 10}\n"
            "  place: [snow, city]\noutput: '{subject}-{place}'\n",
        )
    )
    jobs = list(expand(manifest))
    assert [(j.request["prompt"], j.request["duration"]) for j in jobs] == [
        ("fox in snow", 5), ("fox in city", 5), ("owl in snow", 10), ("owl in city", 10)
    ]
    assert [j.output for j in jobs][:1] == ["fox-snow.mp4"]


def test_csv_rows_coerce_request_fields(tmp_path: Path) -> None:
    """CSV values are text; request fields are coerced by the request model ("10" -> 10)."""
    write(
        tmp_path / "p.csv",
        "prompt,duration,sound,cfg_scale\n"
        '"A fox, running",10,true,0.8\n'
        "An owl,5,false,\n",
    )
    manifest = load_manifest(
        write(tmp_path / "m.yaml", "name: x\ndefaults: {cfg_scale: 0.3}\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n")
    )
    first, second = expand(manifest)
    assert first.request == {
        "prompt": "A fox, running", "duration": 10, "sound": True, "cfg_scale": 0.8, "aspect_ratio": "16:9"
    }
    assert first.vars == {"prompt": "A fox, running", "duration": "10", "sound": "true", "cfg_scale": "0.8"}
    # An empty cell leaves the field to the manifest's defaults.
    assert second.request["cfg_scale"] == 0.3 and second.request["duration"] == 5


def test_csv_header_with_bom_and_crossing(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 BOM is ignored; 2 rows x 2 ratios = 4 jobs."""
    (tmp_path / "p.csv").write_bytes("\ufeffid,prompt\n1,A fox\n2,An owl\n".encode())
    manifest = load_manifest(
        write(
            tmp_path / "m.yaml",
            "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n  aspect_ratio: ['16:9', '9:16']\n"
            "output: '{id}-{aspect_ratio}'\n",
        )
    )
    assert [j.output for j in expand(manifest)] == ["1-16_9.mp4", "1-9_16.mp4", "2-16_9.mp4", "2-9_16.mp4"]


def test_csv_row_with_wrong_width_names_its_line(tmp_path: Path) -> None:
    """A ragged CSV row is refused with the data file and its line."""
    write(tmp_path / "p.csv", "prompt,duration\nA fox,5\nAn owl,5,extra\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"))
    assert caught.value.path == str(tmp_path / "p.csv") and caught.value.line == 3
    assert caught.value.rule == "rows-shape"


@pytest.mark.parametrize(("text", "said"), [
    ("\ufeffid;prompt\r\n1;a fox\r\n", "semicolons"),
    ("id\tprompt\n1\ta fox\n", "tabs"),
], ids=["semicolons", "tabs"])
def test_a_csv_separated_by_another_mark_is_refused_with_the_fix(tmp_path: Path, text: str, said: str) -> None:
    """Excel's "CSV" in a locale whose decimal mark is a comma separates by semicolons: the header was one column,
    refused as "rows column 'id;prompt' is not a valid variable name", which says nothing of the file's real fault."""
    (tmp_path / "p.csv").write_bytes(text.encode())
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"))
    error = caught.value
    assert error.path == str(tmp_path / "p.csv") and error.line == 1 and error.rule == "rows-csv", str(error)
    assert said in str(error) and "CSV UTF-8 (Comma delimited)" in str(error), str(error)


def test_csv_value_out_of_range_names_the_csv_line_and_job(tmp_path: Path) -> None:
    """A bad per-row duration in row 3 of a CSV is reported at that CSV line, with the job."""
    write(tmp_path / "p.csv", "prompt,duration\nA fox,5\nAn owl,20\n")
    error = error_of(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"))
    assert error.path == str(tmp_path / "p.csv") and error.line == 3
    assert error.rule == "request:less_than_equal" and error.job == "{prompt: An owl, duration: 20, repeat: 1}"
    assert "duration" in str(error) and "15" in str(error)


@pytest.mark.parametrize(("text", "line", "column"), [
    ('id,prompt\n1,"a fox\n2,an owl\n', 2, "prompt"),
    ('id,prompt\n1,"a fox\n2,an owl', 2, "prompt"),
    ('id,prompt\r\n1,"a fox\r\n2,an owl\r\n', 2, "prompt"),
    ('id,prompt\n1,"a fox\nin the snow"\n2,"an owl\n\n3,a cat\n', 4, "prompt"),
    ('id,prompt\n1,a fox\n"2,an owl\n', 3, "id"),
    ('id,prompt\n1,"', 2, "prompt"),
    ('id,"prompt\n1,a fox\n', 1, "the header"),
], ids=["newline-at-end", "no-newline-at-end", "crlf", "after-a-closed-multiline-value", "first-column", "empty",
        "header"])
def test_a_csv_quote_left_open_is_refused_at_the_line_it_opened(tmp_path: Path, text: str, line: int,
                                                                column: str) -> None:
    """An unterminated quote swallowed every following row into one value (one job, a garbage prompt, exit 0)."""
    (tmp_path / "p.csv").write_bytes(text.encode())
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"
                                                   "output: '{id}'\n"))
    error = caught.value
    assert error.path == str(tmp_path / "p.csv") and error.line == line and error.rule == "rows-csv", str(error)
    assert "never closed" in str(error) and "close the quote" in str(error) and column in str(error), str(error)


def test_csv_values_quoted_over_several_lines_are_one_value(tmp_path: Path) -> None:
    """A closed quoted value may hold newlines, commas and doubled quotes: valid CSV, planned as written."""
    write(tmp_path / "p.csv", 'id,prompt\n1,"a fox,\nin the snow"\n2,"an owl says ""hoo"""\n3,"a cat\n\nasleep"\n')
    manifest = load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"
                                                        "output: '{id}'\n"))
    jobs = list(expand(manifest))
    assert [job.request["prompt"] for job in jobs] == ["a fox,\nin the snow", 'an owl says "hoo"', "a cat\n\nasleep"]
    assert count_jobs(manifest) == 3


def test_jsonl_rows(tmp_path: Path) -> None:
    """JSONL rows: one object a line, same keys each line, null is an empty value."""
    lines = [{"prompt": "A fox", "duration": 5}, {"duration": 10, "prompt": "An owl"}, {"prompt": "A cat", "duration": None}]
    write(tmp_path / "p.jsonl", "\n".join(json.dumps(row) for row in lines) + "\n\n")
    manifest = load_manifest(
        write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.jsonl}\n")
    )
    assert [j.request["duration"] for j in expand(manifest)] == [5, 10, 5]


def test_jsonl_rows_must_share_their_keys(tmp_path: Path) -> None:
    """A JSONL row with other keys than the first row is refused at its line."""
    write(tmp_path / "p.jsonl", '{"prompt": "A fox"}\n{"promt": "An owl"}\n')
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.jsonl}\n"))
    assert caught.value.line == 2 and caught.value.rule == "rows-shape"
    assert "missing ['prompt']" in str(caught.value) and "extra ['promt']" in str(caught.value)


def test_invalid_json_line_is_refused(tmp_path: Path) -> None:
    """Broken JSON in a JSONL file names its line."""
    write(tmp_path / "p.jsonl", '{"prompt": "A fox"}\n{"prompt": \n')
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.jsonl}\n"))
    assert caught.value.line == 2 and caught.value.rule == "rows-json"


def test_rows_file_must_be_csv_or_jsonl(tmp_path: Path) -> None:
    """Other file types are refused for rows."""
    write(tmp_path / "p.txt", "x\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: p\nmatrix:\n  rows: {file: p.txt}\n"))
    assert caught.value.rule == "matrix-source" and caught.value.line == 4


def test_row_column_cannot_repeat_an_axis(tmp_path: Path) -> None:
    """A variable may come from one place only."""
    path = write(
        tmp_path / "m.yaml",
        "name: x\nprompt: '{a}'\nmatrix:\n  a: [1, 2]\n  rows:\n    - {a: 3}\n",
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.rule == "axis-name" and caught.value.line == 5


def test_unused_csv_columns_are_allowed(tmp_path: Path) -> None:
    """Spare spreadsheet columns (notes, ids) do not need to be used."""
    write(tmp_path / "p.csv", "prompt,notes\nA fox,check later\n")
    manifest = load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.csv}\n"))
    assert [j.vars["notes"] for j in expand(manifest)] == ["check later"]


def test_a_key_given_twice_in_a_jsonl_row_is_refused_at_its_line(tmp_path: Path) -> None:
    """``{"prompt": "A fox", "prompt": "An owl"}`` kept the last value without a word (json.loads does), where YAML
    refuses a key given twice: one of the two was a slip, and which one the operator meant cannot be known."""
    write(tmp_path / "p.jsonl", '{"prompt": "A fox", "id": 1}\n{"prompt": "A fox", "id": 2, "prompt": "An owl"}\n')
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  rows: {file: p.jsonl}\n"
                                                 "output: '{id}.mp4'\n"))
    assert caught.value.line == 2 and caught.value.rule == "rows-json", caught.value
    assert "the key 'prompt' twice" in str(caught.value), caught.value


def test_an_integer_too_long_to_read_in_a_jsonl_row_says_what_to_do(tmp_path: Path) -> None:
    """Python refuses to read an integer of more than 4300 digits: the message was Python's own, ending 'use
    sys.set_int_max_str_digits() to increase the limit', which no operator can do. It names the digits and the fix."""
    write(tmp_path / "p.jsonl", '{"prompt": "A fox", "id": ' + "9" * 5000 + "}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt} {id}'\nmatrix:\n  rows: {file: p.jsonl}\n"))
    text = str(caught.value)
    assert caught.value.line == 1 and "sys.set_int_max_str_digits" not in text, text
    assert "an integer of 5,000 digits" in text and "quote it" in text and len(text) < 300, text


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "txt"])
def test_a_value_file_with_no_line_break_in_gigabytes_is_refused_without_reading_it_whole(
    tmp_path: Path, suffix: str
) -> None:
    """A value file of zeros with no line break (a sparse file, a disk image named by mistake) was read as one line
    whole: plan grew until memory ran out (a 3 GB file: MemoryError and a traceback under a 2.5 GB limit; 100 GB:
    the OOM killer). A line past LINE_MAX bytes is refused as it is read, at the manifest's line, in a short message."""
    import resource

    from runner.manifest.datafiles import LINE_MAX

    big = tmp_path / f"v.{suffix}"
    with big.open("wb") as handle:
        handle.truncate(64 * LINE_MAX)  # 2 GiB, sparse: no disk used
    axis = "rows: {file: v." + suffix + "}" if suffix != "txt" else "prompt: {file: v.txt}"
    path = write(tmp_path / "m.yaml", "name: x\nprompt: '{prompt}'\nmatrix:\n  " + axis + "\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    room = used + (1 << 30)  # 1 GiB more than this process has: the 2 GiB line cannot be read whole, 32 MiB can
    resource.setrlimit(resource.RLIMIT_AS, (room if hard == resource.RLIM_INFINITY else min(room, hard), hard))
    try:
        with pytest.raises(ManifestError) as caught:
            list(expand(load_manifest(path)))
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    text = str(caught.value)
    assert f"v.{suffix}" in text and "a line of more than 32 MiB" in text and len(text) < 300, text
