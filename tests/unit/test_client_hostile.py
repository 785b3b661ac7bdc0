"""Hostile provider data at the adapter boundary: no crash, the status code decides, no key gets through."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from runner import novita_wire
from runner.client import NovitaClient, SubmitOutcome, make_http_client, novita
from runner.client.connection import redact
from runner.client.submit import MESSAGE_MAX, classify_response
from runner.client.untrusted import MalformedBody, load_json, task_id_problem
from runner.errors import EndpointNotFound, RunnerError, TransientError
from runner.novita_wire import TaskResult, TaskStatus
from runner.reporting.inspect import timings

KEY = "sk_live_HOSTILE_4f9a1c7e5b"
BASE = "https://api.example.test"
MODEL = "kling-v3.0-pro-t2v"

DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000  # RecursionError in json.loads
DEEP_ARRAY = b"[" * 5_000 + b"]" * 5_000
HUGE_INT = "9" * 400
TOO_LONG_INT = "9" * 5_000  # past Python's int-to-str limit: ValueError in json.loads


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def no_sleep(seconds: float) -> None:
    return None


def _raw(status: int, body: bytes) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "application/json"},
                          request=httpx.Request("POST", f"{BASE}/v3/async/{MODEL}"))


# -- item 14: the key is scrubbed from every provider string ---------------------------------

def test_a_short_key_is_not_scrubbed_out_of_words_but_is_as_a_whole_token() -> None:
    """Keys under 8 characters are redacted only where they stand alone; long keys everywhere."""
    assert redact("rate limit exceeded", "xce") == "rate limit exceeded"
    assert redact("key=xce, again xce.", "xce") == "key=***, again ***."
    assert redact("prefix-sk_live_HOSTILE_4f9a1c7e5b-suffix", KEY) == "prefix-***-suffix"
    assert redact("nothing here", "") == "nothing here"


def test_an_envelope_whose_reason_quotes_the_key_is_scrubbed_on_submit() -> None:
    """A 400 whose reason and message quote the key gives a result with no key in any field."""
    body = json.dumps({"code": 400, "reason": f"BAD_{KEY}", "message": f"key {KEY}", "metadata": {KEY: KEY}})
    result = classify_response(_raw(400, body.encode()), secret=SecretStr(KEY))
    assert result.outcome is SubmitOutcome.REFUSED
    assert KEY not in repr(result) and "***" in (result.reason or "")


@pytest.mark.anyio
async def test_a_task_result_quoting_the_key_everywhere_reaches_us_without_it() -> None:
    """reason, task_type, debug_info (keys and values) and error envelopes: every string is scrubbed."""
    failed = {
        "task": {"task_id": "t-1", "task_type": f"T {KEY}", "status": "TASK_STATUS_FAILED",
                 "reason": f"moderation failed for Bearer {KEY}", "eta": 0},
        "videos": [],
        "extra": {"debug_info": {"request_info": f"Authorization: Bearer {KEY}", KEY: [KEY, {"k": KEY}]}},
    }
    answers = iter([httpx.Response(200, json=failed),
                    httpx.Response(404, json={"code": 404, "reason": f"NOT_{KEY}", "message": KEY})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    async with make_http_client(transport=httpx.MockTransport(handler)) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, sleep=no_sleep)
        result = await client.task_result("t-1")
        assert KEY not in result.model_dump_json() and KEY not in json.dumps(result.debug_info())
        assert result.task.reason == "moderation failed for Bearer ***"
        with pytest.raises(RunnerError) as info:
            await client.task_result("t-1")
    error: Any = info.value
    assert KEY not in f"{error} {error.reason} {error!r}"


# -- item 17: huge numbers, deep nesting, implausible task ids --------------------------------

@pytest.mark.parametrize("body", [DEEP, DEEP_ARRAY, TOO_LONG_INT.encode(), b"\xff\xfe", b"{"])
def test_load_json_turns_hostile_bodies_into_malformed_not_a_crash(body: bytes) -> None:
    """Deep nesting, over-long integers and bad bytes are MalformedBody (a ValueError)."""
    with pytest.raises(MalformedBody):
        load_json(body)


def test_a_key_given_twice_is_malformed_only_when_its_values_differ() -> None:
    """json.loads alone keeps the last of two values; which one the provider meant cannot be known."""
    with pytest.raises(MalformedBody, match="'task_id' twice"):
        load_json(b'{"task_id": "t-1", "task_id": "t-2"}')
    with pytest.raises(MalformedBody, match="'status' twice"):
        load_json(b'{"task": {"status": "TASK_STATUS_SUCCEED", "status": "TASK_STATUS_FAILED"}}')
    assert load_json(b'{"task_id": "t-1", "task_id": "t-1"}') == {"task_id": "t-1"}
    # a key the runner does not read keeps its last value: a clean answer is not made unreadable by it
    assert load_json(b'{"task_id": "t-1", "extra": {"trace": "a", "trace": "b"}}') == {
        "task_id": "t-1", "extra": {"trace": "b"}}
    result = classify_response(_raw(200, b'{"task_id": "t-1", "extra": {"trace": "a", "trace": "b"}}'))
    assert result.outcome is SubmitOutcome.ACCEPTED and result.task_id == "t-1"


def test_a_submit_answer_naming_two_task_ids_is_in_doubt_not_the_last_one() -> None:
    """A 200 with ``task_id`` twice: a task may exist under either id, so the job is held, never recorded as one."""
    result = classify_response(_raw(200, b'{"task_id": "t-1", "task_id": "t-2"}'))
    assert result.outcome is SubmitOutcome.AMBIGUOUS
    assert result.task_id is None


@pytest.mark.parametrize("body", [DEEP, DEEP_ARRAY, b"[" * 40 + b"]" * 40, TOO_LONG_INT.encode()])
@pytest.mark.parametrize(("status", "outcome", "retryable"), [
    (400, SubmitOutcome.REFUSED, False),
    (404, SubmitOutcome.REFUSED, False),
    (429, SubmitOutcome.REFUSED, True),
    (500, SubmitOutcome.AMBIGUOUS, False),
    (200, SubmitOutcome.AMBIGUOUS, False),
])
def test_the_status_code_decides_whatever_the_body(
    body: bytes, status: int, outcome: SubmitOutcome, retryable: bool
) -> None:
    """A refused 4xx stays refused with an unreadable body; a 2xx or 5xx we cannot read is in doubt."""
    result = classify_response(_raw(status, body))
    assert result.outcome is outcome
    assert result.retryable is retryable
    assert len(result.message) <= MESSAGE_MAX


@pytest.mark.parametrize("task_id", [
    "x" * 65_536, "id with space", "line\nbreak", "nul\x00id", "tab\tid", "zero\u200bwidth", "bell\x07", "",
    f"t-{KEY}",
])
def test_an_implausible_task_id_is_in_doubt_and_kept_escaped_for_the_operator(task_id: str) -> None:
    """A 200 whose task_id is too long, has whitespace/control characters or quotes the key: ambiguous."""
    result = classify_response(_raw(200, json.dumps({"task_id": task_id}).encode()), secret=SecretStr(KEY))
    assert result.outcome is SubmitOutcome.AMBIGUOUS, task_id[:40]
    assert result.task_id is None
    assert len(result.message) <= MESSAGE_MAX and KEY not in result.message
    assert "\n" not in result.message and "\x00" not in result.message
    if len(task_id) > 1000:
        assert "xxxx" in result.message and "65,536 characters" in result.message


def test_a_plausible_task_id_is_accepted_and_huge_numbers_beside_it_do_not_matter() -> None:
    """A UUID (or any short printable id) is accepted; a 1e400 beside it is ignored."""
    body = b'{"task_id": "3f1c9a7e-1b2d-4c5e-8f90-0a1b2c3d4e5f", "eta": 1e400, "n": ' + HUGE_INT.encode() + b"}"
    result = classify_response(_raw(200, body))
    assert result.outcome is SubmitOutcome.ACCEPTED and result.task_id == "3f1c9a7e-1b2d-4c5e-8f90-0a1b2c3d4e5f"
    assert task_id_problem("ABC_123-xyz.9") is None


@pytest.mark.parametrize("number", ["1e400", "-1e400", HUGE_INT, f'"{HUGE_INT}"', '"1e400"', '"inf"', '"NaN"',
                                    f'"{TOO_LONG_INT[:1000]}"', "-5", "1e300"])
def test_task_result_reader_ignores_or_clamps_absurd_numbers(number: str) -> None:
    """eta, progress_percent, video_url_ttl and debug_info numbers never raise and stay usable."""
    raw = ('{"task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED", "eta": %s, "progress_percent": %s},'
           ' "videos": [{"video_url": "https://s.test/v.mp4", "video_url_ttl": %s}],'
           ' "extra": {"debug_info": {"submit_time_ms": %s, "complete_time_ms": %s, "n": [%s]}}}'
           % ((number,) * 6))
    result = TaskResult.model_validate(load_json(raw.encode()))
    task, video = result.task, result.videos[0]
    assert task.eta is None or 0 <= task.eta <= 7 * 86400
    assert task.progress_percent is None or 0 <= task.progress_percent <= 100
    assert video.video_url_ttl is None or 0 <= video.video_url_ttl < 2**53
    if video.video_url_ttl is not None:
        assert float(video.video_url_ttl) + 1.7e9 < float("inf")
    json.dumps(result.debug_info(), allow_nan=False)  # storable
    timings(result.debug_info())  # showable


@pytest.mark.anyio
async def test_a_deeply_nested_task_result_is_a_transient_error_not_a_recursion_error() -> None:
    """A 200 task-result nested 100,000 levels deep is retried, then reported like any malformed body."""
    async with make_http_client(transport=httpx.MockTransport(lambda r: _raw(200, DEEP))) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=2, sleep=no_sleep,
                              rng=random.Random(0))
        with pytest.raises(TransientError, match="malformed"):
            await client.task_result("t-1")


# -- item 25: an unknown API route is a configuration error, not a failed job ------------------

@pytest.mark.parametrize("response", [
    httpx.Response(404, json={"code": 404, "reason": "API_NOT_FOUND", "message": "no API at POST /x"}),
    httpx.Response(404, text="<html><body>404 Not Found</body></html>", headers={"content-type": "text/html"}),
    httpx.Response(404, text=""),
    httpx.Response(405, text="<html><body>405 Not Allowed</body></html>", headers={"content-type": "text/html"}),
    httpx.Response(405, text=""),
])
def test_a_submit_to_an_unknown_route_is_refused_as_a_configuration_error(response: httpx.Response) -> None:
    """404 API_NOT_FOUND, or a 404 without the provider's envelope: nothing created, stop the run, name the URL. So is
    a 405 without the envelope (a --base-url naming a web server that takes no POST there, nginx's static site): it
    failed each job for good, one POST each, exit 1, where the README promises exit 2 with the jobs still pending
    (the README walk, 2026-12-05)."""
    response.request = httpx.Request("POST", "http://127.0.0.1:9/api/v3/async/kling-v3.0-pro-t2v")
    result = classify_response(response)
    assert result.outcome is SubmitOutcome.REFUSED
    assert result.fatal and result.unknown_route and not result.retryable
    assert "http://127.0.0.1:9/api/v3/async/kling-v3.0-pro-t2v" in result.message
    assert "--base-url" in result.message


def test_a_404_with_another_reason_is_still_a_refused_job() -> None:
    """A 404 with the provider's envelope and another reason stays a permanent refusal of that job."""
    response = httpx.Response(404, json={"code": 404, "reason": "MODEL_NOT_FOUND", "message": "m"})
    response.request = httpx.Request("POST", f"{BASE}/v3/async/{MODEL}")
    result = classify_response(response)
    assert result.outcome is SubmitOutcome.REFUSED and not result.fatal and not result.unknown_route


@pytest.mark.anyio
@pytest.mark.parametrize("response", [
    httpx.Response(404, json={"code": 404, "reason": "API_NOT_FOUND", "message": "no API"}),
    httpx.Response(404, text="<html>Not Found</html>"),
])
async def test_a_task_result_from_an_unknown_route_is_a_configuration_error(response: httpx.Response) -> None:
    """task-result answered by no API: EndpointNotFound naming the URL (not a job's TASK_NOT_FOUND)."""
    async with make_http_client(transport=httpx.MockTransport(lambda r: response)) as http:
        client = NovitaClient(http, base_url=f"{BASE}/api", api_key=KEY, sleep=no_sleep)
        with pytest.raises(EndpointNotFound, match="--base-url") as info:
            await client.task_result("t-1")
    assert f"{BASE}/api/v3/async/task-result" in str(info.value)


@pytest.mark.anyio
async def test_an_answer_the_classifier_cannot_read_is_in_doubt_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever goes wrong reading an answer, submit returns a classified (ambiguous) result."""
    def broken(response: httpx.Response, *, secret: object = None) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(novita, "classify_response", broken)
    async with make_http_client(transport=httpx.MockTransport(lambda r: httpx.Response(400, json={}))) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, sleep=no_sleep)
        result = await client.submit(MODEL, {"prompt": "x"})
    assert result.outcome is SubmitOutcome.AMBIGUOUS


@pytest.mark.parametrize(("said", "read"), [
    ("task_status_succeed", TaskStatus.SUCCEED), (" TASK_STATUS_FAILED\n", TaskStatus.FAILED),
    ("Task_Status_Processing", TaskStatus.PROCESSING), ("TASK_STATUS_SUCCEEDED", TaskStatus.UNKNOWN),
    ("SUCCEED", TaskStatus.UNKNOWN), (7, TaskStatus.UNKNOWN), (None, TaskStatus.UNKNOWN),
])
def test_a_status_is_read_whatever_its_case_and_nothing_more_is_guessed(said: object, read: TaskStatus) -> None:
    """The provider's status constants, in another case or with blanks around them, are the same status (a task
    that said `task_status_succeed` with its video attached was polled as running for good); any other word
    stays unknown (and polled), never guessed into an ending."""
    result = TaskResult.model_validate({"task": {"task_id": "t", "status": said},
                                        "videos": [{"video_url": "https://store.test/v.mp4"}]})
    assert result.task.status is read


@pytest.mark.parametrize("url", ["", "   ", "\n"])
def test_a_video_whose_url_is_empty_is_no_video(url: str) -> None:
    """The hostile-data sweep: `"video_url": ""` was a URL, downloaded, failed and kept, every run; it is no video
    (a SUCCEED listing none is asked again, then given up for the run), and a real one beside it is the video."""
    result = TaskResult.model_validate({"task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED"},
                                        "videos": [{"video_url": url}]})
    assert result.videos == []
    result = TaskResult.model_validate({"task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED"},
                                        "videos": [{"video_url": url}, {"video_url": "https://store.test/v.mp4"}]})
    assert [video.video_url for video in result.videos] == ["https://store.test/v.mp4"]


def test_debug_info_keeps_its_short_scalar_entries_not_a_hostile_answers_megabytes() -> None:
    """Every task result's debug_info is stored in the ledger: a 3 MB string, nested objects and thousands of entries
    are not; the documented times are."""
    times = {"submit_time_ms": "1718000000000", "execute_time_ms": 1718000003000, "complete_time_ms": ""}
    hostile = {**times, "request_info": "r" * 3_000_000, "nested": {"a": [1] * 1000}, "n" * 100: 1,
               **{f"k{i}": i for i in range(10_000)}}
    body = json.dumps({"task": {"task_id": "t-1", "status": "TASK_STATUS_SUCCEED"},
                       "extra": {"debug_info": hostile}}).encode()
    info = TaskResult.model_validate(load_json(body)).debug_info()
    assert {name: info[name] for name in times} == times
    assert len(json.dumps(info)) < 10_000 and "nested" not in info and "n" * 100 not in info
    assert info["request_info"] == "r" * 2000
    assert timings(info)["queue_seconds"] == 3.0


# -- a lone surrogate (a ``\ud800`` escape): valid JSON, no text UTF-8 can store --------------------------

LONE = "\\ud800"  # as the provider writes it: a JSON escape of half a UTF-16 pair


@pytest.mark.parametrize(("status", "outcome", "fatal"), [
    (400, SubmitOutcome.REFUSED, False), (403, SubmitOutcome.REFUSED, True), (404, SubmitOutcome.REFUSED, False),
    (429, SubmitOutcome.REFUSED, False), (500, SubmitOutcome.AMBIGUOUS, False),
])
def test_a_lone_surrogate_in_an_error_envelope_keeps_its_class_and_yields_storable_text(
    status: int, outcome: SubmitOutcome, fatal: bool
) -> None:
    """A refusal whose reason and message hold a lone surrogate crashed the submit lane when the ledger stored the
    message (sqlite3: UnicodeEncodeError), leaving a refused POST `submitting` (in doubt next run). The answer is
    classified as before; every string it gives is UTF-8."""
    body = ('{"code": 0, "reason": "SOME_REASON@", "message": "no @ way", "metadata": {"@": "@"}}'
            .replace("@", LONE).encode())
    result = classify_response(_raw(status, body), secret=SecretStr(KEY))
    assert (result.outcome, result.fatal) == (outcome, fatal)
    assert result.reason is not None and result.reason.startswith("SOME_REASON")
    (result.reason + result.message).encode("utf-8")


@pytest.mark.anyio
async def test_a_lone_surrogate_in_a_task_result_reaches_us_as_storable_text() -> None:
    """A FAILED task's reason, its type and a video URL with a lone surrogate crashed the updates lane at the ledger
    write, and again at every later run's first poll of the task: they come as UTF-8 text."""
    body = ('{"task": {"task_id": "t-1", "status": "TASK_STATUS_FAILED", "reason": "flagged %s", "task_type": "%s"},'
            ' "videos": [{"video_url": "https://s.test/v%s.mp4"}], "extra": {"debug_info": {"r%s": "%s"}}}'
            % ((LONE,) * 5)).encode()
    async with make_http_client(transport=httpx.MockTransport(lambda r: _raw(200, body))) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, sleep=no_sleep)
        result = await client.task_result("t-1")
    assert result.task.status is TaskStatus.FAILED and result.task.reason.startswith("flagged ")
    (result.task.reason + result.task.task_type + result.videos[0].video_url).encode("utf-8")
    json.dumps(result.debug_info(), ensure_ascii=False).encode("utf-8")


