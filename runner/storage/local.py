"""The local output store: files under the state directory, written atomically and durably.

Every video the runner stores goes under the store's root (the state directory, ``<state>/outputs/…``) and nowhere
else: :meth:`LocalStore.prepare` creates the folders of a name one at a time and refuses any that leads outside the
root (a symlinked folder planted inside ``outputs/``; :mod:`runner.storage.inside`). A sink streams into a temporary
file beside its name (``.<name>.part-<random>``, opened with ``O_EXCL | O_NOFOLLOW``) while the sha256 and size are
computed; its commit flushes it, makes it read-only (an export hard-links it: an in-place edit there would change
the original; :mod:`runner.storage.read_only`) and fsyncs it, places it with a hard link (which never replaces an existing file; where the
filesystem has no hard links, a rename that refuses an existing name: :mod:`runner.storage.noreplace`) and fsyncs the folder. The bytes a temporary or beside name adds are
reserved when a manifest is planned (:data:`~runner.storage.api.RESERVED_NAME_BYTES`), so a name that passes ``plan``
can always be written."""

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

from runner.errors import DiskError, RunnerError
from runner.storage.api import (
    TEMP_TOKEN_HEX,
    WHOLE_DISK_ERRNOS,
    AbortOnExit,
    Kind,
    Placed,
    Room,
    Stored,
    UnsafeDestination,
    check_rel,
    rel_parts,
    whole_disk_fix,
)
from runner.storage.folder_sync import sync_folder_if_possible
from runner.storage.inside import Folders, check_leaf, encoded, inside, is_dir, still, walk
from runner.storage.noreplace import rename_new
from runner.storage.partials import hold_while_open, remove_temp_files, temp_name
from runner.storage.read_only import STORED_MODE, make_read_only
from runner.storage.room import disk_room

__all__ = ["STORED_MODE", "LocalSink", "LocalStore", "file_sha256", "link_or_copy", "temp_name"]

# Filesystems without hard links answer these; the store then places a file with a rename that never replaces.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def file_sha256(path: Path) -> str:
    """The sha256 of a regular file's bytes; a folder or a FIFO (opened without blocking: never waited on, a run once
    hung on one at a video's name) raises ``OSError``."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise OSError(code, f"{os.strerror(code)} (not a regular file)", str(path))
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _holds(target: Path, sha256: str) -> bool:
    """Whether ``target`` is a file of these bytes; a folder or a FIFO holds none (the video goes to the next name)."""
    try:
        return file_sha256(target) == sha256
    except OSError:
        return False


def _open_temp(tmp: Path) -> BinaryIO:
    """A new file at ``tmp``: never an existing one, never through a symlink; locked while open (a live writer's
    file, which :func:`~runner.storage.partials.remove_temp_files` leaves alone)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644)
    hold_while_open(fd)
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
        if not rename_new(tmp, target):  # one step: never over a video another process stored after a check
            return False
        sync_folder_if_possible(target.parent)
        return True
    sync_folder_if_possible(target.parent)
    tmp.unlink(missing_ok=True)
    return True


def link_or_copy(source: Path, dest: Path, *, writer: str = "") -> Placed:
    """Hard-link ``source`` at ``dest`` (a copy across devices, fsynced first), atomically replacing it (one already
    ``source`` is left alone); returns which. For a report's or an export's folder; an OS error: a RunnerError.
    Its temporary name is ``.NAME.link-PID@WRITER`` (``writer``: :func:`runner.host.place_tag`, what tells a PID of
    this host from another's), or ``.NAME.link-PID`` without one."""
    try:
        if dest.exists() and os.path.samefile(source, dest):
            return "linked"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}{f'@{writer}' if writer else ''}")
        how: Placed = "linked"
        try:
            try:
                os.link(source, tmp)
            except OSError:
                tmp.unlink(missing_ok=True)  # a file or a link planted at the name: removed, never written through
                with open(source, "rb") as src, _open_temp(tmp) as out:
                    shutil.copyfileobj(src, out)
                    out.flush()
                    os.fsync(out.fileno())  # on the disk before its name: the export's metadata, fsynced after, lists it
                how = "copied"
            os.replace(tmp, dest)
        except BaseException:  # a copy cut short (a full disk, the file size limit) must not stay in the folder
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return how
    except OSError as exc:
        raise _place_error(source, dest, exc) from exc


