"""Hostile manifests and the files they name: `runner plan` ends at once with one located line and exit 2.

Each case was a hang, a traceback or a silent success before: a FIFO or a device as an input file
(the plan blocked in open() or hashed /dev/zero forever); a lone surrogate in a value used only in
`output` (plan said OK, `plan --list` and `run` ended in tracebacks); a CSV quote left open (the rows
after it became one garbage prompt, and plan said OK).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from test_cli_support import ProviderFactory, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

FAST = 10.0  # seconds: each case fails at once; the timeout only stops a hang


@pytest.mark.parametrize(("make", "words"), [
    (os.mkfifo, "input img/x.png is a named pipe (FIFO), not a regular file"),
    (lambda path: path.symlink_to("/dev/zero"), "input img/x.png is a device (/dev/zero), not a regular file"),
], ids=["fifo", "dev-zero"])
def test_an_input_file_that_is_a_fifo_or_a_device_stops_plan_at_once(tmp_path: Path, make: object, words: str) -> None:
    (tmp_path / "img").mkdir()
    make(tmp_path / "img" / "x.png")  # type: ignore[operator]
    manifest = write_manifest(tmp_path, "name: f\nmodel: kling-v3.0-pro-i2v\nprompt: a fox\n"
                              "defaults: {image: img/x.png, duration: 5}\n", name="m.yaml")
    result = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path, key=None, timeout=FAST)
    assert result.code == 2, str(result)
    assert "m.yaml:4: image: " + words in result.stderr, str(result)


@pytest.mark.parametrize(("make", "words"), [
    (os.mkfifo, "m.yaml: cannot read the manifest: it is a named pipe (FIFO), not a regular file"),
    (lambda path: path.symlink_to("/dev/zero"), "m.yaml: cannot read the manifest: it is a device (/dev/zero), not a"
                                                " regular file"),
], ids=["fifo", "dev-zero"])
def test_a_manifest_that_is_a_fifo_or_a_device_stops_plan_at_once(tmp_path: Path, make: object, words: str) -> None:
    """`runner plan FIFO` waited for a writer forever; `runner plan /dev/zero` read until memory ran out."""
    make(tmp_path / "m.yaml")  # type: ignore[operator]
    result = run_cli("plan", str(tmp_path / "m.yaml"), "--state", str(tmp_path / "state"), cwd=tmp_path, key=None,
                     timeout=FAST)
    assert result.code == 2, str(result)
    assert words in result.stderr and result.stdout == "", str(result)


@pytest.mark.parametrize("source", ["jsonl", "yaml"])
def test_a_lone_surrogate_in_a_value_used_only_in_output_stops_plan_at_its_line(tmp_path: Path, source: str) -> None:
    """A lone surrogate (a \\u escape without its pair) reached the output name: `plan` said OK, `plan --list` and
    `run` ended in tracebacks (UnicodeEncodeError writing JSON and the ledger)."""
    if source == "jsonl":
        (tmp_path / "rows.jsonl").write_text('{"id": "x\\ud800y", "prompt": "a fox"}\n')
        text, where = "name: s\nprompt: '{prompt}'\nmatrix: {rows: {file: rows.jsonl}}\noutput: '{id}.mp4'\n", "rows.jsonl:1"
    else:
        text, where = "name: s\nprompt: a fox\nmatrix:\n  id: [\"x\\ud800y\"]\noutput: '{id}.mp4'\n", "m.yaml:4"
    manifest = write_manifest(tmp_path, text, name="m.yaml")
    for flags in ((), ("--list",)):
        result = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), *flags, cwd=tmp_path, key=None,
                         timeout=FAST)
        assert result.code == 2, str(result)
        assert f"{where}: " in result.stderr and "lone surrogate" in result.stderr and result.stdout == "", str(result)


def test_a_csv_quote_left_open_stops_plan_at_the_line_it_opened(tmp_path: Path) -> None:
    """The quote swallowed the rows after it: one job with the prompt 'a fox\\n2,an owl\\n', and plan said OK."""
    (tmp_path / "rows.csv").write_text('id,prompt\n1,"a fox\n2,an owl\n')
    manifest = write_manifest(tmp_path, "name: c\nprompt: '{prompt}'\nmatrix: {rows: {file: rows.csv}}\n"
                              "output: '{id}.mp4'\n", name="m.yaml")
    result = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path, key=None, timeout=FAST)
    assert result.code == 2, str(result)
    assert "rows.csv:2: the quote opened on this line (in column 'prompt') is never closed" in result.stderr
    assert "close the quote" in result.stderr and result.stdout == "", str(result)


def _strict(text: str) -> list[object]:
    """Each line parsed as strict JSON (jq, HF datasets): NaN and Infinity are refused."""
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


def test_a_nan_value_stops_plan_and_an_older_ledger_holding_one_exports_strict_json(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """A YAML .nan reached `ls --json`, `export` and the reports as NaN (invalid JSON). It is refused at its line now;
    quoted, it is the same paid job, and the NaN an older ledger stored in the job's variables is written as text."""
    text = "name: n\ndefaults: {duration: 3}\nprompt: 'a {animal} at {x}'\nmatrix:\n  animal: [cat]\n  x: [%s]\n"
    manifest = write_manifest(tmp_path, text % ".nan", name="m.yaml")
    state = tmp_path / "state"
    refused = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path, key=None, timeout=FAST)
    assert refused.code == 2 and "m.yaml:6: " in refused.stderr and "quote it ('nan')" in refused.stderr, str(refused)
    manifest.write_text(text % "'nan'")
    sim = provider()
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    with sqlite3.connect(state / "ledger.db") as db:  # what `plan` stored before such values were refused
        assert db.execute("UPDATE jobs SET vars_json = ? ", ('{"animal":"cat","x":NaN}',)).rowcount == 1
    listed = run_cli("ls", str(manifest), "--state", str(state), "--json", cwd=tmp_path, key=None)
    exported = run_cli("export", str(manifest), "--state", str(state), "--format", "jsonl", cwd=tmp_path, key=None)
    for result in (listed, exported):
        assert result.code == 0, str(result)
        rows = _strict(result.stdout)
        assert [row["vars"] for row in rows] == [{"animal": "cat", "x": "nan"}], str(result)  # type: ignore[index]
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and sim.accepted() == 1, str(again)  # the paid job is the same job: not paid again
