"""The book of this host's ledgers (runner/ledger/book.py) and the check of a new ledger against it
(runner/service/ledger_book.py): its place, its entries (sample, armed, moved, dropped), a corrupt file."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.jobs import JobSpec
from runner.ledger import open_ledger
from runner.ledger.book import SAMPLE_SIZE, BookUnusable, Entry, book_path, drop, entries, note
from runner.service import ledger_book
from runner.service.ledger_book import guard_new_ledger
from runner.service.outcome import Notice

PROVIDER = "https://api.novita.ai"


def _spec(n: int) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"a cat number {n}", "duration": 5}, vars={},
                         repeat=1, output=f"{n}.mp4", estimated_usd=0.5)


def _entry(name: str, location: str = "/srv/state", **changes: object) -> Entry:
    fields: dict[str, object] = {"ledger_id": name, "location": location, "postgres": False, "host": "here",
                                 "provider": PROVIDER, "batches": ("cats",), "sample": ("a", "b"), "armed_at": 10.0,
                                 "last_seen": 10.0}
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


def test_the_book_is_under_xdg_state_home_else_the_home_folder(tmp_path: Path) -> None:
    assert book_path({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/kling-runner/ledgers.db")
    assert book_path({"XDG_STATE_HOME": "rel", "HOME": "/home/u"}) == Path("/home/u/.local/state/kling-runner/ledgers.db")
    assert book_path({}).is_absolute()  # HOME unset (cron, a service): the password database's home


def test_an_entry_is_noted_again_at_its_new_place_keeping_when_it_was_first_armed(tmp_path: Path) -> None:
    book = tmp_path / "xdg" / "kling-runner" / "ledgers.db"
    assert entries(book, PROVIDER) == []  # no book yet: nothing noted, nothing made
    assert not book.exists()
    note(book, _entry("one"))
    assert stat.S_IMODE(book.stat().st_mode) == 0o600 and stat.S_IMODE(book.parent.stat().st_mode) == 0o700
    odd = "/big/st\udce9te"  # a folder name that is not UTF-8: kept as it was
    note(book, _entry("one", odd, batches=("dogs",), armed_at=50.0, last_seen=60.0, sample=("c",)))
    [seen] = entries(book, PROVIDER)
    assert (seen.location, seen.armed_at, seen.last_seen, seen.sample) == (odd, 10.0, 60.0, ("c",))
    assert set(seen.batches) == {"cats", "dogs"}
    note(book, _entry("two", forced=True, last_seen=70.0))
    note(book, _entry("two", last_seen=80.0))  # forced once, forced for good
    assert [(e.ledger_id, e.forced) for e in entries(book, PROVIDER)] == [("two", True), ("one", False)]
    assert entries(book, "http://127.0.0.1:9") == []  # another provider's ledgers are not this one's
    drop(book, ["one"])
    assert [e.ledger_id for e in entries(book, PROVIDER)] == ["two"]


def test_a_corrupt_book_is_named_not_a_traceback(tmp_path: Path) -> None:
    book = tmp_path / "ledgers.db"
    book.write_bytes(b"this is not a database, not at all" * 100)
    for action in (lambda: entries(book, PROVIDER), lambda: note(book, _entry("one"))):
        with pytest.raises(BookUnusable, match=str(book)):
            action()


def _planned(state: Path, jobs: range) -> None:
    with open_ledger(state) as ledger:
        ledger.register("cats", "d1", [_spec(n) for n in jobs])


def test_a_new_ledger_is_refused_for_a_ledger_gone_and_new_ledger_drops_that_entry(tmp_path: Path) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    book = book_path(environ)
    said: list[Notice] = []
    first, second = tmp_path / "first", tmp_path / "second"
    _planned(first, range(300))
    with open_ledger(first) as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
        sample = ledger.find_keys("", limit=SAMPLE_SIZE)
    [entry] = entries(book, PROVIDER)
    assert len(entry.sample) == SAMPLE_SIZE and list(entry.sample) == sorted(sample) and entry.armed_at is not None
    shutil.rmtree(first)  # gone: its sample is all the book knows
    _planned(second, range(290, 310))  # some of its jobs, with ten of another batch
    with open_ledger(second) as ledger:
        with pytest.raises(UsageError, match="is not there anymore"):
            guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
        assert [e.ledger_id for e in entries(book, PROVIDER)] == [entry.ledger_id]  # refused: not noted
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=True, say=said.append, environ=environ)
    assert entry.ledger_id not in {e.ledger_id for e in entries(book, PROVIDER)}  # dropped: it cannot come back
    assert said == []


def test_a_small_batch_of_a_large_ledger_still_there_is_found_by_its_own_sample(tmp_path: Path) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    large = tmp_path / "large"
    numbers = {_spec(n).key: n for n in range(1000)}
    _planned(large, range(1000))
    with open_ledger(large) as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=print, environ=environ)
        outside = sorted(set(numbers) - set(ledger.find_keys("", limit=SAMPLE_SIZE)))  # not in its entry's sample
        assert ledger.mark_submitting(outside[0]) is not None  # sent (its write-ahead: it may have paid)
    sent, unsent = tmp_path / "sent", tmp_path / "unsent"
    _planned(sent, range(numbers[outside[0]], numbers[outside[0]] + 1))
    with open_ledger(sent) as ledger, pytest.raises(UsageError, match=f"runner run --state {large}`"):
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=print, environ=environ)
    _planned(unsent, range(numbers[outside[1]], numbers[outside[1]] + 1))  # planned there, never sent: not paid
    with open_ledger(unsent) as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=print, environ=environ)


def test_a_book_that_cannot_be_written_is_one_warning(tmp_path: Path) -> None:
    (tmp_path / "xdg").mkdir()
    (tmp_path / "xdg" / "kling-runner").write_text("a file where the folder goes")
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    said: list[Notice] = []
    _planned(tmp_path / "state", range(3))
    with open_ledger(tmp_path / "state") as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
    assert len(said) == 1 and said[0].level == "warning" and "ledgers.db" in said[0].text


def test_a_book_that_can_be_read_but_not_written_still_refuses(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    _planned(tmp_path / "one", range(3))
    with open_ledger(tmp_path / "one") as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=print, environ=environ)

    def unwritable(path: Path, *_: object) -> None:
        raise BookUnusable(f"cannot open the book of this host's ledgers {path} (Read-only file system)")

    monkeypatch.setattr(ledger_book, "note", unwritable)
    _planned(tmp_path / "two", range(3))
    said: list[Notice] = []
    with open_ledger(tmp_path / "two") as ledger, pytest.raises(UsageError, match="planned in the ledger at"):
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
    _planned(tmp_path / "three", range(10, 13))  # other jobs: runs, said once that it is not noted
    with open_ledger(tmp_path / "three") as ledger:
        guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
    assert len(said) == 1 and "could not note this ledger there" in said[0].text, said


def test_the_postgres_ledger_name_is_the_one_hostmarks_writes() -> None:
    from runner.ledger.postgres.hostmarks import ID_META

    assert ledger_book._PG_ID_META == ID_META  # (kept as text there: a SQLite run never loads the backend)


def test_a_book_held_by_another_runner_says_so_not_that_it_is_unwritable(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner of this user stopped (Ctrl-Z) while it wrote the book holds it: the others wait the busy timeout and
    go on. The warning said to make the file writable, which it is."""
    import sqlite3

    from runner.ledger import book as book_module

    monkeypatch.setattr(book_module, "_BUSY_MS", 20)  # (5 s in a run)
    environ = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    note(book_path(environ), _entry("another"))
    holder = sqlite3.connect(book_path(environ), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the stopped runner's transaction
    said: list[Notice] = []
    _planned(tmp_path / "state", range(3))
    try:
        with open_ledger(tmp_path / "state") as ledger:
            guard_new_ledger(ledger, "cats", provider=PROVIDER, new_ledger=False, say=said.append, environ=environ)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    [warning] = said
    assert "another runner has held it" in warning.text and "Ctrl-Z" in warning.text, warning.text
    assert "writable" not in warning.text, warning.text
