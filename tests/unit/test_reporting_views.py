"""Pure pieces of the operator's views: text formatting, the HF export's columns, gallery cards, timings."""

from __future__ import annotations

from typing import Any

from runner.jobs import JobState
from runner.ledger import JobRecord
from runner.reporting.dataset import hf_columns
from runner.reporting.gallery_page import card as _card
from runner.reporting.inspect import timings
from runner.reporting.text import duration, seconds, short, table


def record(**changes: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "key": "53a6753e4fbd5c6b9cfe", "model": "kling-v3.0-pro-t2v",
        "request": {"prompt": "A timelapse of Tokyo", "duration": 5, "aspect_ratio": "9:16", "cfg_scale": 0.5,
                    "sound": False},
        "vars": {"city": "Tokyo", "time": "dawn"}, "repeat": 1, "state": JobState.DONE, "task_id": "t-1",
        "attempts": 1, "spent_usd": 0.56, "estimated_usd": 0.56, "error": None, "reason": None,
        "video_url": None, "url_expires_at": None, "path": "outputs/demo/Tokyo/dawn-1.mp4", "sha256": "ab" * 32,
        "bytes": 5587, "output": "Tokyo/dawn-1.mp4", "submitted_at": 1.0, "updated_at": 2.0,
    }
    fields.update(changes)
    return JobRecord(**fields)


def test_durations_read_like_a_person_would_say_them() -> None:
    """Spans print as 42s, 3m05s, 2h07m, 3d04h; measured spans keep their decimals."""
    assert [duration(v) for v in (42, 185, 7620, 273600, None)] == ["42s", "3m05s", "2h07m", "3d04h", "?"]
    assert [seconds(v) for v in (0.04, 3.14, 42)] == ["0.04s", "3.1s", "42s"]
    assert short("a  long\nprompt text", 8) == "a long …"


def test_table_aligns_columns_and_right_aligns_numbers() -> None:
    """Columns line up under their header; numeric columns are right-aligned."""
    lines = table(["state", "jobs"], [["done", 7], ["in_doubt", 12]], right=(1,))
    assert lines == ["state     jobs", "done         7", "in_doubt    12"]


def test_hf_columns_share_a_request_field_with_the_variable_that_set_it() -> None:
    """A variable equal to the request field it set shares its column; one that differs gets var_."""
    jobs = [
        record(vars={"city": "Lima", "cfg_scale": 0.3}, request={"prompt": "p", "cfg_scale": 0.3}),
        record(vars={"city": "Oslo", "prompt": "Oslo", "key": "x"}, request={"prompt": "A view of Oslo"}),
    ]
    columns = hf_columns(jobs)
    assert columns.variables == {"city": "city", "prompt": "var_prompt", "key": "var_key"}
    assert columns.request == ("prompt", "cfg_scale")
    names = columns.names
    assert names[0] == "file_name" and len(names) == len(set(names))


def test_timings_turn_debug_info_into_spans() -> None:
    """The provider's debug_info times (numeric strings or ints) give queue and generation seconds."""
    t = timings({"submit_time_ms": "1718000000000", "execute_time_ms": 1718000003000, "complete_time_ms": ""})
    assert t["queue_seconds"] == 3.0
    assert t["complete_time_ms"] is None and t["generation_seconds"] is None


def test_gallery_card_escapes_text_and_shows_why_a_job_failed() -> None:
    """Prompts cannot inject HTML; a failed job shows its reason instead of a video."""
    failed = record(state=JobState.FAILED, request={"prompt": "<script>alert(1)</script>", "aspect_ratio": "9:16"},
                    error="upstream generation failed: content policy", path=None)
    html = _card(failed, {"time": "dawn"}, None, show_repeat=False)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "upstream generation failed: content policy" in html
    assert "<video" not in html and 'class="placeholder"' in html
    assert "aspect-ratio: 9 / 16" in html


def test_gallery_card_of_a_done_job_plays_its_video() -> None:
    """A done job's card holds a <video> with the relative link and a caption of its variables."""
    html = _card(record(), {"time": "dawn"}, "videos/Tokyo/dawn-1.mp4", show_repeat=True)
    assert '<video src="videos/Tokyo/dawn-1.mp4"' in html
    assert "time: dawn" in html and "repeat 1" in html and "A timelapse of Tokyo" in html


def test_in_doubt_card_says_how_to_decide() -> None:
    """An in-doubt job explains that it may have been billed and names the command that decides."""
    html = _card(record(state=JobState.IN_DOUBT, path=None), {}, None, show_repeat=False)
    assert "in doubt" in html and "runner retry --in-doubt" in html


def test_hf_columns_keep_the_loaded_file_columns_names_free() -> None:
    """datasets loads file_name as `video`: a variable named video gets var_video; a variable that always
    equals the model column shares it."""
    columns = hf_columns([record(vars={"video": "clip", "model": "kling-v3.0-pro-t2v"})])
    assert columns.variables == {"video": "var_video"}


def test_status_says_where_an_orphan_s_video_is_kept(tmp_path: Any) -> None:
    """A paid job an edit dropped: a video stored before the edit stays where it is (the next run moves it only
    to make room); one still to download goes to the orphans folder. Before, status said every orphan was
    "stored under" that folder, where the operator found nothing."""
    from runner.jobs import JobSpec
    from runner.ledger.memory import MemoryLedger
    from runner.reporting.inspect import status_lines, status_summary

    ledger = MemoryLedger(state_dir=tmp_path)
    kept, dropped = (JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                                   vars={"i": i}, repeat=1, output=f"clip-{i}.mp4", estimated_usd=0.56)
                     for i in range(2))
    ledger.register("m", "d1", [kept, dropped])
    attempt = ledger.mark_submitting(dropped.key)
    assert attempt is not None and ledger.mark_running(dropped.key, attempt, task_id="t", http_status=200)
    ledger.register("m", "d2", [kept])
    text = "\n".join(status_lines(status_summary(ledger, "m", now=0.0)))
    assert "orphans (paid, no longer listed)" in text, text
    assert "a video stored before the edit stays where it is" in text and "outputs/m/_orphans/" in text, text


def test_hf_columns_keep_the_review_column_for_the_review() -> None:
    """Each hf row's `review` is the clip's review (accepted, unreviewed, rejected): a variable named review gets
    var_review, as one named like any fixed column."""
    columns = hf_columns([record(vars={"review": "5 stars"})])
    assert columns.variables == {"review": "var_review"} and "review" in columns.names
