"""`runner export --format jsonl|csv` read back by a dataset builder: where `path` leads, the `review` column,
rejected clips on request, odd variable values, a folder not made yet, two exports of one file at once."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from test_cli_support import ProviderFactory, done_trio, provider, run_cli

__all__ = ["provider"]  # the fixture, imported for pytest


def _rows(text: str, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _opens(folder: Path, row: dict[str, Any]) -> bool:
    """Whether the row's ``path``, taken from ``folder``, is the video the row names (its sha256)."""
    video = folder / row["path"]
    return video.is_file() and hashlib.sha256(video.read_bytes()).hexdigest() == row["sha256"]


def test_an_exported_path_opens_from_the_export_files_folder_whatever_the_working_directory(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`export --to FILE` wrote `path` relative to the working directory: run from a Makefile's subfolder (or cron's
    home) into exports/, every path pointed nowhere from the file. It is relative to FILE's folder now (the same
    as before when FILE is in the working directory); on stdout it stays relative to the working directory."""
    manifest, _state, _sim, _keys = done_trio(tmp_path, provider)
    work = tmp_path / "make" / "sub"
    work.mkdir(parents=True)
    (tmp_path / "exports").mkdir()
    for fmt in ("jsonl", "csv"):
        to = f"../../exports/demo.{fmt}"
        result = run_cli("export", str(Path("../..") / manifest.name), "--state", "../../state", "--format", fmt,
                         "--to", to, cwd=work)
        assert result.code == 0, str(result)
        rows = _rows((work / to).read_text(encoding="utf-8"), fmt)
        assert len(rows) == 3 and all(_opens(tmp_path / "exports", row) for row in rows), rows
        assert all(not Path(row["path"]).is_absolute() for row in rows), rows
        beside = run_cli("export", str(Path("../..") / manifest.name), "--state", "../../state", "--format", fmt,
                         "--to", "here." + fmt, cwd=work)  # in the working directory: as before
        assert beside.code == 0, str(beside)
        assert all(_opens(work, row) for row in _rows((work / f"here.{fmt}").read_text(encoding="utf-8"), fmt))
        out = run_cli("export", str(Path("../..") / manifest.name), "--state", "../../state", "--format", fmt,
                      cwd=work)
        assert out.code == 0, str(out)
        assert all(_opens(work, row) for row in _rows(out.stdout, fmt))  # stdout: from the working directory
        device = run_cli("export", str(Path("../..") / manifest.name), "--state", "../../state", "--format", fmt,
                         "--to", "/dev/stdout", cwd=work)  # no file in a folder: as stdout, not relative to /dev
        assert device.code == 0, str(device)
        assert all(_opens(work, row) for row in _rows(device.stdout, fmt)), device.stdout


def test_an_export_to_dev_stdout_redirected_to_a_file_opens_from_the_working_directory(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`export --to /dev/stdout > FILE` (a cron line): /dev/stdout is then a link to a regular file, so `path` was
    made relative to /dev (`../tmp/…`), which led nowhere from FILE nor from the working directory. A --to that names
    a descriptor (/dev/stdout, /dev/fd/N, /proc/…) is read as stdout is: relative to the working directory."""
    import subprocess

    from test_cli_support import clean_env, cli_argv

    manifest, _state, _sim, _keys = done_trio(tmp_path, provider)
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"redirected.{fmt}"
        with out.open("w", encoding="utf-8") as stream:
            proc = subprocess.run(cli_argv("export", str(manifest), "--state", str(tmp_path / "state"), "--format", fmt,
                                           "--to", "/dev/stdout"),
                                  cwd=tmp_path, env=clean_env(), stdout=stream, stderr=subprocess.PIPE, text=True,
                                  timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        rows = _rows(out.read_text(encoding="utf-8"), fmt)
        assert len(rows) == 3 and all(_opens(tmp_path, row) for row in rows), rows


def test_an_export_to_dev_stdout_appended_to_a_file_keeps_what_the_file_held(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`export --to /dev/stdout >> all.jsonl` (a cron line adding each day's export): /dev/stdout is then a link to
    a regular file, which was replaced whole (a temporary file renamed over it), so every earlier line was lost. A
    --to that names a descriptor is written in place, as stdout is: the shell's `>>` appends."""
    import subprocess

    from test_cli_support import clean_env, cli_argv

    manifest, _state, _sim, _keys = done_trio(tmp_path, provider)
    log = tmp_path / "all.jsonl"
    log.write_text('{"earlier": true}\n', encoding="utf-8")
    for _ in range(2):
        with log.open("a", encoding="utf-8") as stream:
            proc = subprocess.run(cli_argv("export", str(manifest), "--state", str(tmp_path / "state"),
                                           "--to", "/dev/stdout"),
                                  cwd=tmp_path, env=clean_env(), stdout=stream, stderr=subprocess.PIPE, text=True,
                                  timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
    rows = _rows(log.read_text(encoding="utf-8"), "jsonl")
    assert rows[0] == {"earlier": True} and len(rows) == 7, rows


def test_every_exported_clip_says_its_review_and_rejected_ones_come_on_request(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """jsonl / csv had no review column: an accepted clip and one nobody looked at read the same, and rejected clips
    were only left out. Each record says `review` (accepted, unreviewed; rejected with --include-rejected, which
    keeps them in; a job with no clip: empty), as does each hf row; by default rejected clips stay left out."""
    manifest, state, _sim, keys = done_trio(tmp_path, provider)
    assert run_cli("accept", str(manifest), keys["cat"], "--state", str(state), cwd=tmp_path).code == 0
    assert run_cli("reject", str(manifest), keys["owl"], "--reason", "r", "--state", str(state), cwd=tmp_path).code == 0
    wanted = {keys["cat"]: "accepted", keys["dog"]: "unreviewed"}
    for fmt in ("jsonl", "csv"):
        plain = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, cwd=tmp_path)
        assert plain.code == 0 and "left out: 1 rejected clip(s)" in plain.stderr, str(plain)
        assert {row["key"]: row["review"] for row in _rows(plain.stdout, fmt)} == wanted
        every = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--include-rejected",
                        cwd=tmp_path)
        assert every.code == 0 and "left out" not in every.stderr, str(every)
        assert {row["key"]: row["review"] for row in _rows(every.stdout, fmt)} == {**wanted, keys["owl"]: "rejected"}
    listed = run_cli("ls", str(manifest), "--state", str(state), "--json", cwd=tmp_path)  # as export --format jsonl
    assert {row["key"]: row["review"] for row in _rows(listed.stdout, "jsonl")} == {**wanted, keys["owl"]: "rejected"}
    dest = tmp_path / "hf"
    for flags, shown in ((["--include-rejected"], {**wanted, keys["owl"]: "rejected"}), ([], wanted)):
        hf = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(dest), *flags,
                     cwd=tmp_path)
        assert hf.code == 0, str(hf)
        rows = _rows((dest / "metadata.jsonl").read_text(encoding="utf-8"), "jsonl")
        assert {row["key"]: row["review"] for row in rows} == shown
        assert (dest / "owl.mp4").exists() == (keys["owl"] in shown)  # left out again: its file removed


def test_a_job_without_a_clip_has_no_review(tmp_path: Path) -> None:
    """`review` speaks of a clip: a job not done (pending, failed) has none to review: empty, not unreviewed."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest

    from test_cli_support import write_manifest

    manifest, state = write_manifest(tmp_path), tmp_path / "state"
    loaded = load_manifest(manifest)
    with open_ledger(state) as ledger:
        ledger.register(loaded.name, loaded.digest, list(expand(loaded)))
    for fmt in ("jsonl", "csv"):
        result = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, cwd=tmp_path)
        assert result.code == 0, str(result)
        rows = _rows(result.stdout, fmt)
        assert len(rows) == 3 and all(row["review"] in (None, "") for row in rows), rows


def test_an_export_into_a_folder_not_made_yet_makes_it(tmp_path: Path, provider: ProviderFactory) -> None:
    """`export --to exports/2026-12-05/demo.csv` (a cron job's dated folder) ended "cannot write …: No such file or
    directory", exit 2, where the hf export and the report make their folder; it makes the folders too now. A
    folder that cannot be made (a file in the way) is said, naming the export, exit 2, nothing written."""
    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    for fmt in ("jsonl", "csv"):
        dest = tmp_path / "exports" / fmt / "2026-12-05" / f"demo.{fmt}"
        result = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--to", str(dest),
                         cwd=tmp_path)
        assert result.code == 0, str(result)
        rows = _rows(dest.read_text(encoding="utf-8"), fmt)
        assert len(rows) == 3 and all(_opens(dest.parent, row) for row in rows)
    (tmp_path / "a-file").write_text("x")
    blocked = run_cli("export", str(manifest), "--state", str(state), "--to", str(tmp_path / "a-file" / "d" / "x.jsonl"),
                      cwd=tmp_path)
    assert blocked.code == 2 and "a-file" in blocked.stderr and "\n" not in blocked.stderr.strip(), str(blocked)
    assert (tmp_path / "a-file").read_text() == "x"


SEPARATED = """\
name: seps
defaults:
  duration: 3
prompt: "{line}"
matrix:
  line: ["first part\\u2028second part", "next\\u0085line", "para\\u2029graph"]
output: "c-{n}.mp4"
"""


def test_a_jsonl_record_is_one_line_to_every_line_reader(tmp_path: Path, provider: ProviderFactory) -> None:
    """A prompt holding U+2028 (a line separator pasted from a web page or Word), U+2029 or U+0085 went out raw in
    every JSON-lines output: one record per \\n, but Python's str.splitlines() (and a JavaScript reader before
    ES2019) cut it in two, and json.loads failed on both halves. They are written \\u-escaped now (the same JSON
    value): export jsonl (stdout and --to), the hf metadata.jsonl, ls --json and plan --list."""
    sim = provider()
    from test_cli_support import run_args, write_manifest

    manifest = write_manifest(tmp_path, SEPARATED.replace("{n}", "{line}"), "seps.yaml")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    prompts = {"first part\u2028second part", "next\u0085line", "para\u2029graph"}
    outputs = []
    for args in (["export"], ["export", "--to", "out.jsonl"], ["export", "--format", "hf", "--to", "hf"],
                 ["ls", "--json"], ["plan", "--list"]):
        result = run_cli(args[0], str(manifest), "--state", str(state), *args[1:], cwd=tmp_path)
        assert result.code == 0, str(result)
        outputs.append(result.stdout)
    outputs[1:3] = [(tmp_path / "out.jsonl").read_text(encoding="utf-8"),
                    (tmp_path / "hf" / "metadata.jsonl").read_text(encoding="utf-8")]
    for text in outputs:
        lines = text.splitlines()
        assert len(lines) == 3, lines
        records = [json.loads(line) for line in lines]
        assert {(r.get("request") or r).get("prompt") for r in records} == prompts


ODD = """\
name: odd
defaults:
  duration: 3
prompt: "a {title} scene"
matrix:
  title: ["=1+1", "'quoted", "'=HYPERLINK(1)", "a, \\"b\\" c", "line\\nbreak", "東京 ü", "-5", "@SUM(A1)", "+x"]
output: "{title}.mp4"
"""


def test_a_csv_cell_made_safe_for_a_spreadsheet_reads_back_exactly(tmp_path: Path) -> None:
    """A csv text cell a spreadsheet would run as a formula (=, +, -, @ first) gets a ' before it. A cell that began
    with ' already kept it as it was, so a builder reading the csv back could not tell `'=x` (written so) from `=x`
    (made safe), nor undo it. A cell starting with ' gets one more now: the rule "a cell starting with ' had one
    added" is exact, and every output name (commas, quotes, a newline, unicode) reads back as jsonl has it."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest

    from test_cli_support import write_manifest

    manifest, state = write_manifest(tmp_path, ODD, "odd.yaml"), tmp_path / "state"
    loaded = load_manifest(manifest)
    with open_ledger(state) as ledger:
        ledger.register(loaded.name, loaded.digest, list(expand(loaded)))
    exact = {row["key"]: row for row in _rows(run_cli("export", str(manifest), "--state", str(state),
                                                      cwd=tmp_path).stdout, "jsonl")}
    result = run_cli("export", str(manifest), "--state", str(state), "--format", "csv", "--to", "odd.csv", cwd=tmp_path)
    assert result.code == 0, str(result)
    rows = _rows((tmp_path / "odd.csv").read_text(encoding="utf-8"), "csv")
    assert len(rows) == len(exact) == 9
    for row in rows:
        cell = row["output"]
        assert not cell.startswith(("=", "+", "-", "@")), cell  # a spreadsheet shows it as text
        assert (cell[1:] if cell.startswith("'") else cell) == exact[row["key"]]["output"], cell
        assert json.loads(row["vars"]) == exact[row["key"]]["vars"]


ROWS = """\
name: rowsy
defaults:
  duration: 3
prompt: "{prompt}"
matrix:
  rows: {file: data/prompts.csv}
output: "{id}.mp4"
"""


def test_an_export_never_replaces_the_manifest_or_a_file_it_reads(tmp_path: Path) -> None:
    """`export --format csv --to data/prompts.csv` (a builder naming the export after the batch) replaced the
    manifest's own rows file with the export: hand-made prompts gone, the next run reading the export as its rows.
    An export onto the manifest or a file its matrix reads is refused, exit 2, the file as it was."""
    from runner.ledger import open_ledger
    from runner.manifest import expand, load_manifest

    from test_cli_support import write_manifest

    (tmp_path / "data").mkdir()
    rows = tmp_path / "data" / "prompts.csv"
    rows.write_text("id,prompt\na,a fox at dawn\nb,a heron at dusk\n", encoding="utf-8")
    manifest, state = write_manifest(tmp_path, ROWS, "rowsy.yaml"), tmp_path / "state"
    loaded = load_manifest(manifest)
    with open_ledger(state) as ledger:
        ledger.register(loaded.name, loaded.digest, list(expand(loaded)))
    for fmt, target in (("csv", "data/prompts.csv"), ("jsonl", "rowsy.yaml"), ("csv", "./data/../data/prompts.csv")):
        before = (tmp_path / target).read_bytes()
        refused = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--to", target, cwd=tmp_path)
        assert refused.code == 2 and "reads" in refused.stderr, str(refused)
        assert (tmp_path / target).read_bytes() == before
    fine = run_cli("export", str(manifest), "--state", str(state), "--format", "csv", "--to", "data/export.csv",
                   cwd=tmp_path)
    assert fine.code == 0 and len(_rows((tmp_path / "data" / "export.csv").read_text(), "csv")) == 2, str(fine)


def test_an_hf_export_or_report_waits_for_another_writing_its_folder(tmp_path: Path, provider: ProviderFactory) -> None:
    """Two hf exports (or reports) of one folder at once interleaved: each prunes the files the folder's last export
    listed, so one removed a video the other had placed and listed, and metadata.jsonl named a missing file. The
    second waits for the first now (flock on the folder, no lock file in the dataset), saying so, then writes."""
    import fcntl
    import os

    from test_cli_support import finish_cli, read_until, start_cli

    manifest, state, _sim, _keys = done_trio(tmp_path, provider)
    for command, dest, written in (("export", tmp_path / "hf", "metadata.jsonl"), ("report", tmp_path / "rep",
                                                                                    "index.html")):
        dest.mkdir()
        fd = os.open(dest, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another export of the folder, under way
            extra = ["--format", "hf"] if command == "export" else []
            proc = start_cli(command, str(manifest), "--state", str(state), *extra, "--to", str(dest), cwd=tmp_path)
            read_until(proc, "another export or report is writing")
            assert not (dest / written).exists() and proc.poll() is None
        finally:
            os.close(fd)  # the other one is done
        rest = finish_cli(proc)
        assert proc.returncode == 0, rest
        assert (dest / written).is_file() and sorted(p.name for p in dest.iterdir() if p.name.startswith(".")) == []
