"""The stream in front of stderr: a reader that left or a terminal that closed never makes a write raise."""

from __future__ import annotations

import errno
import io
import os

from runner.cli.output import DroppingStream


class _Failing(io.StringIO):
    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.fail = True

    def write(self, text: str) -> int:
        if self.fail:
            raise OSError(self.code, os.strerror(self.code))
        return super().write(text)


def test_a_closed_pipe_drops_this_write_and_every_later_one() -> None:
    """EPIPE: the write is dropped, the stream is gone, its descriptor now points at /dev/null."""
    read, write = os.pipe()
    os.close(read)
    raw = os.fdopen(write, "w", buffering=1)
    stream = DroppingStream(raw)
    try:
        assert stream.write("runner: progress\n") == len("runner: progress\n")
        stream.flush()
        assert stream.gone
        assert stream.write("more\n") == 5
        raw.write("the interpreter's final flush\n")
        raw.flush()  # no BrokenPipeError: the descriptor is /dev/null now
    finally:
        raw.close()


def test_a_terminal_gone_eio_is_dropped_for_good() -> None:
    """EIO (a closed terminal after SIGHUP) counts as gone, like EPIPE."""
    inner = _Failing(errno.EIO)
    stream = DroppingStream(inner)
    stream.write("x\n")
    assert stream.gone and not stream.isatty()


def test_a_full_disk_drops_only_that_write() -> None:
    """ENOSPC (stderr redirected to a file on a full disk) drops the write but keeps trying later ones."""
    inner = _Failing(errno.ENOSPC)
    stream = DroppingStream(inner)
    stream.write("lost\n")
    assert not stream.gone
    inner.fail = False
    stream.write("kept\n")
    assert inner.getvalue() == "kept\n"


def test_the_binary_buffer_is_not_exposed() -> None:
    """No way around the dropping: click must not find the raw binary buffer behind it."""
    stream = DroppingStream(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert not hasattr(stream, "buffer")
    assert stream.encoding == "utf-8"
