"""The local output store: files under the state directory, written atomically and durably.

Every video the runner stores goes under the store's root (the state
directory, ``<state>/outputs/…``) and nowhere else: :meth:`LocalStore.prepare`
creates the folders of a name one at a time and refuses any that leads outside
the root (a symlinked folder planted inside ``outputs/``). A sink streams into
a temporary file beside its name (``.<name>.part-<random>``, opened with
``O_EXCL | O_NOFOLLOW``) while the sha256 and size are computed; its commit
flushes and fsyncs it, places it with a hard link (which never replaces an
existing file; a rename after a check where the filesystem has no hard links)
and fsyncs the folder. The bytes a temporary or beside name adds are reserved
when a manifest is planned (:data:`~runner.storage.api.RESERVED_NAME_BYTES`),
so a name that passes ``plan`` can always be written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from runner.errors import RunnerError
from runner.storage.api import (
    TEMP_TOKEN_HEX,
    AbortOnExit,
    Kind,
    Placed,
    Stored,
    UnsafeDestination,
    check_rel,
    rel_parts,
)

__all__ = ["LocalSink", "LocalStore", "file_sha256", "link_or_copy", "temp_name"]

_PATH_MAX = 4096
# Filesystems without hard links answer these; the store then places a file with a checked rename.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def temp_name(dest: Path, token: str) -> Path:
    """The temporary file a sink for ``dest`` streams into: ``.<name>.part-<token>`` beside it."""
    return dest.parent / f".{dest.name}.part-{token}"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(dir_fd)


def _open_temp(tmp: Path) -> BinaryIO:
    """A new file at ``tmp``: never an existing one, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644)
    return os.fdopen(fd, "wb")


def _place_new(tmp: Path, target: Path) -> bool:
    """Give the complete file ``tmp`` the name ``target`` unless something is there; whether it did."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            return False
        os.replace(tmp, target)
        _sync_dir(target.parent)
        return True
    _sync_dir(target.parent)
    tmp.unlink(missing_ok=True)
    return True


def _lmode(path: str | Path) -> int | None:
    """The mode of ``path`` itself (a link is not followed), or None when nothing is there."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _is_dir(path: str | Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def link_or_copy(source: Path, dest: Path) -> Placed:
    """Hard-link ``source`` at ``dest`` (a copy across devices), atomically replacing it; returns which.

    For folders outside any store (a report, an export). An existing ``dest`` that already is
    ``source`` is left alone. An OS error becomes a :class:`RunnerError` naming both paths.
    """
    try:
        if dest.exists() and os.path.samefile(source, dest):
            return "linked"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
        how: Placed = "linked"
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            how = "copied"
        os.replace(tmp, dest)
        return how
    except OSError as exc:
        raise _place_error(source, dest, exc) from exc


def _place_error(source: Path, dest: Path, exc: OSError) -> RunnerError:
    return RunnerError(
        f"cannot place {dest} from {source}: {exc.strerror or exc}; the ledger still records the video;"
        " restore the file or free space and run again"
    )


