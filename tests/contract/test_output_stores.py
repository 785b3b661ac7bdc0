"""The contract every output store passes (runner/storage/api.py): run against each implementation.

A new store (object storage, say) joins by adding itself to ``STORES``; the local-only tests at
the end cover what only a filesystem has (symlinked folders, temporary files, a killed process).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import RunnerError
from runner.storage import OutputStore, Stored, UnsafeDestination, beside_name
from runner.storage.api import check_rel, rel_parts
from runner.storage.local import LocalStore, file_sha256
from runner.storage.memory import MemoryStore
from runner.testing import fill_disk

VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 20
OTHER = b"\x00\x00\x00\x18ftypmp42" + b"another video" * 50
REL = "outputs/batch/fox.mp4"
KEY = "0123456789abcdef" * 4
ESCAPES = ["../outside.mp4", "outputs/../../outside.mp4", "/etc/passwd", "", "outputs/a\\..\\b.mp4"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _local(tmp_path: Path) -> OutputStore:
    state = tmp_path / "state"
    state.mkdir()
    return LocalStore(state)


def _memory(tmp_path: Path) -> OutputStore:
    return MemoryStore()


STORES: dict[str, Callable[[Path], OutputStore]] = {"local": _local, "memory": _memory}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutputStore]:
    made = STORES[request.param](tmp_path)
    yield made
    if isinstance(made, MemoryStore):
        assert made.open_sinks == 0, "a sink was left neither committed nor aborted"
    if isinstance(made, LocalStore) and made.root.exists():
        temps = [p for p in made.root.rglob("*") if ".part-" in p.name]
        assert temps == [], "a temporary file was left behind"


def put(store: OutputStore, rel: str, data: bytes, *, beside: str | None = None) -> Stored:
    with store.open_sink(rel, beside=beside) as sink:
        sink.write(data[:100])
        sink.write(data[100:])
        return sink.commit()


def read(store: OutputStore, rel: str) -> bytes:
    where = store.locate(rel)
    if isinstance(where, Path):
        return where.read_bytes()
    assert isinstance(store, MemoryStore)
    return store.files[rel]


# ------------------------------------------------------------------ writing

def test_commit_stores_the_bytes_with_their_sha256_and_size(store: OutputStore) -> None:
    with store.open_sink(REL) as sink:
        sink.write(VIDEO)
        assert (sink.size, sink.sha256) == (len(VIDEO), sha(VIDEO))
        stored = sink.commit()
    assert stored == Stored(rel=REL, sha256=sha(VIDEO), bytes=len(VIDEO))
    assert store.exists(REL) and store.size(REL) == len(VIDEO)
    assert read(store, REL) == VIDEO


def test_nothing_is_at_the_name_before_the_commit(store: OutputStore) -> None:
    with store.open_sink(REL) as sink:
        sink.write(VIDEO)
        assert not store.exists(REL)
        assert store.size(REL) is None
        sink.commit()
    assert store.exists(REL)


def test_abort_leaves_nothing(store: OutputStore) -> None:
    sink = store.open_sink(REL)
    sink.write(VIDEO)
    sink.abort()
    sink.abort()  # harmless twice
    assert not store.exists(REL)
    with pytest.raises(ValueError):
        sink.write(b"more")


def test_an_exception_before_the_commit_leaves_nothing(store: OutputStore) -> None:
    with pytest.raises(RuntimeError), store.open_sink(REL) as sink:
        sink.write(VIDEO)
        raise RuntimeError("the download broke off")
    assert not store.exists(REL)


def test_a_sink_dropped_without_commit_leaves_nothing_at_the_name(store: OutputStore) -> None:
    """What a crash leaves (the local store's real crash is killed below): no file at the name."""
    sink = store.open_sink(REL)
    sink.write(VIDEO)
    assert not store.exists(REL)
    sink.abort()  # only tidying up; the name was never there


def test_a_commit_never_overwrites_another_file(store: OutputStore) -> None:
    put(store, REL, OTHER)
    with pytest.raises(FileExistsError):
        put(store, REL, VIDEO)
    assert read(store, REL) == OTHER


def test_another_video_at_the_name_sends_this_one_beside(store: OutputStore) -> None:
    put(store, REL, OTHER)
    beside = beside_name(REL, KEY)
    stored = put(store, REL, VIDEO, beside=beside)
    assert stored == Stored(rel="outputs/batch/fox.0123456789ab.mp4", sha256=sha(VIDEO), bytes=len(VIDEO))
    assert read(store, REL) == OTHER and read(store, beside) == VIDEO


def test_an_identical_file_in_place_is_adopted(store: OutputStore) -> None:
    first = put(store, REL, VIDEO)
    again = put(store, REL, VIDEO, beside=beside_name(REL, KEY))
    assert not first.adopted
    assert again == Stored(rel=REL, sha256=sha(VIDEO), bytes=len(VIDEO), adopted=True)
    assert not store.exists(beside_name(REL, KEY))


def test_an_identical_file_beside_is_adopted(store: OutputStore) -> None:
    beside = beside_name(REL, KEY)
    put(store, REL, OTHER)
    put(store, REL, VIDEO, beside=beside)
    again = put(store, REL, VIDEO, beside=beside)
    assert again.adopted and again.rel == beside
    assert read(store, REL) == OTHER


def test_both_names_taken_by_other_videos_is_refused(store: OutputStore) -> None:
    beside = beside_name(REL, KEY)
    put(store, REL, OTHER)
    put(store, beside, OTHER + b"!")
    with pytest.raises(FileExistsError):
        put(store, REL, VIDEO, beside=beside)
    assert read(store, REL) == OTHER and read(store, beside) == OTHER + b"!"


def test_of_two_sinks_for_one_name_the_first_commit_wins(store: OutputStore) -> None:
    one, two = store.open_sink(REL), store.open_sink(REL)
    one.write(VIDEO)
    two.write(OTHER)
    one.commit()
    with pytest.raises(FileExistsError):
        two.commit()
    assert read(store, REL) == VIDEO


@pytest.mark.parametrize("rel", ESCAPES)
def test_names_leaving_the_store_are_refused(store: OutputStore, rel: str) -> None:
    with pytest.raises(UnsafeDestination):
        store.open_sink(rel)
    with pytest.raises(UnsafeDestination):
        store.prepare(rel)
    with pytest.raises(UnsafeDestination):
        store.locate(rel)
    assert not store.exists(rel) and store.size(rel) is None
    assert not store.verify(rel, sha(VIDEO), len(VIDEO))
    put(store, REL, VIDEO)
    with pytest.raises(RunnerError):
        store.link(REL, rel)
    with pytest.raises(UnsafeDestination):
        store.open_sink(REL, beside=rel)


# ------------------------------------------------------------------ reading, linking

def test_verify_checks_size_and_sha256(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    assert store.verify(REL, sha(VIDEO), len(VIDEO))
    assert not store.verify(REL, sha(OTHER), len(VIDEO))
    assert not store.verify(REL, sha(VIDEO), len(VIDEO) + 1)
    assert not store.verify("outputs/batch/none.mp4", sha(VIDEO), len(VIDEO))


def test_link_places_the_same_video_at_another_name(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    other = "outputs/second/fox.mp4"
    assert store.link(REL, other) in ("linked", "copied")
    assert store.exists(other) and store.verify(other, sha(VIDEO), len(VIDEO))
    assert store.link(REL, other) in ("linked", "copied")  # again: nothing changes
    assert read(store, REL) == VIDEO


def test_link_never_overwrites_another_file(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    other = "outputs/second/fox.mp4"
    put(store, other, OTHER)
    with pytest.raises(RunnerError):
        store.link(REL, other)
    assert read(store, other) == OTHER


def test_link_of_a_missing_source_is_a_clear_error(store: OutputStore) -> None:
    with pytest.raises(RunnerError, match="cannot place"):
        store.link("outputs/batch/none.mp4", "outputs/second/none.mp4")
    assert not store.exists("outputs/second/none.mp4")


def test_locate_and_export_give_readers_the_bytes(store: OutputStore, tmp_path: Path) -> None:
    put(store, REL, VIDEO)
    where = store.locate(REL)
    assert isinstance(where, (Path, str))
    assert REL in str(where) and REL in store.describe(REL)
    dest = tmp_path / "report" / "videos" / "fox.mp4"
    assert store.export(REL, dest) in ("linked", "copied")
    assert dest.read_bytes() == VIDEO


def test_missing_names_do_not_exist(store: OutputStore) -> None:
    assert not store.exists(REL) and store.size(REL) is None


# ------------------------------------------------------------------ renaming (placement)

def test_kind_digest_and_same_file_describe_what_is_at_a_name(store: OutputStore) -> None:
    assert store.kind(REL) is None and store.digest(REL) is None
    put(store, REL, VIDEO)
    assert store.kind(REL) == "file" and store.kind("outputs/batch") == "folder"
    assert store.digest(REL) == sha(VIDEO)
    linked, copied = "outputs/second/fox.mp4", "outputs/third/fox.mp4"
    store.link(REL, linked)
    put(store, copied, VIDEO)
    if store.link(REL, linked) == "linked":
        assert store.same_file(REL, linked)
    assert not store.same_file(REL, copied) and store.digest(copied) == sha(VIDEO)
    assert not store.same_file(REL, "outputs/batch/none.mp4")
    assert store.kind("../outside.mp4") is None


def test_move_renames_in_one_step_into_new_folders(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    moved = "outputs/renamed/deeper/fox.mp4"
    store.move(REL, moved)
    assert not store.exists(REL) and store.kind(REL) is None
    assert read(store, moved) == VIDEO and store.verify(moved, sha(VIDEO), len(VIDEO))


def test_move_never_replaces_anything_at_the_name(store: OutputStore) -> None:
    other = "outputs/second/fox.mp4"
    put(store, REL, VIDEO)
    put(store, other, OTHER)
    with pytest.raises(FileExistsError):
        store.move(REL, other)
    with pytest.raises(FileExistsError):
        store.move(REL, "outputs/second")  # a folder is something too
    assert read(store, REL) == VIDEO and read(store, other) == OTHER


def test_move_of_a_missing_file_or_out_of_the_store_is_refused(store: OutputStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.move("outputs/batch/none.mp4", "outputs/batch/other.mp4")
    assert not store.exists("outputs/batch/other.mp4")
    put(store, REL, VIDEO)
    for rel in ESCAPES:
        with pytest.raises(UnsafeDestination):
            store.move(REL, rel)
    assert read(store, REL) == VIDEO


def test_holds_files_looks_under_a_folder_however_deep(store: OutputStore) -> None:
    assert not store.holds_files("outputs")
    put(store, "outputs/batch/deep/fox.mp4", VIDEO)
    assert store.holds_files("outputs") and store.holds_files("outputs/batch")
    assert not store.holds_files("outputs/other") and not store.holds_files("outputs/bat")


def test_remove_takes_one_name_away(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    other = "outputs/second/fox.mp4"
    store.link(REL, other)
    store.remove(other)
    assert not store.exists(other) and read(store, REL) == VIDEO
    with pytest.raises(FileNotFoundError):
        store.remove(other)


# ------------------------------------------------------------------ local only

def test_local_kind_does_not_follow_a_link(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    put(store, REL, VIDEO)
    (store.root / "outputs/batch/link.mp4").symlink_to("fox.mp4")
    (store.root / "outputs/batch/dangling.mp4").symlink_to("nowhere.mp4")
    assert store.kind("outputs/batch/link.mp4") == "link" and store.kind("outputs/batch/dangling.mp4") == "link"
    assert store.digest("outputs/batch/link.mp4") == sha(VIDEO) and store.digest("outputs/batch/dangling.mp4") is None
    with pytest.raises(FileExistsError):  # a dangling link is something at the name: never replaced
        store.move(REL, "outputs/batch/dangling.mp4")
    assert read(store, REL) == VIDEO


def test_local_refuses_a_symlinked_folder_leading_outside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "fox.mp4").write_bytes(OTHER)
    (tmp_path / "state" / "outputs").mkdir(parents=True)
    (tmp_path / "state" / "outputs" / "batch").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeDestination, match="leads outside the state directory"):
        store.open_sink(REL)
    with pytest.raises(UnsafeDestination):
        store.locate(REL)
    assert not store.exists(REL)
    assert sorted(p.name for p in outside.iterdir()) == ["fox.mp4"]


def test_local_refuses_a_link_at_the_name_leading_outside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(OTHER)
    (tmp_path / "state" / "outputs" / "batch").mkdir(parents=True)
    (tmp_path / "state" / REL).symlink_to(outside)
    with pytest.raises(UnsafeDestination, match="outside the state directory"):
        store.open_sink(REL)
    assert outside.read_bytes() == OTHER


def test_local_follows_a_symlinked_folder_that_stays_inside(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    (store.root / "outputs" / "real").mkdir(parents=True)
    (store.root / "outputs" / "batch").symlink_to(store.root / "outputs" / "real", target_is_directory=True)
    put(store, REL, VIDEO)
    assert (store.root / "outputs" / "real" / "fox.mp4").read_bytes() == VIDEO


@contextlib.contextmanager
def guard_alarm(seconds: int) -> Iterator[None]:
    """A call that would block for ever (a FIFO opened for reading) fails the test after ``seconds`` instead."""

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("thing", ["folder", "fifo"])
def test_local_a_folder_or_a_fifo_at_the_name_sends_the_video_beside(tmp_path: Path, thing: str) -> None:
    """A paid video whose name a folder or a FIFO took after its submit (OS sweep, 2026-12-05): the commit compared
    the download with what was at the name by hashing it — "Is a directory", the download failed run after run; a
    FIFO was opened for reading and the whole run hung. Nothing there holds the video: it is stored beside."""
    store = LocalStore(tmp_path / "state")
    dest = store.root / REL
    dest.parent.mkdir(parents=True)
    if thing == "folder":
        dest.mkdir()
    else:
        os.mkfifo(dest)
    beside = beside_name(REL, KEY)
    with guard_alarm(10):
        stored = put(store, REL, VIDEO, beside=beside)
    assert stored.rel == beside and not stored.adopted and read(store, beside) == VIDEO
    assert store.kind(REL) == ("folder" if thing == "folder" else "other")
    with pytest.raises(OSError), guard_alarm(10):
        file_sha256(dest)


def test_local_refuses_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    (store.root / "outputs").mkdir(parents=True)
    (store.root / "outputs" / "batch").write_bytes(b"not a folder")
    with pytest.raises(NotADirectoryError):
        store.open_sink(REL)


def test_local_checks_a_name_with_one_lookup_per_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path of every download: preparing a name in a folder that exists, under a deep root, looks
    each folder up once (no ``realpath`` walking every component of the root for each folder)."""
    store = LocalStore(tmp_path.joinpath(*"abcdefgh") / "state")
    put(store, REL, VIDEO)
    calls: list[str] = []
    for name in ("lstat", "stat"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    rel = "outputs/batch/owl.mp4"
    store.prepare(rel)
    with store.open_sink(rel, beside=beside_name(rel, "0123456789abcdef")):
        pass
    # prepare: 2 folders + the name; the download's open_sink: the 2 folders (still the ones prepare walked
    # through), the name and its beside name (before: 9, the root looked up by each walk)
    assert len(calls) <= 7, calls


def test_local_open_sink_after_prepare_still_refuses_a_folder_swapped_for_a_link(tmp_path: Path) -> None:
    """The download's first sink looks only at the folders prepare() walked through: one replaced meanwhile (by a
    link leading outside, even one to the very folder moved away) is noticed, and the whole walk runs again and
    refuses it."""
    store = LocalStore(tmp_path / "state")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.prepare(REL)
    batch = store.root / "outputs" / "batch"
    batch.rmdir()
    batch.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeDestination, match="leads outside the state directory"):
        store.open_sink(REL)
    assert list(outside.iterdir()) == []
    store.prepare("outputs/other/a.mp4")  # outputs/ moved out and linked back: its folder is the very same one
    outputs = store.root / "outputs"
    outputs.rename(tmp_path / "moved")
    outputs.symlink_to(tmp_path / "moved", target_is_directory=True)
    with pytest.raises(UnsafeDestination):
        store.open_sink("outputs/other/a.mp4")
    assert list((tmp_path / "moved" / "other").iterdir()) == []


def test_local_link_is_a_hard_link_and_commit_leaves_one_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    put(store, REL, VIDEO)
    assert os.stat(tmp_path / REL).st_nlink == 1  # the temporary name is gone
    assert store.link(REL, "outputs/b/fox.mp4") == "linked"
    assert os.path.samefile(tmp_path / REL, tmp_path / "outputs/b/fox.mp4")


def test_local_commit_without_hard_links_still_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without hard links: the commit places the file with a checked rename."""
    store = LocalStore(tmp_path)

    def no_links(src: object, dst: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    put(store, REL, VIDEO)
    assert (tmp_path / REL).read_bytes() == VIDEO
    with pytest.raises(FileExistsError):
        put(store, REL, OTHER)
    assert (tmp_path / REL).read_bytes() == VIDEO
    assert store.link(REL, "outputs/b/fox.mp4") == "copied"
    assert store.verify("outputs/b/fox.mp4", sha(VIDEO), len(VIDEO))


def _lands_after_the_check(monkeypatch: pytest.MonkeyPatch, target: Path, data: bytes) -> None:
    """Another process (another host sharing the outputs folder) stores ``data`` at ``target`` just after this one
    checked that the name is free: ``os.path.lexists`` answers, then the other video lands."""
    real = os.path.lexists
    landed: list[bool] = []

    def lexists(path: str | Path) -> bool:
        found = real(path)
        if not found and not landed and os.fspath(path) == os.fspath(target):
            landed.append(True)
            target.write_bytes(data)
        return found

    monkeypatch.setattr(os.path, "lexists", lexists)


def test_local_commit_without_hard_links_keeps_a_video_stored_at_its_name_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No hard links (vfat, exFAT, SMB): the commit checked the name was free, then renamed over whatever another
    process stored there in between (a paid video lost). Now the rename itself refuses an existing name and the
    video goes to its beside name."""
    store = LocalStore(tmp_path)
    monkeypatch.setattr(os, "link", lambda *args, **kwargs: (_ for _ in ()).throw(PermissionError(errno.EPERM, "")))
    (tmp_path / "outputs" / "batch").mkdir(parents=True)
    _lands_after_the_check(monkeypatch, tmp_path / REL, OTHER)
    stored = put(store, REL, VIDEO, beside=beside_name(REL, KEY))
    assert (tmp_path / REL).read_bytes() == OTHER
    assert stored.rel == beside_name(REL, KEY) and (tmp_path / stored.rel).read_bytes() == VIDEO


def test_local_move_keeps_a_video_stored_at_the_new_name_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rename of a stored video (an output name edited) checked the new name was free, then renamed over a video
    another process stored there in between. Now it is refused (EEXIST) and both videos are kept."""
    store = LocalStore(tmp_path)
    put(store, REL, VIDEO)
    _lands_after_the_check(monkeypatch, tmp_path / "outputs/batch/new.mp4", OTHER)
    with pytest.raises(FileExistsError):
        store.move(REL, "outputs/batch/new.mp4")
    assert (tmp_path / "outputs/batch/new.mp4").read_bytes() == OTHER and (tmp_path / REL).read_bytes() == VIDEO


def _fat_fchmod(real: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """``fchmod`` as Linux's vfat and exfat answer it (no ``quiet`` mount option): a file there shows the r and x
    bits its mount's fmask gives (``rwxr-xr-x`` under 022, ``rw-------`` under 077), which cannot change; only the
    w bits can, all or none (the DOS read-only attribute). Any other mode: EPERM."""

    def fchmod(fd: int, mode: int) -> None:
        now = stat.S_IMODE(os.fstat(fd).st_mode)
        if (mode & 0o555) != (now & 0o555) or (mode & 0o222) not in (0, now & 0o222):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        real(fd, mode)

    return fchmod


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_local_a_video_is_stored_read_only_where_the_file_system_keeps_its_own_r_and_x_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool,
) -> None:
    """A state directory on a vfat or exFAT drive (Linux) mounted with fmask=077: its files show rw------- and
    refuse a chmod to 0444 (EPERM). The commit's chmod raised, the temporary file was removed: every paid video of the run lost at its
    download. Now the write bits alone are dropped there (the DOS read-only attribute)."""
    monkeypatch.setattr(os, "fchmod", _fat_fchmod(os.fchmod))
    if not links:
        monkeypatch.setattr(os, "link", lambda *args, **kwargs: (_ for _ in ()).throw(PermissionError(errno.EPERM, "")))
    store = LocalStore(tmp_path)
    (tmp_path / "outputs" / "batch").mkdir(parents=True)
    old = os.umask(0o077)
    try:  # a new file is rw-------, as vfat under fmask=077 shows every file
        stored = put(store, REL, VIDEO)
    finally:
        os.umask(old)
    assert stored.rel == REL and (tmp_path / REL).read_bytes() == VIDEO
    assert stat.S_IMODE(os.stat(tmp_path / REL).st_mode) & 0o222 == 0
    assert store.link(REL, "outputs/b/fox.mp4") == ("linked" if links else "copied")
    assert store.verify("outputs/b/fox.mp4", sha(VIDEO), len(VIDEO))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_local_a_process_killed_before_its_commit_leaves_no_file_at_the_name(tmp_path: Path) -> None:
    """A real crash (SIGKILL) mid-write: nothing at the name; only a hidden temporary file may remain."""
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from runner.storage.local import LocalStore, file_sha256
        sink = LocalStore(Path({str(tmp_path)!r})).open_sink({REL!r})
        sink.write(b"x" * 100_000)
        print("written", flush=True)
        sys.stdin.readline()
        sink.commit()
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    store = LocalStore(tmp_path)
    assert not store.exists(REL)
    left = sorted(p.name for p in (tmp_path / "outputs" / "batch").iterdir())
    assert len(left) == 1 and left[0].startswith(".fox.mp4.part-")
    for name in left:  # the fixture-less test tidies up itself
        (tmp_path / "outputs" / "batch" / name).unlink()
    assert put(store, REL, VIDEO).rel == REL  # the next run stores it as usual


@given(st.lists(st.sampled_from(["outputs", "a", ".", "..", "", "b.c", ".hidden", "x.", "v.mp4", "é.tar.gz", "/"]),
                min_size=1, max_size=5))
def test_beside_name_reads_a_name_as_pathlib_does(pieces: list[str]) -> None:
    """``beside_name`` splits a plain name by hand (the hot path of every download): whatever the name, it is
    the name pathlib's stem and suffix give, or pathlib's own refusal."""
    rel = "/".join(pieces)
    try:
        path = PurePosixPath(rel)
        expected: str | type[ValueError] = str(path.with_name(f"{path.stem}.0123456789ab{path.suffix}"))
    except ValueError:
        expected = ValueError
    try:
        got: str | type[ValueError] = beside_name(rel, "0123456789abcdef")
    except ValueError:
        got = ValueError
    assert got == expected, rel


@pytest.mark.parametrize("rel", [
    "outputs/batch/fox.mp4", "outputs//batch/./fox.mp4", "./fox.mp4", "fox.mp4", "a/b/c/d.mp4", "outputs/batch/",
    "", ".", "./", "/etc/passwd", "//x", "../x", "a/../b", "a/..", "a\\b", "a\x00b", "é/ü.mp4", "...", "a/.../b",
])
def test_rel_parts_reads_a_name_as_pathlib_does(rel: str) -> None:
    """The store splits a name by hand (no path objects, the hot path): the parts ``PurePosixPath`` reads, and a
    refusal for whatever it reads as empty, absolute or climbing out (``..``), or holding a backslash or NUL.
    ``check_rel`` gives the same, as a path."""
    path = PurePosixPath(rel)
    unsafe = not rel or not path.parts or path.is_absolute() or ".." in path.parts or "\\" in rel or "\x00" in rel
    expected = None if unsafe else path.parts
    try:
        got: tuple[str, ...] | None = rel_parts(rel)
    except UnsafeDestination:
        got = None
    assert got == expected
    try:
        as_path: tuple[str, ...] | None = check_rel(rel).parts
    except UnsafeDestination:
        as_path = None
    assert as_path == expected


# ----------------------------------------------------------------------------- probe (before a job is paid for)
def test_probe_leaves_nothing_and_a_video_can_then_be_stored(store: OutputStore) -> None:
    store.probe(REL)
    assert not store.exists(REL)
    put(store, REL, VIDEO)
    store.probe(REL)  # an existing video at the name: another one would go beside it, the folder is writable
    assert read(store, REL) == VIDEO


@pytest.mark.parametrize("rel", ESCAPES)
def test_probe_refuses_a_name_outside_the_store(store: OutputStore, rel: str) -> None:
    with pytest.raises(UnsafeDestination):
        store.probe(rel)


def test_room_answers_for_a_name_whose_folders_are_not_made_yet(store: OutputStore) -> None:
    """Asked before each submit: counts of bytes (or None: the store cannot tell), never an error, and nothing
    written."""
    room = store.room("outputs/not/made/yet/fox.mp4", "ledger.db")
    assert room is None or (room.free >= 0 and (room.apart is None or room.apart >= 0))
    assert not store.exists("outputs/not/made/yet/fox.mp4")


def test_local_room_sees_a_full_disk_that_an_empty_file_still_fits(tmp_path: Path,
                                                                         small_disk: Callable[..., Path]) -> None:
    """The probe creates an empty file, which a full disk still takes: only the free bytes tell."""
    state = tmp_path / "state"
    store = LocalStore(state)
    disk = small_disk(state / "outputs", size="4m")
    store.probe(REL)
    room = store.room(REL, "ledger.db")
    assert room is not None and 3 << 20 < room.free <= 4 << 20
    filler = fill_disk(disk)
    store.probe(REL)  # passes: an empty file needs no blocks
    assert (full := store.room(REL, "ledger.db")) is not None and full.free == 0
    filler.unlink()
    assert (room := store.room(REL, "ledger.db")) is not None and room.free > 3 << 20


def test_local_room_tells_outputs_mounted_apart_from_the_ledger_s_disk(tmp_path: Path,
                                                                       small_disk: Callable[..., Path]) -> None:
    """The room check counts the ledger's reserve on the outputs' disk only when it is the ledger's too, and looks
    at the ledger's own disk when it is another."""
    state = tmp_path / "state"
    store = LocalStore(state)
    store.probe(REL)
    for rel in (REL, "outputs/not/made/yet.mp4"):
        room = store.room(rel, "ledger.db")
        assert room is not None and room.apart is None
    small_disk(state / "outputs", size="4m")
    room = store.room(REL, "ledger.db")
    assert room is not None and room.free <= 4 << 20 and room.apart is not None and room.apart > 4 << 20
    room = store.room(REL, "outputs/other/b.mp4")
    assert room is not None and room.apart is None


def test_remove_partials_leaves_every_stored_video(store: OutputStore) -> None:
    put(store, REL, VIDEO)
    assert store.remove_partials("outputs") == (0, 0)
    assert read(store, REL) == VIDEO


def test_local_remove_partials_removes_only_what_a_killed_writer_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    put(store, REL, VIDEO)
    folder = tmp_path / "state" / "outputs" / "batch"
    left = folder / ".owl.mp4.part-0123456789ab"  # a writer killed mid-way: its file, nobody holding it
    left.write_bytes(b"half a video")
    live = store.open_sink("outputs/batch/eel.mp4")  # a live writer (another process, say): its file is held
    live.write(b"on its way")
    lookalikes = [folder / ".notes.part-x", folder / "fox.mp4.part-0123456789ab", folder / ".fox.mp4.part-0123"]
    for path in lookalikes:
        path.write_bytes(b"not a temporary file of the store")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".a.mp4.part-0123456789ab").write_bytes(b"outside")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    assert store.remove_partials("outputs") == (1, len(b"half a video"))
    assert not left.exists() and all(path.exists() for path in lookalikes)
    assert (outside / ".a.mp4.part-0123456789ab").exists()  # no link followed
    live.commit()  # the live writer was left alone
    assert read(store, "outputs/batch/eel.mp4") == b"on its way" and read(store, REL) == VIDEO


def test_local_remove_partials_follows_no_link_at_the_top(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / ".a.mp4.part-0123456789ab").write_bytes(b"outside")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "outputs").symlink_to(outside, target_is_directory=True)
    assert LocalStore(tmp_path / "state").remove_partials("outputs") == (0, 0)
    assert (outside / ".a.mp4.part-0123456789ab").exists()


def test_local_probe_refuses_a_linked_folder_leading_outside_and_writes_nothing_there(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "outputs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeDestination, match="leads outside the state directory"):
        store.probe(REL)
    assert list(outside.iterdir()) == []


def test_local_probe_finds_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state")
    (tmp_path / "state" / "outputs").mkdir(parents=True)
    (tmp_path / "state" / "outputs" / "batch").write_text("not a folder")
    with pytest.raises(NotADirectoryError):
        store.probe(REL)


def test_local_probe_finds_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root writes in a 0o555 folder, so the refusal is the file system's own (EROFS, as a read-only mount)."""
    store = LocalStore(tmp_path / "state")
    real_open = os.open

    def read_only(path: str | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        if flags & os.O_CREAT:
            raise OSError(30, os.strerror(30), os.fspath(path))  # EROFS
        return real_open(path, flags, *args, **kw)

    store.prepare(REL)  # the folders exist, as on a disk mounted read-only after they were made
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError, match="Read-only file system"):
        store.probe(REL)


def test_obstacle_says_what_would_stop_a_folder_taking_a_file_and_creates_nothing(tmp_path: Path) -> None:
    """`plan`'s look (runner.storage.inside.obstacle): read only, the same refusals as the probe's walk."""
    from runner.storage.inside import obstacle

    root = tmp_path / "state"
    assert obstacle(root, "outputs/batch") is None and not root.exists()  # nothing there yet: the run makes it
    (root / "outputs" / "real").mkdir(parents=True)
    (root / "outputs" / "inside").symlink_to(root / "outputs" / "real", target_is_directory=True)
    assert obstacle(root, "outputs/inside") is None  # a link that stays inside is followed
    (root / "outputs" / "file").write_text("x")
    assert obstacle(root, "outputs/file") == f"{root}/outputs/file is not a folder"
    (tmp_path / "elsewhere").mkdir()
    (root / "outputs" / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    said = obstacle(root, "outputs/out/deeper")
    assert said is not None and "leads outside the state directory" in said
    assert not (tmp_path / "elsewhere" / "deeper").exists() and not (root / "outputs" / "batch").exists()
