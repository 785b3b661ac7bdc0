"""An export or a report the disk cannot hold leaves the earlier one whole (OS sweep, 2026-12-05).

``export --format jsonl|csv --to FILE`` emptied FILE before writing the first row: on a full disk the run failed
halfway and left the previous, complete export cut in the middle of a line, which a pipeline reading JSON lines
took for a shorter dataset. The hf export and the HTML report left their temporary file (``.NAME.tmp-PID``) on the
full disk at every try. Proven on a real full file system (a small tmpfs, filled by another file)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.testing import fill_disk

from test_cli_support import ProviderFactory, clean_env, cli_argv, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

SmallDisk = Callable[..., Path]  # the suite's fixture (tests/conftest.py)
EXIT_LOCAL = 6

TWELVE = """\
name: twelve
defaults:
  duration: 3
prompt: "a {animal} at {time}"
matrix:
  animal: [cat, dog, owl, fox]
  time: [dawn, dusk, noon]
"""  # twelve rows: an export of more than one page (4 KB) of the tmpfs


def _done_twelve(tmp_path: Path, provider: ProviderFactory) -> tuple[Path, Path]:
    sim = provider()
    manifest = write_manifest(tmp_path, TWELVE, name="twelve.yaml")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    return manifest, state


def _leftovers(disk: Path) -> list[str]:
    return sorted(str(path.relative_to(disk)) for path in disk.rglob(".*.tmp-*"))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_the_full_disk_cuts_short_leaves_the_earlier_file_whole(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk, fmt: str) -> None:
    manifest, state = _done_twelve(tmp_path, provider)
    disk = small_disk(tmp_path / "disk")
    out = disk / f"twelve.{fmt}"
    earlier = '{"key": "an earlier export, complete"}\n'
    out.write_text(earlier, encoding="utf-8")
    os.chmod(out, 0o640)
    fill_disk(disk)

    failed = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--to", str(out), cwd=tmp_path)
    assert failed.code == EXIT_LOCAL, str(failed)
    assert str(out) in failed.stderr and "No space left on device" in failed.stderr, str(failed)
    assert out.read_text(encoding="utf-8") == earlier, "the earlier export was cut"
    assert _leftovers(disk) == []

    (disk / "filler").unlink()  # space again: the export replaces the file, its mode kept
    done = run_cli("export", str(manifest), "--state", str(state), "--format", fmt, "--to", str(out), cwd=tmp_path)
    assert done.code == 0, str(done)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12 + (fmt == "csv") and stat.S_IMODE(out.stat().st_mode) == 0o640
    assert _leftovers(disk) == []


def test_the_hf_export_and_the_report_leave_no_temporary_file_on_a_full_disk(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk) -> None:
    manifest, state = _done_twelve(tmp_path, provider)
    disk = small_disk(tmp_path / "disk")
    fill_disk(disk)
    for args in (["export", str(manifest), "--format", "hf", "--to", str(disk / "hf")],
                 ["report", str(manifest), "--to", str(disk / "report")]):
        failed = run_cli(*args, "--state", str(state), cwd=tmp_path)
        assert failed.code != 0 and "No space left on device" in failed.stderr, str(failed)
        assert _leftovers(disk) == [], f"{args[0]} left its temporary file on the full disk"


def test_an_hf_export_past_the_file_size_limit_exits_6_naming_it_and_leaves_no_partial_copy(
        tmp_path: Path, provider: ProviderFactory, small_disk: SmallDisk) -> None:
    """`ulimit -f` below a video's size, the hf folder on another file system (each video copied, not linked): the
    copy stopped at the limit (EFBIG) was left as ``.NAME.link-PID`` in the dataset folder, kept by every later
    export (and uploaded with it), and the command exited 3 saying 'free space'. Now: exit 6, the limit named, no
    partial copy; the export without the limit is the folder and nothing else (limits sweep, 2026-12-05)."""
    sim = provider(video_bytes=400_000)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    hf = small_disk(tmp_path / "disk", size="8m") / "hf"

    failed = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(hf), cwd=tmp_path,
                     max_file_bytes=300_000)
    assert failed.code == EXIT_LOCAL, str(failed)
    assert "file size limit" in failed.stderr and "free space" not in failed.stderr, str(failed)
    assert sorted(p.name for p in hf.rglob(".*")) == [], "a partial copy was left in the dataset folder"

    done = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(hf), cwd=tmp_path)
    assert done.code == 0, str(done)
    assert sorted(p.name for p in hf.rglob(".*")) == []
    assert sorted(p.name for p in hf.glob("*.mp4")) == ["cat.mp4", "dog.mp4", "owl.mp4"]


def test_a_report_or_an_export_to_stdout_past_the_file_size_limit_exits_6_naming_it(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`ulimit -f` below the page or the export (`runner export … > file`): exit 6 and the limit to raise. The report
    exited 3 with 'File too large' and no fix; the export said 'No space left…; fix it (the owner or permissions of …
    the state directory's…)' (limits sweep, 2026-12-05)."""
    sim = provider()
    many = "\n".join(["name: many", "prompt: 'a {animal} number {n}'", "matrix:",
                      "  animal: [cat, dog, owl, fox, elk, emu, yak, ant]", f"  n: {list(range(1, 26))}",
                      "output: '{animal}-{n}.mp4'", ""])
    manifest = write_manifest(tmp_path, many, name="many.yaml")
    state = tmp_path / "state"
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args("--concurrency", "50")), cwd=tmp_path).code == 0
    # (past the 32 KiB of the ledger's shared-memory file, which reading it makes; below 200 rows and their page)
    report = run_cli("report", str(manifest), "--state", str(state), "--to", str(tmp_path / "report"), cwd=tmp_path,
                     max_file_bytes=40_000)
    assert report.code == EXIT_LOCAL and "ulimit -f" in report.stderr, str(report)
    with (tmp_path / "export.jsonl").open("wb") as out:  # `> export.jsonl`: a file, where the limit applies
        exported = subprocess.run(cli_argv("export", str(manifest), "--state", str(state), max_file_bytes=40_000),
                                  cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.PIPE, text=True,
                                  timeout=60, check=False)
    assert exported.returncode == EXIT_LOCAL and "standard output" in exported.stderr, exported.stderr
    assert "ulimit -f" in exported.stderr and "state directory's" not in exported.stderr, exported.stderr
