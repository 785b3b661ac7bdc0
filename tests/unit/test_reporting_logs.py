"""Cron-friendly plain logs: wall-clock timestamps, repeated lines collapsed, a run header without passwords."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

from runner.reporting import logs
from runner.reporting.repeats import RepeatCollapser
from runner.service.opening import header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _collapser(clock: Clock) -> tuple[RepeatCollapser, io.StringIO]:
    out = io.StringIO()
    inner = logging.StreamHandler(out)
    inner.setFormatter(logs.PlainFormatter())
    return RepeatCollapser(inner, window=60.0, clock=clock), out


def _record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "runner.client", "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": message, "args": None})


def test_identical_warnings_in_a_burst_are_one_line_and_a_count_when_the_window_is_over() -> None:
    """37 copies within a minute: the first is written, then '(repeated 36 times in the last 50 s)' once it is over."""
    clock = Clock()
    handler, out = _collapser(clock)
    for _ in range(37):
        handler.handle(_record("submit to kling is in doubt: read timeout"))
        clock.now += 50 / 36
    assert out.getvalue().splitlines() == ["runner: submit to kling is in doubt: read timeout"]
    clock.now += 60
    handler.handle(_record("something else"))
    assert out.getvalue().splitlines()[1:] == [
        "runner: submit to kling is in doubt: read timeout (repeated 36 times in the last 50 s)",
        "runner: something else",
    ]


def test_the_count_of_a_burst_still_open_is_written_when_the_run_ends() -> None:
    """At the end of the run (flush_repeats, or close) the pending counts are written; a single line has none."""
    clock = Clock()
    handler, out = _collapser(clock)
    handler.handle(_record("once only"))
    handler.handle(_record("twice"))
    clock.now += 3
    handler.handle(_record("twice"))
    handler.close()
    assert out.getvalue().splitlines() == ["runner: once only", "runner: twice",
                                           "runner: twice (repeated once more in the last 3 s)"]


def test_different_texts_and_debug_lines_are_never_collapsed() -> None:
    clock = Clock()
    handler, out = _collapser(clock)
    for index in range(3):
        handler.handle(_record(f"job {index} failed"))
        handler.handle(_record("poll detail", logging.DEBUG))
    assert len(out.getvalue().splitlines()) == 6


def test_plain_lines_carry_an_iso_8601_timestamp_with_the_utc_offset_when_stamps_are_on() -> None:
    record = _record("hello")
    stamped = logs.PlainFormatter(stamps=True).format(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d runner: hello", stamped), stamped
    assert logs.PlainFormatter().format(record) == "runner: hello"


def test_the_progress_lines_follow_the_loggers_choice_of_stamps() -> None:
    """line_prefix (the plain progress lines) is stamped exactly when the configured plain log lines are."""
    root = logging.getLogger("runner")
    saved = (root.handlers[:], root.level, root.propagate)
    try:
        logs.configure_logging(level=logging.INFO, json_lines=False, tty=False, stamps=True)
        assert logs.stamps_on() and logs.line_prefix().endswith(" runner: ") and logs.line_prefix()[0].isdigit()
        logs.configure_logging(level=logging.INFO, json_lines=False, tty=False, stamps=False)
        assert not logs.stamps_on() and logs.line_prefix() == "runner: "
    finally:
        root.handlers[:], root.level, root.propagate = saved


def test_the_run_header_names_a_postgresql_ledger_without_its_password(tmp_path: Path) -> None:
    """The header names the version, command, manifest, ledger URL (no password) and state directory."""
    from runner import __version__

    notice = header("run", Path("m.yaml"), tmp_path, "postgresql://videos:s3cret-pw@db.example:5432/batches")
    assert "s3cret-pw" not in notice.text and "s3cret-pw" not in str(notice.fields)
    assert "postgresql://videos@db.example:5432/batches" in notice.text
    assert notice.text.startswith(f"runner {__version__} run m.yaml") and str(tmp_path) in notice.text
    assert notice.fields is not None and notice.fields["event"] == "start"
    sqlite = header("collect", None, tmp_path, None)
    assert f"ledger {tmp_path / 'ledger.db'}" in sqlite.text


def test_a_providers_control_characters_reach_the_terminal_escaped() -> None:
    """A refusal's reason is the provider's text: an escape sequence in it must not recolour, clear or rewrite the
    operator's terminal (or a cron log read with `less -R`), nor a bidi override reorder the line; each shows as
    its escape. The runner's own line breaks stay."""
    record = _record("job 1 refused by the provider: \x1b[31mRED\x1b[0m \u202edesrever\x07 \x9b2J")
    line = logs.PlainFormatter().format(record)
    assert line == "runner: job 1 refused by the provider: \\x1b[31mRED\\x1b[0m \\u202edesrever\\x07 \\x9b2J"
    assert logs.PlainFormatter().format(_record("two\nlines\tand a tab")) == "runner: two\nlines\\tand a tab"


def test_show_and_ls_print_a_providers_control_characters_escaped(tmp_path: Path) -> None:
    """The log lines escape the provider's words, but `runner show` and `runner ls` printed a failed task's reason
    and a submit's detail as they came: an escape sequence in them cleared or rewrote the operator's screen (or
    set the clipboard: OSC 52). They print each as its escape, as a log line does."""
    from runner.jobs import JobSpec
    from runner.ledger import open_ledger
    from runner.reporting.inspect import detail_lines, job_detail, ls_lines

    hostile = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07moderated \u202egnorw\x9b1A"
    spec = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "a fox", "duration": 5}, vars={"i": 1},
                         repeat=1, output="fox.mp4", estimated_usd=0.56)
    with open_ledger(tmp_path / "state") as ledger:
        ledger.register("m", "digest", [spec])
        attempt = ledger.mark_submitting(spec.key)
        assert attempt is not None
        ledger.mark_refused(spec.key, attempt, http_status=400, reason="ILLEGAL_PROMPT", message=hostile,
                            permanent=False)
        attempt = ledger.mark_submitting(spec.key)
        assert attempt is not None
        ledger.mark_running(spec.key, attempt, task_id="t-1", http_status=200)
        ledger.mark_failed(spec.key, reason=hostile)
        lines = [*detail_lines(job_detail(ledger, spec.key, now=0.0)), *ls_lines(ledger.iter_jobs("m"))]
    text = "\n".join(lines)
    assert "moderated" in text and "\\x1b[2J" in text
    assert not any(not ch.isprintable() and ch != "\n" for ch in text), repr(text)


def test_json_log_lines_escape_the_line_breaks_of_other_readers() -> None:
    """A --log-json line holding U+2028, U+2029 or U+0085 (a prompt or a provider's reason, pasted from a web page)
    wrote them raw: a log shipper or `str.splitlines()` cut the line in two, neither half JSON. Records and the
    reporter's events now write them \\u-escaped, the same JSON value on one line."""
    text = "a fox\u2028at dawn\u2029in snow\u0085end"
    record = _record(f"failed: {text}")
    record.event = {"prompt": text, "n": 1}
    line = logs.JsonFormatter().format(record)
    assert len(line.splitlines()) == 1 and "\u2028" not in line and "\u0085" not in line, repr(line)
    parsed = json.loads(line)
    assert parsed["message"] == f"failed: {text}" and parsed["prompt"] == text
    out = io.StringIO()
    logs.write_json_line(logs.json_record(message=text, fields={"reason": text}), out)
    assert len(out.getvalue().splitlines()) == 1, repr(out.getvalue())
    assert json.loads(out.getvalue())["reason"] == text