def _place_error(source: Path, dest: Path, exc: OSError) -> RunnerError:
    kind, fix = ((DiskError, whole_disk_fix(exc.errno)) if exc.errno in WHOLE_DISK_ERRNOS  # exit 6, as a full disk
                 else (RunnerError, "restore the file or free space and run again"))
    return kind(f"cannot place {dest} from {source}: {exc.strerror or exc}; the ledger still records the video; {fix}")


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
                make_read_only(handle.fileno())  # the paid original: its exports' hard links share it
                os.fsync(handle.fileno())
            finally:
                handle.close()
            sha256 = self.sha256
            for rel, target in self._targets:
                if _place_new(self._tmp, target):
                    self._done = True
                    return Stored(rel=rel, sha256=sha256, bytes=self._size)
                if _holds(target, sha256):
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
    """Files under ``root`` (the state directory); see :class:`~runner.storage.api.OutputStore`.

    A name :meth:`prepare` checked is remembered with its folders' identities (device, inode), for the
    download's first :meth:`open_sink`: that sink looks each folder up once (still a real folder, still
    that one: :func:`~runner.storage.inside.still`) instead of walking the name again; any change and
    the full walk runs."""

    _PREPARED_MAX = 1024  # names checked and not opened yet (downloads that failed first): forgotten past this

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._top = os.fspath(self.root)
        self._where = f"the state directory {self.root}"  # what check_rel's refusal names
        self._prepared: dict[str, tuple[Path, Folders]] = {}
        self._had_root = is_dir(self.root)  # a state directory moved or removed later is not made again (below)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -------------------------------------------------------------- writing
    def prepare(self, rel: str) -> None:
        dest, folders = self._prepare(rel)
        if folders is not None:
            if len(self._prepared) >= self._PREPARED_MAX:
                self._prepared.clear()
            self._prepared[rel] = (dest, folders)

    def probe(self, rel: str) -> None:
        """Walk ``rel`` (its folders created, each checked to stay inside the root), then create and remove a
        temporary file in its folder: a folder the runner may not write in, or a read-only disk, is found here."""
        dest = self._prepare(rel)[0]
        probe = temp_name(dest, secrets.token_hex(TEMP_TOKEN_HEX // 2))  # a sink's own kind of name: plan reserved its bytes
        _open_temp(probe).close()
        probe.unlink()

    def check_name(self, rel: str) -> None:
        check_leaf(self.root, self._inside(rel))

    def room(self, rel: str, other: str) -> Room | None:
        """``statvfs`` and ``stat`` of the deepest folder of each name that exists (the root at least): four system
        calls (the names were checked by :meth:`probe`)."""
        found = disk_room((self.root / rel).parent, self.root)
        if found is None:
            return None
        also = disk_room((self.root / other).parent, self.root)
        # cannot tell for the other: as one disk (its reserve counted with the outputs)
        return Room(found[0], None if also is None or also[1] == found[1] else also[0])

    def remove_partials(self, folder: str) -> tuple[int, int]:
        return remove_temp_files(self.root / check_rel(folder, f"the state directory {self.root}"))

    def _prepare(self, rel: str) -> tuple[Path, Folders | None]:
        if self._had_root and not is_dir(self.root):  # moved under a run: its ledger went along, so must its videos
            raise FileNotFoundError(errno.ENOENT, "the state directory was moved or removed under the run", str(self.root))
        return walk(self.root, rel)

    def _inside(self, rel: str) -> str:
        """``root / rel`` as a string, refused when ``rel`` could leave the root (:func:`check_rel`'s rule): no path
        object, as every job's admission asks for its name (:meth:`check_name`, :meth:`kind`)."""
        return os.path.join(self._top, *rel_parts(rel, self._where))

    def _check_leaf(self, dest: Path) -> None:
        check_leaf(self.root, dest)

    def open_sink(self, rel: str, *, beside: str | None = None) -> LocalSink:
        prepared = self._prepared.pop(rel, None)
        if prepared is not None and still(prepared[1]):
            dest = prepared[0]  # its folders are the ones prepare() walked through: only the name is looked at again
            self._check_leaf(dest)
        else:
            dest = self._prepare(rel)[0]
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
            dest = self._prepare(dst_rel)[0]
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
                        make_read_only(out.fileno())
                        os.fsync(out.fileno())
                    if not _place_new(tmp, dest):
                        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
                finally:
                    tmp.unlink(missing_ok=True)
                return "copied"
            sync_folder_if_possible(dest.parent)
            return "linked"
        except OSError as exc:
            raise _place_error(source, dest, exc) from exc

    # -------------------------------------------------------------- reading
    def _resolve(self, rel: str) -> Path:
        """``root / rel`` for reading: refused when it (or a folder on the way) leads outside the root."""
        check_rel(rel, f"the state directory {self.root}")
        path = self.root / rel
        encoded(os.fspath(path))  # a name the locale cannot write: an OSError (EILSEQ), not UnicodeEncodeError
        real = os.path.realpath(path)
        if not inside(real, os.path.realpath(self.root)):
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

    def export(self, rel: str, dest: Path, *, writer: str = "") -> Placed:
        return link_or_copy(self._resolve(rel), dest, writer=writer)

    def describe(self, rel: str) -> str:
        return str(self.root / rel)

    # -------------------------------------------------------------- renaming
    def kind(self, rel: str) -> Kind | None:
        try:
            mode = os.lstat(self._inside(rel)).st_mode
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
        """One ``rename`` that never replaces what is at the name (:func:`~runner.storage.noreplace.rename_new`);
        both folders fsynced."""
        source = self._resolve(src_rel)
        dest = self._prepare(dst_rel)[0]
        if not rename_new(source, dest):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
        sync_folder_if_possible(dest.parent)
        if source.parent != dest.parent:
            sync_folder_if_possible(source.parent)

    def remove(self, rel: str) -> None:
        os.unlink(self._resolve(rel))

    def holds_files(self, folder: str) -> bool:
        """Stops at the first file ``os.walk`` finds (links to folders are not followed)."""
        top = self.root / check_rel(folder, f"the state directory {self.root}")
        return any(files for _root, _dirs, files in os.walk(top))
