"""The simulator over real loopback TCP (SimulatorThread + plain httpx): what a client really sees."""

from __future__ import annotations

import hashlib
import socket
import threading

import httpx
import pytest

from runner.simulator import ManualClock, Simulator, SimulatorThread

SUBMIT = "/v3/async/kling-v3.0-pro-t2v"
RESULT = "/v3/async/task-result"
BODY = {"prompt": "a tram crossing a bridge at night", "duration": 5}


def _client(server: SimulatorThread, key: str, *, timeout: httpx.Timeout | float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def test_submit_poll_download_round_trip(
    sim: Simulator, sim_clock: ManualClock, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """Over a real socket a task is submitted, polled to SUCCEED and its MP4 downloaded intact."""
    sim.configure(task_seconds=3)
    with _client(sim_server, sim_api_key) as client:
        task_id = client.post(SUBMIT, json=BODY).json()["task_id"]
        assert client.get(RESULT, params={"task_id": task_id}).json()["task"]["status"] == "TASK_STATUS_QUEUED"
        sim_clock.advance(3)
        result = client.get(RESULT, params={"task_id": task_id}).json()
        url = result["videos"][0]["video_url"]
        assert url.startswith(f"{sim_server.base_url}/_sim/videos/")
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) > 0
            data = response.read()
    assert data[4:8] == b"ftyp"
    assert hashlib.sha256(data).hexdigest() == sim.stats()["tasks"][task_id]["video_sha256"]
    assert sim.stats()["accepted_total"] == 1


def test_dropped_submit_is_a_connection_error(sim: Simulator, sim_server: SimulatorThread, sim_api_key: str) -> None:
    """A p_drop submit reaches httpx as a connection error although the task was created (and paid)."""
    sim.configure(p_drop=1.0)
    with _client(sim_server, sim_api_key) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(SUBMIT, json=BODY)
        sim.configure(p_drop=0.0)
        after = client.post(SUBMIT, json=BODY)
    assert after.status_code == 200, "the server keeps serving after a drop"
    assert sim.stats()["accepted_total"] == 2


def test_truncated_download_is_an_httpx_error(
    sim: Simulator, sim_clock: ManualClock, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """A p_truncated download announces the full length, sends part and closes: httpx raises."""
    sim.configure(task_seconds=0, p_truncated=1.0, video_bytes=300_000)
    with _client(sim_server, sim_api_key) as client:
        task_id = client.post(SUBMIT, json=BODY).json()["task_id"]
        url = client.get(RESULT, params={"task_id": task_id}).json()["videos"][0]["video_url"]
        received = 0
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as response:
            assert response.headers["content-length"] == "300000"
            for chunk in response.iter_bytes():
                received += len(chunk)
    assert 0 < received < 300_000


def test_slow_submit_times_out_but_the_task_exists(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """A p_slow submit outlasts the client's read timeout; the task was created; others are served meanwhile."""
    sim.configure(p_slow=1.0, slow_seconds=30)
    with _client(sim_server, sim_api_key, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(SUBMIT, json=BODY)
        stats = client.get("/_sim/stats").json()
    assert stats["accepted_total"] == 1
    assert stats["responses"]["submit:slow"] == 1


def test_a_slow_submit_is_held_until_the_test_releases_it_then_answers_its_task(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """A p_slow answer held for up to 10 minutes goes out as soon as POST /_sim/release-slow asks, with its task id;
    the next slow answer is held again (a test waits for its own event, not for a wall time it guessed)."""
    sim.configure(p_slow=1.0, slow_seconds=600)
    answers: list[httpx.Response] = []
    with _client(sim_server, sim_api_key, timeout=httpx.Timeout(5.0, read=None)) as client:
        poster = threading.Thread(target=lambda: answers.append(client.post(SUBMIT, json=BODY)))
        poster.start()
        while sim.stats()["responses"].get("submit:slow", 0) < 1:
            poster.join(0.01)
        assert not answers, "the answer is held"
        with httpx.Client(base_url=sim_server.base_url) as control:
            assert control.get("/_sim/release-slow").status_code == 405
            assert control.post("/_sim/release-slow").status_code == 200
        poster.join(30)
        assert not poster.is_alive()
        assert answers[0].status_code == 200 and answers[0].json()["task_id"] in sim.task_ids()
        with pytest.raises(httpx.ReadTimeout):  # the release was for the answers held then, not the next one
            client.post(SUBMIT, json=BODY, timeout=httpx.Timeout(5.0, read=0.3))
    assert sim.stats()["accepted_total"] == 2


def test_large_padded_video_streams_intact(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """A video padded to several MB streams in full with Content-Length, even on a Connection: close request."""
    sim.configure(task_seconds=0, video_bytes=4_000_000)
    with _client(sim_server, sim_api_key) as client:
        task_id = client.post(SUBMIT, json=BODY).json()["task_id"]
        url = client.get(RESULT, params={"task_id": task_id}).json()["videos"][0]["video_url"]
        keep_alive = client.get(url)
        closing = client.get(url, headers={"Connection": "close"})
    expected = sim.stats()["tasks"][task_id]["video_sha256"]
    for response in (keep_alive, closing):
        assert len(response.content) == 4_000_000
        assert hashlib.sha256(response.content).hexdigest() == expected


def _raw_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_keep_alive_serves_several_requests_on_one_connection(sim_server: SimulatorThread) -> None:
    """Two pipelined requests on one TCP connection get two complete Content-Length answers."""
    request = b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n"
    data = _raw_exchange(sim_server.port, request * 2)
    assert data.count(b"HTTP/1.1 200 ") == 2
    assert data.lower().count(b"content-length: ") == 2


def test_garbage_request_gets_a_400(sim_server: SimulatorThread) -> None:
    """A request that is not HTTP is answered 400 (readable although more garbage followed); the server lives on."""
    data = _raw_exchange(sim_server.port, b"NOT HTTP AT ALL\r\n\r\n" + b"x" * 300_000)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert httpx.get(f"{sim_server.base_url}/_sim/stats").status_code == 200


def test_concurrent_clients_are_all_accounted(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """Submits from several threads at once are each created once and counted once."""
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with _client(sim_server, sim_api_key) as client:
            for i in range(5):
                code = client.post(SUBMIT, json={"prompt": f"worker {n} video {i}"}).status_code
                with lock:
                    statuses.append(code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = sim.stats()
    assert statuses == [200] * 20
    assert stats["accepted_total"] == 20
    assert len(stats["accepted_by_body"]) == 20


def test_thread_stops_cleanly(sim: Simulator) -> None:
    """Leaving SimulatorThread closes the port, and a new one can start right away."""
    with SimulatorThread(sim) as server:
        base_url = server.base_url
        assert httpx.get(f"{base_url}/_sim/stats").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/_sim/stats")
    with pytest.raises(RuntimeError):
        _ = server.port
    with SimulatorThread(sim) as again:
        assert httpx.get(f"{again.base_url}/_sim/stats").status_code == 200


def test_config_can_be_driven_over_http(sim: Simulator, sim_server: SimulatorThread, sim_api_key: str) -> None:
    """POST /_sim/config reconfigures a running server, as tests of a subprocess simulator do."""
    with _client(sim_server, sim_api_key) as client:
        assert client.post("/_sim/config", json={"p_create_failed": 1.0}).status_code == 200
        response = client.post(SUBMIT, json=BODY)
    assert response.status_code == 500
    assert sim.config.p_create_failed == 1.0


def test_closing_response_is_flushed_to_a_slow_reader(
    sim: Simulator, sim_server: SimulatorThread, sim_api_key: str
) -> None:
    """On Connection: close, the server flushes the whole body before closing, even to a slow reader."""
    sim.configure(task_seconds=0, video_bytes=2_000_000)
    with _client(sim_server, sim_api_key) as client:
        task_id = client.post(SUBMIT, json=BODY).json()["task_id"]
        url = httpx.URL(client.get(RESULT, params={"task_id": task_id}).json()["videos"][0]["video_url"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", sim_server.port))
        target = url.raw_path.decode()
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {url.netloc.decode()}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(1024):  # small reads keep the server's buffers full to the end
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 2000000" in head.lower()
    assert len(body) == 2_000_000
    assert hashlib.sha256(body).hexdigest() == sim.stats()["tasks"][task_id]["video_sha256"]
