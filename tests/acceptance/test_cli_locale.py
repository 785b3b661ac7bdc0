"""A locale whose file name encoding cannot write an output name (emoji, CJK under ``LC_ALL=C`` without UTF-8 mode,
or a Latin-1 locale).

Limits sweep, 2026-12-05: Python encodes file names with the locale's encoding, and an output name it could not
encode raised UnicodeEncodeError out of the store: `run` ended in a traceback and exit 1 before sending anything,
`collect` left paid videos unstored behind a traceback, `verify`, `report` and `export --format hf` crashed. Such a
name is now an OS error (EILSEQ) that names the locale: a job not sent yet is held, a paid video stays recorded as
succeeded for a run under a UTF-8 locale.
"""

from __future__ import annotations

from pathlib import Path

from test_cli_support import ProviderFactory, counts, provider, run_args, run_cli, write_manifest

__all__ = ["provider"]  # the fixture, imported for pytest

# Python's own UTF-8 defaults turned off, as on a host whose locale is C (or Latin-1) and whose Python predates them.
ASCII_NAMES = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
WIDE = """\
name: trio
defaults:
  duration: 3
prompt: "a {animal} crossing a quiet street 🦊 東京の夜"
matrix:
  animal: [cat, 狐, "🐈"]
output: "{animal}.mp4"
"""


def test_a_run_under_a_locale_that_cannot_write_a_name_holds_those_jobs_unsent(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """Under LC_ALL=C: the job whose name the locale can write is done, the two others are held (not sent), exit 6
    naming the locale; the next run under UTF-8 does them, each paid once."""
    sim = provider()
    manifest = write_manifest(tmp_path, WIDE)
    state = tmp_path / "state"
    held = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, env=ASCII_NAMES)
    assert held.code == 6, str(held)
    assert "UTF-8 locale" in held.stderr, str(held)
    assert counts(state) == {"done": 1, "pending": 2} and sim.accepted() == 1
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0, str(again)
    assert counts(state) == {"done": 3} and sim.accepted() == 3 and sim.max_per_body() == 1


def test_paid_videos_the_locale_cannot_name_stay_succeeded_and_every_command_answers(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """Submitted under UTF-8, collected under LC_ALL=C: the two videos stay recorded as succeeded (no traceback),
    the read commands answer, and a collect under UTF-8 stores them without paying again."""
    sim = provider()
    manifest = write_manifest(tmp_path, WIDE)
    state = tmp_path / "state"
    assert run_cli(*run_args("submit", manifest, state, *sim.engine_args()), cwd=tmp_path).code in (0, 3)
    collected = run_cli(*run_args("collect", None, state, *sim.engine_args()), cwd=tmp_path, env=ASCII_NAMES)
    assert "UTF-8 locale" in collected.stderr, str(collected)
    assert counts(state) == {"done": 1, "succeeded": 2}, str(collected)
    for command in (["ls", str(manifest)], ["status", str(manifest)], ["export", str(manifest)],
                    ["verify", str(manifest)], ["report", str(manifest), "--to", str(tmp_path / "report")],
                    ["export", str(manifest), "--format", "hf", "--to", str(tmp_path / "hf")]):
        read = run_cli(*command, "--state", str(state), cwd=tmp_path, env=ASCII_NAMES)  # (run_cli: no traceback)
        assert read.code in (0, 1), str(read)
    assert counts(state) == {"done": 1, "succeeded": 2}
    done = run_cli(*run_args("collect", None, state, *sim.engine_args()), cwd=tmp_path)
    assert done.code == 0, str(done)
    assert counts(state) == {"done": 3} and sim.accepted() == 3


def test_a_state_directory_the_locale_cannot_decode_is_run_listed_and_exported(
        tmp_path: Path, provider: ProviderFactory) -> None:
    """`--state états` under LC_ALL=C: the name reaches Python as surrogate escapes. The ledger's commit mark
    (written as strict UTF-8) ended the run in a traceback, exit 1, before sending anything; `plan`, `runs`, `export`
    and `report`, printing or writing the path, ended in one too. Now the path's own bytes are written back."""
    sim = provider()
    manifest = write_manifest(tmp_path, WIDE.replace('[cat, 狐, "🐈"]', "[cat, dog]"))
    state = tmp_path / "états"
    ran = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, env=ASCII_NAMES)
    assert ran.code == 0, str(ran)
    assert counts(state) == {"done": 2} and sim.accepted() == 2
    for command in (["plan", str(manifest)], ["runs"], ["export", str(manifest)],
                    ["export", str(manifest), "--format", "csv", "--to", str(tmp_path / "out.csv")],
                    ["report", str(manifest), "--to", str(tmp_path / "report")],
                    ["export", str(manifest), "--format", "hf", "--to", str(tmp_path / "hf")]):
        read = run_cli(*command, "--state", str(state), cwd=tmp_path, env=ASCII_NAMES)  # (run_cli: no traceback)
        assert read.code == 0, str(read)
        if command[:2] == ["export", str(manifest)] and len(command) == 2:
            assert "états/outputs/trio/cat.mp4" in read.stdout, read.stdout[:500]