# -- a video URL longer than any real one ---------------------------------------------------------

def _succeeded(url: str) -> bytes:
    return json.dumps({"task": {"task_id": "t-1", "status": "TASK_STATUS_SUCCEED"},
                       "videos": [{"video_url": url, "video_url_ttl": 3600}]}).encode()


@pytest.mark.anyio
async def test_a_video_url_longer_than_any_real_one_is_a_malformed_answer_asked_again() -> None:
    """A 4 MB `video_url` reached the ledger row (and every export and log line after it). Past 16 KiB (a real
    presigned URL is 1 to 2 KB) the answer is malformed as any other: retried, then a TransientError, and the poller
    keeps the task running and asks again (the paid task stays recorded, never resubmitted)."""
    huge = "https://store.test/v.mp4?sig=" + "a" * 4_000_000
    async with make_http_client(transport=httpx.MockTransport(lambda r: _raw(200, _succeeded(huge)))) as http:
        client = NovitaClient(http, base_url=BASE, api_key=KEY, get_attempts=2, sleep=no_sleep,
                              rng=random.Random(0))
        with pytest.raises(TransientError, match="malformed"):
            await client.task_result("t-1")
    at_most = "https://store.test/v.mp4?sig="
    at_most += "a" * (novita_wire.VIDEO_URL_MAX - len(at_most))
    assert TaskResult.model_validate(load_json(_succeeded(at_most))).videos[0].video_url == at_most
