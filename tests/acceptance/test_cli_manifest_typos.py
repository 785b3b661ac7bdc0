"""Issue 12's manifest traps, as a user meets them in `runner plan` and `runner run`: one line naming the
file, the line and the fix, exit 2, and nothing planned or sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.ledger import DB_NAME

from test_cli_support import counts, run_args, run_cli, write_manifest

CASES = {
    "collision": ("name: c\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo]\n  duration: [5, 10]\nrepeats: 2\n"
                  "output: '{city}/{repeat}.mp4'\n", 7, "they differ in duration (5 vs 10), which output does not use"),
    "empty-prompt": ("name: e\nprompt: '{text}'\nmatrix:\n  rows:\n    - {id: 1, text: a fox}\n    - {id: 2, text: ''}\n"
                     "output: '{id}'\n", 6, "prompt is empty: {text} is empty in this job"),
    "exclude": ("name: x\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo, Lima]\n  aspect_ratio: ['16:9', '9:16']\n"
                "  exclude:\n    - {city: Lima, aspect_ratio: '16:9 '}\n", 7,
                "matches no combination of the matrix: aspect_ratio has no value '16:9 '; did you mean '16:9'?"),
    "extension": ("name: w\nprompt: 'a {city}'\nmatrix:\n  city: [Tokyo]\noutput: 'x.webm'\n", 5,
                  "output 'x.webm' ends in '.webm', but kling-v3.0-pro-t2v makes .mp4 files: end it in .mp4"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_manifest_typo_is_one_line_naming_the_line_and_exit_2(tmp_path: Path, case: str) -> None:
    """plan and run both refuse it with the file:line and the fix; run sends nothing and plans no job."""
    text, line, words = CASES[case]
    manifest = write_manifest(tmp_path, text, name="m.yaml")
    state = tmp_path / "state"
    for command in (("plan", str(manifest)), run_args("run", manifest, state, "--simulate")):
        result = run_cli(*command, cwd=tmp_path, key=None)
        assert result.code == 2, str(result)
        errors = [row for row in result.stderr.splitlines() if "error" in row]
        assert len(errors) == 1 and f"m.yaml:{line}: " in errors[0] and words in errors[0], str(result)
    assert not (state / DB_NAME).exists() or counts(state, text.split()[1]) == {}, "nothing was planned"
