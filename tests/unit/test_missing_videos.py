"""The run's line for done videos gone from disk: its level and words by what can still bring them back, and the
stamps that spare a no-op resume the listing (:mod:`runner.service.missing_videos`, :mod:`runner.reporting.missing`)."""

from __future__ import annotations

from pathlib import Path

from runner.jobs import JobSpec
from runner.ledger import MemoryLedger
from runner.reporting.missing import SEEN_META, missing_videos
from runner.service.missing_videos import say_missing
from runner.service.outcome import Notice

NOW = 1_000_000.0


def _spec(name: str) -> JobSpec:
    return JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": name, "duration": 5}, vars={}, repeat=1,
                         output=f"{name}.mp4", estimated_usd=0.56)


def _done(ledger: MemoryLedger, name: str, expires: float) -> None:
    """``name``'s job stored at outputs/m/NAME.mp4, its result URL valid until ``expires``."""
    key = _spec(name).key
    attempt = ledger.mark_submitting(key)
    assert attempt is not None and ledger.mark_running(key, attempt, task_id=f"t-{name}", http_status=200)
    assert ledger.mark_succeeded(key, video_url="https://v/x", url_expires_at=expires, debug={})
    assert ledger.mark_done(key, path=f"outputs/m/{name}.mp4", sha256="a" * 64, bytes=1)
    folder = ledger.state_dir / "outputs" / "m"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mp4").write_bytes(b"v")


def _ledger(tmp_path: Path, *names: str) -> MemoryLedger:
    ledger = MemoryLedger(state_dir=tmp_path)
    ledger.register("m", "d1", [_spec(name) for name in names])
    return ledger


def _said(ledger: MemoryLedger) -> list[Notice]:
    notices: list[Notice] = []
    say_missing(ledger, "m", notices.append, manifest_path=Path("m.yaml"), state_dir=Path("S"), ledger_url=None,
                environ={}, simulated=False, now=NOW)
    return notices


def test_a_video_whose_urls_expired_is_told_without_a_warning_and_one_still_served_with_its_deadline(
        tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, "old", "new")
    _done(ledger, "old", NOW - 10)
    assert _said(ledger) == []  # all there: nothing said
    (tmp_path / "outputs" / "m" / "old.mp4").unlink()
    [expired] = _said(ledger)
    assert expired.level == "info" and "1 done video(s) of m are not at their recorded path (outputs/m/old.mp4)" \
        in expired.text, expired  # a pipeline that moves its videos away: not a warning a quiet cron mails each night
    assert "their recorded result URLs have expired: `runner verify m.yaml --state S` asks the provider" in expired.text
    _done(ledger, "new", NOW + 600)
    (tmp_path / "outputs" / "m" / "new.mp4").unlink()
    [served] = _said(ledger)
    assert served.level == "warning" and "2 done video(s)" in served.text and "1 of them until " in served.text, served
    assert served.fields is not None and served.fields["count"] == 2 and served.fields["restorable"] == 1


def test_a_check_that_finds_them_all_is_remembered_until_a_folder_or_the_done_count_changes(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, "a", "b")
    _done(ledger, "a", NOW + 600)
    assert missing_videos(ledger, "m", now=NOW).count == 0 and ledger.meta(SEEN_META) is None  # status: records nothing
    assert missing_videos(ledger, "m", now=NOW, remember=True).count == 0 and ledger.meta(SEEN_META)
    _done(ledger, "b", NOW + 600)  # a new done job: the count differs, checked in full (and found)
    (tmp_path / "outputs" / "m" / "b.mp4").unlink()
    assert missing_videos(ledger, "m", now=NOW, remember=True).count == 1
