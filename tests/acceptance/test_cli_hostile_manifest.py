"""Hostile manifests and the files they name: `runner plan` ends at once with one located line and exit 2.

Each case was a hang, a traceback or a silent success before: a FIFO or a device as an input file
(the plan blocked in open() or hashed /dev/zero forever).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_cli_support import run_cli, write_manifest

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
