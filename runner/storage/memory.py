"""An output store in memory, for tests: the same rules as the local store, no disk.

Files are a dict of name → bytes; a sink becomes visible only when committed.
:meth:`MemoryStore.locate` answers a ``memory://`` URL (the shape a remote
store's answer takes).
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from runner.errors import RunnerError
from runner.storage.api import AbortOnExit, Kind, Placed, Room, Stored, UnsafeDestination, check_rel

__all__ = ["MemorySink", "MemoryStore"]


class MemorySink(AbortOnExit):
    """Bytes held until committed; see :class:`~runner.storage.api.Sink`."""

    def __init__(self, store: MemoryStore, targets: list[str]) -> None:
        self._store = store
        self._targets = targets
        self._buffer: bytearray | None = bytearray()
        self._digest = hashlib.sha256()
        store.open_sinks += 1

    @property
    def size(self) -> int:
        return len(self._buffer or b"")

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes) -> None:
        if self._buffer is None:
            raise ValueError("write to a sink that is closed")
        self._buffer += data
        self._digest.update(data)

    def commit(self) -> Stored:
        if self._buffer is None:
            raise ValueError("commit of a sink that is closed")
        data, self._buffer = bytes(self._buffer), None
        self._store.open_sinks -= 1
        files = self._store.files
        for rel in self._targets:
            if rel not in files:
                files[rel] = data
                return Stored(rel=rel, sha256=self.sha256, bytes=len(data))
            if files[rel] == data:
                return Stored(rel=rel, sha256=self.sha256, bytes=len(data), adopted=True)
        raise FileExistsError(errno.EEXIST, f"{os.strerror(errno.EEXIST)}: it holds another video", self._targets[-1])

    def abort(self) -> None:
        if self._buffer is not None:
            self._buffer = None
            self._store.open_sinks -= 1


class MemoryStore:
    """Files in a dict; see :class:`~runner.storage.api.OutputStore`."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.open_sinks = 0  # sinks neither committed nor aborted (tests check none is left)
        self.free: int | None = None  # what room says (None: cannot tell; a test sets a full disk)

    def _name(self, rel: str) -> str:
        return str(check_rel(rel, "the store"))

    def prepare(self, rel: str) -> None:
        self._name(rel)

    def probe(self, rel: str) -> None:
        self._name(rel)

    def check_name(self, rel: str) -> None:
        self._name(rel)

    def room(self, rel: str, other: str) -> Room | None:
        self._name(rel)
        return None if self.free is None else Room(self.free, None)  # one disk

    def open_sink(self, rel: str, *, beside: str | None = None) -> MemorySink:
        targets = [self._name(rel)] + ([self._name(beside)] if beside is not None else [])
        return MemorySink(self, targets)

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def size(self, rel: str) -> int | None:
        try:
            data = self.files.get(self._name(rel))
        except UnsafeDestination:
            return None
        return None if data is None else len(data)

    def verify(self, rel: str, sha256: str, size: int) -> bool:
        data = self.files.get(self._name(rel)) if self.exists(rel) else None
        return data is not None and len(data) == size and hashlib.sha256(data).hexdigest() == sha256

    def link(self, src_rel: str, dst_rel: str) -> Placed:
        source, dest = self._name(src_rel), self._name(dst_rel)
        if source not in self.files:
            raise RunnerError(f"cannot place memory://{dest} from memory://{source}: {os.strerror(errno.ENOENT)}")
        if dest in self.files and self.files[dest] != self.files[source]:
            raise RunnerError(f"cannot place memory://{dest} from memory://{source}: {os.strerror(errno.EEXIST)}")
        self.files[dest] = self.files[source]
        return "linked"

    def locate(self, rel: str) -> str:
        return f"memory://{self._name(rel)}"

    def export(self, rel: str, dest: Path, *, writer: str = "") -> Placed:
        name = self._name(rel)
        if name not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.files[name])
        return "copied"

    def describe(self, rel: str) -> str:
        return f"memory://{rel}"

    def kind(self, rel: str) -> Kind | None:
        try:
            name = self._name(rel)
        except UnsafeDestination:
            return None
        if name in self.files:
            return "file"
        return "folder" if any(other.startswith(name + "/") for other in self.files) else None

    def digest(self, rel: str) -> str | None:
        data = self.files.get(self._name(rel)) if self.exists(rel) else None
        return None if data is None else hashlib.sha256(data).hexdigest()

    def same_file(self, rel: str, other: str) -> bool:
        """A link shares its bytes object with its source (:meth:`link`); a copy does not."""
        if not (self.exists(rel) and self.exists(other)):
            return False
        return self.files[self._name(rel)] is self.files[self._name(other)]

    def move(self, src_rel: str, dst_rel: str) -> None:
        source, dest = self._name(src_rel), self._name(dst_rel)
        if source not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), source)
        if self.kind(dest) is not None:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dest)
        self.files[dest] = self.files.pop(source)

    def remove(self, rel: str) -> None:
        name = self._name(rel)
        if name not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        del self.files[name]

    def remove_partials(self, folder: str) -> tuple[int, int]:
        return 0, 0  # a sink holds its bytes in memory until its commit: nothing is left behind

    def holds_files(self, folder: str) -> bool:
        prefix = self._name(folder) + "/"
        return any(name.startswith(prefix) for name in self.files)
