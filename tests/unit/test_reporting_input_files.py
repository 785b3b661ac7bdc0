"""The exports and the report copy a job's local input image from the manifest's folder: what is there now is
read only if it is a regular file (a FIFO there blocked `runner export` and the report forever)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fifo_swap import no_block, swap_before_open

from runner.reporting.inputs import JobInput, input_bytes, write_input
from runner.testing import make_png


def _input(root: Path) -> tuple[JobInput, bytes]:
    data = make_png(640, 360)
    (root / "img").mkdir(parents=True)
    (root / "img" / "x.png").write_bytes(data)
    return JobInput("image", "image", file="img/x.png", sha256=hashlib.sha256(data).hexdigest(), mime="image/png"), data


def test_a_local_input_that_is_still_there_is_read(tmp_path: Path) -> None:
    item, data = _input(tmp_path)
    assert input_bytes(item, tmp_path) == data
    assert write_input(item, tmp_path, tmp_path / "out" / "x.png") and (tmp_path / "out" / "x.png").read_bytes() == data


@pytest.mark.parametrize("how", ["replaced", "swapped"])
def test_a_local_input_that_became_a_fifo_is_not_available_and_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    item, _ = _input(tmp_path)
    image = tmp_path / "img" / "x.png"
    if how == "replaced":
        image.unlink()
        os.mkfifo(image)
    else:
        swap_before_open(monkeypatch, image)
    found: list[bytes | None] = []
    assert no_block(lambda: found.append(input_bytes(item, tmp_path)), image) is None
    assert found == [None]
    assert no_block(lambda: found.append(write_input(item, tmp_path, tmp_path / "out" / "x.png")), image) is None
    assert found[1] is False and not (tmp_path / "out" / "x.png").exists()


def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path: Path) -> None:
    """An export's or the report's copy of an input went through ``.NAME.tmp-PID``, opened following a link there:
    the file it named (a ledger.db) was overwritten with the image."""
    item, data = _input(tmp_path)
    victim = tmp_path / "ledger.db"
    victim.write_bytes(b"the ledger")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f".x.png.tmp-{os.getpid()}").symlink_to(victim)
    assert write_input(item, tmp_path, tmp_path / "out" / "x.png")
    assert victim.read_bytes() == b"the ledger" and (tmp_path / "out" / "x.png").read_bytes() == data
    assert not (tmp_path / "out" / "x.png").is_symlink()


def test_a_fifo_at_the_copy_s_name_is_replaced_not_waited_on(tmp_path: Path) -> None:
    """The copy already there was read to compare it (``read_bytes``): a FIFO at its name hung the export for ever."""
    item, data = _input(tmp_path)
    (tmp_path / "out").mkdir()
    fifo = tmp_path / "out" / "x.png"
    os.mkfifo(fifo)
    found: list[bool] = []
    assert no_block(lambda: found.append(write_input(item, tmp_path, fifo)), fifo) is None
    assert found == [True] and fifo.read_bytes() == data