class LocalSink(AbortOnExit):
    """A temporary file beside its name; see :class:`~runner.storage.api.Sink`."""

    def __init__(self, dest: Path, rel: str, beside: tuple[str, Path] | None) -> None:
        self._targets = [(rel, dest)] + ([beside] if beside is not None else [])
        self._tmp = temp_name(dest, secrets.token_hex(TEMP_TOKEN_HEX // 2))
        self._handle: BinaryIO | None = _open_temp(self._tmp)
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes) -> None:
        if self._handle is None:
            raise ValueError("write to a sink that is closed")
        self._handle.write(data)
        self._digest.update(data)
        self._size += len(data)

    def commit(self) -> Stored:
        """Flush, fsync, place without overwriting (adopting an identical file), fsync the folder."""
        if self._handle is None:
            raise ValueError("commit of a sink that is closed")
        handle, self._handle = self._handle, None
        try:
            try:
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                handle.close()
            sha256 = self.sha256
            for rel, target in self._targets:
                if _place_new(self._tmp, target):
                    self._done = True
                    return Stored(rel=rel, sha256=sha256, bytes=self._size)
                if file_sha256(target) == sha256:
                    self._tmp.unlink(missing_ok=True)
                    self._done = True
                    return Stored(rel=rel, sha256=sha256, bytes=self._size, adopted=True)
            last = self._targets[-1][1]
            raise FileExistsError(errno.EEXIST, f"{os.strerror(errno.EEXIST)}: it holds another video", str(last))
        finally:
            if not self._done:
                self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if not self._done:
            self._tmp.unlink(missing_ok=True)


class LocalStore:
    """Files under ``root`` (the state directory); see :class:`~runner.storage.api.OutputStore`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -------------------------------------------------------------- writing
    def prepare(self, rel: str) -> None:
        self._prepare(rel)

    def _prepare(self, rel: str) -> Path:
        """``root / rel``, with its folders created, checked to stay inside ``root``.

        Each folder is created (or found) one at a time and resolved; a folder or
        an existing destination that resolves outside the root (a symlink planted
        in ``outputs/``) raises :class:`UnsafeDestination`. OS errors (name too
        long, no permission, a file where a folder should be) propagate unchanged.
        """
        parts = rel_parts(rel, f"the state directory {self.root}")
        root = os.fspath(self.root)
        whole = os.path.join(root, *parts)
        if len(os.fsencode(os.path.abspath(whole))) >= _PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, f"{os.strerror(errno.ENAMETOOLONG)} (the path is longer than {_PATH_MAX} bytes)", os.path.abspath(whole))
        if not _is_dir(root):
            os.makedirs(root, exist_ok=True)
        # One lstat per folder: a real folder (not a link) inside a folder already known to be inside the
        # root is inside it too; only a link is resolved (realpath) and checked against the root's real path.
        # Plain strings, not pathlib: building path objects cost more than the lookups.
        current = root
        for part in parts[:-1]:
            current = os.path.join(current, part)
            mode = _lmode(current)
            if mode is None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(current)
                mode = _lmode(current)
            if mode is not None and stat.S_ISDIR(mode):
                continue
            real = os.path.realpath(current)
            if not _inside(real, os.path.realpath(root)):
                raise UnsafeDestination(
                    f"{current} leads outside the state directory (to {real}); nothing is written there."
                    " Remove the link (or move the state directory) and run again"
                )
            if not os.path.isdir(real):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), current)
        dest = Path(whole)
        self._check_leaf(dest)
        return dest

    def _check_leaf(self, dest: Path) -> None:
        mode = _lmode(dest)
        if mode is not None and stat.S_ISLNK(mode) and not _inside(os.path.realpath(dest), os.path.realpath(self.root)):
            raise UnsafeDestination(
                f"{dest} is a link to {os.path.realpath(dest)}, outside the state directory; nothing is written"
                " there. Remove the link and run again"
            )

    def open_sink(self, rel: str, *, beside: str | None = None) -> LocalSink:
        dest = self._prepare(rel)
        other: tuple[str, Path] | None = None
        if beside is not None:
            check_rel(beside, f"the state directory {self.root}")
            if os.path.dirname(beside) != os.path.dirname(rel):
                raise UnsafeDestination(f"{beside!r} is not beside {rel!r}")
            other = (beside, self.root / beside)
            self._check_leaf(other[1])
        return LocalSink(dest, rel, other)

    def link(self, src_rel: str, dst_rel: str) -> Placed:
        source = self.root / src_rel
        dest = self.root / dst_rel
        try:
            source = self._resolve(src_rel)
            dest = self._prepare(dst_rel)
            if os.path.lexists(dest):
                if os.path.exists(dest) and os.path.samefile(source, dest):
                    return "linked"
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
            try:
                os.link(source, dest)
            except FileExistsError:
                raise
            except OSError:
                tmp = temp_name(dest, secrets.token_hex(TEMP_TOKEN_HEX // 2))
                try:
                    with _open_temp(tmp) as out, open(source, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                        out.flush()
                        os.fsync(out.fileno())
                    if not _place_new(tmp, dest):
                        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
                finally:
                    tmp.unlink(missing_ok=True)
                return "copied"
            _sync_dir(dest.parent)
            return "linked"
        except OSError as exc:
            raise _place_error(source, dest, exc) from exc

    # -------------------------------------------------------------- reading
    def _resolve(self, rel: str) -> Path:
        """``root / rel`` for reading: refused when it (or a folder on the way) leads outside the root."""
        check_rel(rel, f"the state directory {self.root}")
        path = self.root / rel
        real = os.path.realpath(path)
        if not _inside(real, os.path.realpath(self.root)):
            raise UnsafeDestination(f"{path} leads outside the state directory (to {real})")
        return path

    def _stat_size(self, rel: str) -> int | None:
        try:
            path = self._resolve(rel)
            return path.stat().st_size if path.is_file() else None
        except (UnsafeDestination, OSError):
            return None

    def exists(self, rel: str) -> bool:
        return self._stat_size(rel) is not None

    def size(self, rel: str) -> int | None:
        return self._stat_size(rel)

    def verify(self, rel: str, sha256: str, size: int) -> bool:
        if self._stat_size(rel) != size:
            return False
        try:
            return file_sha256(self.root / rel) == sha256
        except OSError:
            return False

    def locate(self, rel: str) -> Path:
        return self._resolve(rel)

    def export(self, rel: str, dest: Path) -> Placed:
        return link_or_copy(self._resolve(rel), dest)

    def describe(self, rel: str) -> str:
        return str(self.root / rel)

    # -------------------------------------------------------------- renaming
    def kind(self, rel: str) -> Kind | None:
        try:
            mode = os.lstat(self.root / check_rel(rel, f"the state directory {self.root}")).st_mode
        except (UnsafeDestination, OSError):
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"

    def digest(self, rel: str) -> str | None:
        try:
            path = self._resolve(rel)
        except UnsafeDestination:
            return None
        return file_sha256(path) if path.is_file() else None

    def same_file(self, rel: str, other: str) -> bool:
        try:
            return os.path.samefile(self._resolve(rel), self._resolve(other))
        except (UnsafeDestination, OSError):
            return False

    def move(self, src_rel: str, dst_rel: str) -> None:
        """One ``rename`` after a check that nothing is at the name; both folders fsynced."""
        source = self._resolve(src_rel)
        dest = self._prepare(dst_rel)
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
        os.rename(source, dest)
        _sync_dir(dest.parent)
        if source.parent != dest.parent:
            _sync_dir(source.parent)

    def remove(self, rel: str) -> None:
        os.unlink(self._resolve(rel))

    def holds_files(self, folder: str) -> bool:
        """Stops at the first file ``os.walk`` finds (links to folders are not followed)."""
        top = self.root / check_rel(folder, f"the state directory {self.root}")
        return any(files for _root, _dirs, files in os.walk(top))
