"""runner.review.putback: a copy is put back only when it is the recorded video, never another job's file."""

from __future__ import annotations

import hashlib

from runner.jobs import JobSpec
from runner.ledger import JobRecord, MemoryLedger
from runner.review.putback import put_back
from runner.review.regenerate import requeue
from runner.storage.memory import MemoryStore

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 40


def _record_done(ledger: MemoryLedger, manifest: str, prompt: str, output: str, data: bytes) -> str:
    """A job of ``manifest`` recorded done at ``outputs/<manifest>/<output>`` with ``data``'s sha256 and size."""
    spec = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": prompt, "duration": 5}, vars={}, repeat=1,
                         output=output, estimated_usd=0.5)
    ledger.register(manifest, "d", [spec])
    attempt = ledger.mark_submitting(spec.key)
    assert attempt is not None
    ledger.mark_running(spec.key, attempt, task_id=f"t-{prompt}", http_status=200)
    ledger.mark_succeeded(spec.key, video_url=f"https://v/{prompt}", url_expires_at=None, debug={})
    ledger.mark_done(spec.key, path=f"outputs/{manifest}/{output}", sha256=hashlib.sha256(data).hexdigest(),
                     bytes=len(data))
    return spec.key


def _one(output: str = "c.mp4") -> tuple[MemoryLedger, MemoryStore, str]:
    ledger, store = MemoryLedger(), MemoryStore()
    return ledger, store, _record_done(ledger, "m", "p", output, VIDEO)


def _put(store: MemoryStore, rel: str, data: bytes) -> None:
    with store.open_sink(rel) as sink:
        sink.write(data)
        sink.commit()


def _job(ledger: MemoryLedger, key: str) -> JobRecord:
    job = ledger.get(key)
    assert job is not None
    return job


def test_a_beside_copy_replaces_a_damaged_file_and_a_wrong_one_is_left() -> None:
    ledger, store, key = _one()
    beside = f"outputs/m/c.{key[:12]}.mp4"
    _put(store, "outputs/m/c.mp4", VIDEO[:-1] + b"X")  # damaged
    _put(store, beside, VIDEO[:-1] + b"Y")  # not the recorded video either
    assert put_back(ledger, store, _job(ledger, key)) is None
    assert store.files["outputs/m/c.mp4"] == VIDEO[:-1] + b"X"
    store.remove(beside)
    _put(store, beside, VIDEO)
    assert put_back(ledger, store, _job(ledger, key)) == beside
    assert store.files["outputs/m/c.mp4"] == VIDEO and not store.exists(beside)
    assert put_back(ledger, store, _job(ledger, key)) is None  # in place: nothing to do


def test_a_rejected_copy_of_another_sample_is_not_taken() -> None:
    ledger, store, key = _one()
    _put(store, f"outputs/m/_rejected/{key}.1.mp4", VIDEO)  # sample 1's name; the job is at sample 0
    assert put_back(ledger, store, _job(ledger, key)) is None
    _put(store, f"outputs/m/_rejected/{key}.0.mp4", VIDEO[:-1] + b"Z")
    _put(store, f"outputs/m/_rejected/{key}.0-2.mp4", VIDEO)
    assert put_back(ledger, store, _job(ledger, key)) == f"outputs/m/_rejected/{key}.0-2.mp4"
    assert store.files["outputs/m/c.mp4"] == VIDEO


def test_a_beside_name_another_job_records_is_never_taken() -> None:
    ledger, store, key = _one()
    holder = f"c.{key[:12]}.mp4"  # another job whose own output name is this job's beside name, same bytes
    _record_done(ledger, "m", "q", holder, VIDEO)
    _put(store, f"outputs/m/{holder}", VIDEO)
    assert put_back(ledger, store, _job(ledger, key)) is None
    assert store.files[f"outputs/m/{holder}"] == VIDEO and not store.exists("outputs/m/c.mp4")


OTHER = b"\x00\x00\x00\x18ftypmp42" + b"o" * 40


def test_another_jobs_video_at_the_recorded_path_is_never_removed_to_put_one_back() -> None:
    """The crash-window review: a regenerate stopped after its move, then an edit gave the job's name to a new job
    whose video was stored there; `accept` removed that video (its only copy) to put the rejected one back."""
    ledger, store, key = _one()
    _record_done(ledger, "m2", "fox", "f.mp4", OTHER)
    _put(store, "outputs/m/c.mp4", OTHER)  # the new job's video, at this job's recorded path
    _put(store, f"outputs/m/_rejected/{key}.0.mp4", VIDEO)
    assert put_back(ledger, store, _job(ledger, key)) is None
    assert store.files["outputs/m/c.mp4"] == OTHER and store.files[f"outputs/m/_rejected/{key}.0.mp4"] == VIDEO


def test_regenerate_moves_aside_only_the_jobs_own_video() -> None:
    """The crash-window review: with another job's video at the recorded path, regenerate filed it under this job's
    key in _rejected/, where no command looks for it; with damaged bytes there and the good copy beside (a verify
    stopped mid-repair), it kept the damaged bytes and left the paid video unrecorded."""
    ledger, store, key = _one()
    _record_done(ledger, "m2", "fox", "f.mp4", OTHER)
    _put(store, "outputs/m/c.mp4", OTHER)
    assert ledger.reject(key, reason="hands")
    assert requeue(ledger, store, "m", [_job(ledger, key)]) == [(key, "")]  # nothing of its own to keep
    assert store.files["outputs/m/c.mp4"] == OTHER and not any("_rejected" in name for name in store.files)

    ledger, store, key = _one()
    _put(store, "outputs/m/c.mp4", VIDEO[:-1] + b"X")  # damaged
    _put(store, f"outputs/m/c.{key[:12]}.mp4", VIDEO)  # the good copy a stopped verify left beside
    assert ledger.reject(key, reason="hands")
    assert requeue(ledger, store, "m", [_job(ledger, key)]) == [(key, f"outputs/m/_rejected/{key}.0.mp4")]
    assert store.files[f"outputs/m/_rejected/{key}.0.mp4"] == VIDEO
    assert sorted(store.files) == [f"outputs/m/_rejected/{key}.0.mp4"]
