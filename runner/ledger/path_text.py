"""A folder's path kept in a ledger's text (a moved mark's destination, a ``cp -a`` copy's note of its original),
written and read back as it was.

A folder's name may hold what SQLite's text and a line of it cannot: a byte that is not UTF-8 (a name made on a Latin-1
system, an old disk mounted; Python holds it as a lone surrogate, which SQLite refuses: the write raised, every command
from such a copy stopped with a traceback), or a line break (a newline, U+2028 pasted from a document: a note read by
lines cut the path there). Such a path is kept %-escaped whole, each of its bytes, so that it begins with "%", as no
absolute path, host name or URL does; any other is kept as it is (what older runners wrote reads the same).
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["as_text", "from_text"]


def as_text(path: str) -> str:
    """``path`` as the ledger keeps it: as it is, or %-escaped whole when it holds a byte not UTF-8 or a line break."""
    if path.splitlines() == [path] and not any("\udc80" <= c <= "\udcff" for c in path):
        return path
    return "".join(f"%{byte:02X}" for byte in path.encode("utf-8", "surrogateescape"))  # (each byte: begins "%")


def from_text(text: str) -> str:
    """The path :func:`as_text` kept as ``text``."""
    return unquote(text, errors="surrogateescape") if text.startswith("%") else text
