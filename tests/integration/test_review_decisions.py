"""The review server's decisions against the SQLite ledger's single-writer lock.

Choice (runner/ledger/lock.py): the review process never writes beside a run; a run holds the
ledger's flock for its whole life, so a decision then is queued (runner/ledger/review_queue.py), the
ledger untouched, and saved by the next writer to open it. Decisions from the page
itself are taken one at a time (two at once must not refuse each other as if a run held the lock).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger
from runner.review.server import ReviewServer
from runner.storage.local import LocalStore

HOLD_LOCK = ("import sys; from pathlib import Path; from runner.ledger import open_ledger\n"
             "with open_ledger(Path(sys.argv[1])):\n"
             "    print('holding', flush=True); sys.stdin.read()\n")


def _done_jobs(state: Path, n: int) -> list[str]:
    specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 3},
                           vars={"i": i}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.3) for i in range(n)]
    with open_ledger(state) as ledger:
        ledger.register("m", "d", specs)
        for spec in specs:
            attempt = ledger.mark_submitting(spec.key)
            assert attempt is not None
            assert ledger.mark_running(spec.key, attempt, task_id=f"t-{spec.key[:8]}", http_status=200)
            assert ledger.mark_succeeded(spec.key, video_url="https://v/x", url_expires_at=None, debug={})
            assert ledger.mark_done(spec.key, path=f"outputs/m/{spec.output}", sha256="a" * 64, bytes=1)
    return [spec.key for spec in specs]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ReviewServer, Path, list[str]]]:
    state = tmp_path / "state"
    keys = _done_jobs(state, 8)

    def writer() -> SqliteLedger:
        return open_ledger(state, create=False)

    with open_ledger(state, readonly=True) as reader:
        server = ReviewServer(reader, writer, LocalStore(state), "m", port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server, state, keys
        finally:
            server.shutdown()
            thread.join(timeout=10)


def _decide(server: ReviewServer, key: str, decision: str) -> httpx.Response:
    return httpx.post(server.url + "api/review", json={"key": key, "decision": decision, "reason": "hands"},
                      headers={"X-Review-Token": server.token}, timeout=30)


def _review(state: Path, key: str) -> Any:
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(key)
        assert job is not None
        return job.review, len(ledger.rejections(key))


def test_a_decision_with_no_run_is_saved(served: tuple[ReviewServer, Path, list[str]]) -> None:
    server, state, keys = served
    answer = _decide(server, keys[0], "reject")
    assert answer.status_code == 200 and answer.json()["review"] == "rejected", answer.text
    assert _review(state, keys[0]) == ("rejected", 1)


def test_a_decision_while_a_run_holds_the_ledger_is_queued_and_saved_by_the_next_writer(
        served: tuple[ReviewServer, Path, list[str]]) -> None:
    """It was a 409 ("decide again when it ends"): every decision made during an overnight batch was lost work.
    Now 202, queued (the ledger untouched while the run holds it), saved by the next writable open."""
    server, state, keys = served
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(state)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        answer = _decide(server, keys[1], "reject")
        assert answer.status_code == 202, answer.text
        assert answer.json()["message"] == "reject queued: the run saves it within seconds"
        assert _review(state, keys[1]) == (None, 0)  # nothing written beside the run
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()  # type: ignore[union-attr]
    with open_ledger(state, readonly=True) as ledger:
        assert ledger._conn.scalar("PRAGMA integrity_check") == "ok"
    assert _review(state, keys[1]) == (None, 0)  # a reader applies nothing
    with open_ledger(state, create=False):  # the next writer
        pass
    assert _review(state, keys[1]) == ("rejected", 1)
    assert not (state / "review-queue.jsonl").exists()


def test_decisions_sent_at_once_are_all_saved(served: tuple[ReviewServer, Path, list[str]]) -> None:
    """The page's own decisions never refuse each other as if a run held the ledger."""
    server, state, keys = served
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(len(keys))

    def send(key: str) -> None:
        barrier.wait()
        answers.append(_decide(server, key, "accept"))

    threads = [threading.Thread(target=send, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200] * len(keys), [a.text for a in answers]
    assert all(_review(state, key) == ("accepted", 0) for key in keys)


def test_a_decision_on_a_job_that_is_not_done_is_refused_with_its_state(
    served: tuple[ReviewServer, Path, list[str]]
) -> None:
    """The review sweep: a decision on a regenerated (pending) clip answered 200 with no review and the page blanked
    the verdict; now 409 and a message the page shows. A decision made again on a done job is still a quiet 200."""
    server, state, keys = served
    with open_ledger(state) as ledger:
        assert ledger.reject(keys[0], reason="hands")
        assert ledger.requeue_rejected(keys[0], kept_path="")  # what regenerate does: pending, a fresh sample next
    for decision in ("accept", "reject"):
        answer = _decide(server, keys[0], decision)
        assert answer.status_code == 409 and "pending, not done" in answer.json()["error"], answer.text
    assert _decide(server, keys[1], "accept").status_code == 200
    again = _decide(server, keys[1], "accept")
    assert again.status_code == 200 and again.json()["review"] == "accepted", again.text


def test_a_broken_reason_or_token_gets_an_answer_not_a_dropped_connection(
    served: tuple[ReviewServer, Path, list[str]]
) -> None:
    r"""A reason holding a lone surrogate (what the page's JSON.stringify sends for half of a pasted emoji) raised
    UnicodeEncodeError at the ledger write, and a token header with a byte past ASCII raised TypeError in
    compare_digest: the server dropped the connection and the page said only that the network failed. A rejection
    is saved with U+FFFD in place; a foreign token is a 403 like any wrong one."""
    server, state, keys = served
    body = b'{"key": "%s", "decision": "reject", "reason": "blurry \\ud83d"}' % keys[0].encode()
    answer = httpx.post(server.url + "api/review", content=body, timeout=30,
                        headers={"X-Review-Token": server.token, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    with open_ledger(state, readonly=True) as ledger:
        assert [r.reason for r in ledger.rejections(keys[0])] == ["blurry \ufffd"]
    foreign = httpx.post(server.url + "api/review", json={"key": keys[1], "decision": "reject"}, timeout=30,
                         headers={"X-Review-Token": "t\xe9".encode("latin-1")})
    assert foreign.status_code == 403
    unknown = httpx.post(server.url + "api/review", content=b'{"key": "\\udc00", "decision": "accept"}', timeout=30,
                         headers={"X-Review-Token": server.token, "Content-Type": "application/json"})
    assert unknown.status_code == 404


def test_a_decision_from_a_page_loaded_before_a_regeneration_is_refused(
    served: tuple[ReviewServer, Path, list[str]]
) -> None:
    """The loop hunt: a page left open over `regenerate` and `run` still showed the old sample's card, and its accept or
    reject (sent by key alone) was saved on the new sample, never seen: a rejected one paid for once more on the next
    regenerate, an accepted one exported unwatched. The page sends the sample it shows; another one is a 409 and
    nothing is written; the page loaded again shows the new sample and decides it."""
    server, state, keys = served
    page = httpx.get(server.url, timeout=30).text
    assert f'data-key="{keys[0]}" data-sample="0"' in page and "sample: Number(card.dataset.sample)" in page
    with open_ledger(state) as ledger:  # rejected, regenerated and run again meanwhile: sample 1 is done
        assert ledger.reject(keys[0], reason="hands")
        assert ledger.requeue_rejected(keys[0], kept_path="")
        attempt = ledger.mark_submitting(keys[0])
        assert attempt is not None
        assert ledger.mark_running(keys[0], attempt, task_id="t-second", http_status=200)
        assert ledger.mark_succeeded(keys[0], video_url="https://v/y", url_expires_at=None, debug={})
        assert ledger.mark_done(keys[0], path="outputs/m/c0.mp4", sha256="b" * 64, bytes=1)
    for decision in ("accept", "reject"):
        stale = httpx.post(server.url + "api/review", json={"key": keys[0], "decision": decision, "sample": 0},
                           headers={"X-Review-Token": server.token}, timeout=30)
        assert stale.status_code == 409 and "reload" in stale.json()["error"], stale.text
    assert _review(state, keys[0]) == (None, 1)  # only the first sample's rejection
    assert f'data-key="{keys[0]}" data-sample="1"' in httpx.get(server.url, timeout=30).text
    fresh = httpx.post(server.url + "api/review", json={"key": keys[0], "decision": "accept", "sample": 1},
                       headers={"X-Review-Token": server.token}, timeout=30)
    assert fresh.status_code == 200 and fresh.json()["review"] == "accepted", fresh.text


def _queue_line(state: Path, key: str, decision: str, sample: int = 0, manifest: str = "m") -> None:
    from runner.ledger.review_queue import QueuedDecision, queue_decision

    queue_decision(state, QueuedDecision(key, manifest, decision, "hands", sample, 1.0))


def test_the_queue_skips_a_torn_line_and_keeps_the_last_decision_of_each_job(tmp_path: Path) -> None:
    """A line a full disk cut short is skipped, never swallowing the next; a job decided twice while the run held the
    ledger ends as decided last (one rejection row, withdrawn), whatever the order of other jobs."""
    state = tmp_path / "state"
    keys = _done_jobs(state, 3)
    (state / "outputs" / "m").mkdir(parents=True)
    for i in range(3):  # a queued accept is saved only with its video where the ledger says (else `runner accept`)
        (state / "outputs" / "m" / f"c{i}.mp4").write_bytes(b"v")
    (state / "review-queue.jsonl").write_bytes(b'{"key": "' + keys[2].encode() + b'", "manifest": "m", "deci')
    _queue_line(state, keys[0], "reject")
    _queue_line(state, keys[1], "reject")
    _queue_line(state, keys[0], "accept")
    _queue_line(state, keys[1], "reject", manifest="other")  # another manifest's job of that key: none, dropped
    with open_ledger(state, create=False):
        pass
    assert [_review(state, key) for key in keys] == [("accepted", 0), ("rejected", 1), (None, 0)]


def test_a_new_ledger_sets_the_former_ledgers_queue_aside(tmp_path: Path) -> None:
    """Keys come from the requests: a decision queued on the former ledger's clip would land on the new ledger's clip
    of the same key, never seen. A new ledger (--new-ledger over an emptied one) keeps the queue aside instead."""
    state = tmp_path / "state"
    keys = _done_jobs(state, 1)
    _queue_line(state, keys[0], "reject")
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (state / name).unlink(missing_ok=True)
    keys_again = _done_jobs_new(state)
    assert keys_again == keys
    assert _review(state, keys[0]) == (None, 0)
    assert not (state / "review-queue.jsonl").exists()
    assert [p.name.startswith("review-queue.jsonl.stale-") for p in state.glob("review-queue.jsonl.*")] == [True]


def _done_jobs_new(state: Path) -> list[str]:
    with open_ledger(state, new_ledger=True):
        pass
    return _done_jobs(state, 1)


def test_a_queue_that_cannot_be_read_is_kept_not_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error reading the journal read as 'no decisions', and the applied-and-done step then removed it: every
    queued decision lost. Now the journal stays for the next writer, which saves it."""
    import errno

    state = tmp_path / "state"
    keys = _done_jobs(state, 1)
    _queue_line(state, keys[0], "reject")
    real = Path.read_bytes

    def failing(path: Path) -> bytes:
        if path.name == "review-queue.jsonl":
            raise OSError(errno.EIO, "Input/output error")
        return real(path)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", failing)
        with open_ledger(state, create=False):
            pass
    assert (state / "review-queue.jsonl").exists() and _review(state, keys[0]) == (None, 0)
    with open_ledger(state, create=False):
        pass
    assert _review(state, keys[0]) == ("rejected", 1)


def test_a_run_does_not_wait_for_a_decision_being_queued(tmp_path: Path) -> None:
    """A run saves the queue between its POSTs, on the loop of its ledger writes: a review process holding the
    journal's flock (stopped mid-append) must not stall it. It leaves the queue for its next look, the lock kept."""
    import fcntl
    import os

    from runner.ledger.review_queue import QUEUE_LOCK, apply_queued

    state = tmp_path / "state"
    keys = _done_jobs(state, 1)
    _queue_line(state, keys[0], "reject")
    fd = os.open(state / QUEUE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    with open_ledger(state, create=False) as ledger:  # its open applies the queue (the lock is free yet)
        assert _review(state, keys[0]) == ("rejected", 1)
        _queue_line(state, keys[0], "accept")
        (state / "outputs" / "m").mkdir(parents=True)
        (state / "outputs" / "m" / "c0.mp4").write_bytes(b"v")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a decision being appended
            assert apply_queued(ledger, told=True, wait=False) == 0  # at once, nothing applied, nothing removed
            assert (state / "review-queue.jsonl").exists()
        finally:
            os.close(fd)
        assert apply_queued(ledger, told=True, wait=False) == 1  # the next look
    assert _review(state, keys[0]) == ("accepted", 1)  # the rejection withdrawn, its row kept
    assert not (state / "review-queue.jsonl").exists()


def test_a_writer_stopped_while_it_queues_holds_no_run_s_ending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A run's ending (and a ledger's writable open) waited for the journal's flock as long as another process held
    it: a `runner reject` stopped with Ctrl-Z mid-append held the run from ending, and the ledger's lock with it, for
    as long as it stayed stopped. It now waits a bounded time, says why, and leaves the decisions queued."""
    import fcntl
    import os

    from runner.ledger import review_queue

    monkeypatch.setattr(review_queue, "QUEUE_LOCK_WAIT_S", 0.3)
    state = tmp_path / "state"
    keys = _done_jobs(state, 1)
    with open_ledger(state, create=False) as ledger:
        _queue_line(state, keys[0], "reject")
        fd = os.open(state / review_queue.QUEUE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the stopped writer's
            box: list[int] = []
            ending = threading.Thread(target=lambda: box.append(review_queue.apply_queued(ledger, told=True)),
                                      daemon=True)
            ending.start()
            ending.join(10)
            assert not ending.is_alive(), "the run's ending still waits for a stopped writer's lock"
            assert box == [0] and (state / review_queue.QUEUE_NAME).exists()
            assert "stay queued" in caplog.text
        finally:
            os.close(fd)
        assert review_queue.apply_queued(ledger, told=True) == 1  # the lock free: applied
    assert _review(state, keys[0]) == ("rejected", 1)


def test_a_copy_refuses_while_a_stopped_writer_holds_the_queue_and_loses_no_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner ledger copy` found the review queue's lock held past its wait (a `runner reject` stopped with Ctrl-Z
    mid-append): it logged "they stay queued" and copied past it, and the source, marked moved, never applies them:
    the rejection lost in the copy. It now refuses (exit 75, as for a ledger a runner holds), the queue and the source
    as they were; once the lock is free the copy carries the decision."""
    import fcntl
    import os

    from runner.errors import LedgerLocked
    from runner.ledger import review_queue
    from runner.service.copying import copy_ledger

    monkeypatch.setattr(review_queue, "QUEUE_LOCK_WAIT_S", 0.3)
    monkeypatch.chdir(tmp_path)
    state, moved = tmp_path / "state", tmp_path / "moved"
    keys = _done_jobs(state, 1)
    _queue_line(state, keys[0], "reject")
    fd = os.open(state / review_queue.QUEUE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the stopped writer's
        with pytest.raises(LedgerLocked) as refused:
            copy_ledger(str(state), str(moved))
    finally:
        os.close(fd)
    assert f"{state / review_queue.QUEUE_LOCK}" in str(refused.value) and "copy again" in str(refused.value)
    assert not (moved / "ledger.db").exists() and (state / review_queue.QUEUE_NAME).exists()
    assert _review(state, keys[0]) == (None, 0)
    copy_ledger(str(state), str(moved))
    assert _review(moved, keys[0]) == ("rejected", 1)
