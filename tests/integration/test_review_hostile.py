"""The review server against hostile requests: what a foreign page or a bad link in the state directory can do.

Held before this file (see runner/review/server.py): a POST needs the page's token, ``application/json`` and a
``Host`` naming this server, so another origin's page (a CSRF) or a DNS-rebound name cannot decide; ``OPTIONS``
(a CORS preflight) is never granted. Here: what was still open.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_review_decisions import _done_jobs

from runner.ledger import SqliteLedger, open_ledger
from runner.review.server import ReviewServer
from runner.storage.local import LocalStore


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ReviewServer, Path, list[str]]]:
    state = tmp_path / "state"
    keys = _done_jobs(state, 2)

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


def _raw(server: ReviewServer, data: bytes) -> tuple[bytes, bool]:
    """What the server sends back on one connection for ``data``, and whether it closed the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            return got, False
        return got, True


def test_a_refused_posts_body_is_never_read_as_a_second_request(served: tuple[ReviewServer, Path, list[str]]) -> None:
    """A POST refused before its body is read (no token: what any web page can send to 127.0.0.1) left the
    connection open, and its body was parsed as the next request: a form's text body holding ``GET /`` got the
    review page, token and all, answered on that connection. The server now closes the connection after a request
    whose body it did not read, so the body is never a request."""
    server, _state, _keys = served
    host = f"127.0.0.1:{server.port}"
    inner = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for head in (f"POST /api/review HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n",  # no token: 403
                 f"POST /api/review HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"X-Review-Token: {server.token}\r\n",  # a body that is not JSON: 400
                 f"GET /nothing HTTP/1.1\r\nHost: {host}\r\n"):  # a GET with a body: 404
        got, closed = _raw(server, head.encode() + b"Content-Length: %d\r\n\r\n" % len(inner) + inner)
        assert got.count(b"HTTP/1.1 ") == 1 and server.token.encode() not in got, got[:300]
        assert closed and b"Connection: close" in got, got[:300]


def test_a_stored_video_linked_outside_the_state_directory_is_a_404_that_says_so(
    served: tuple[ReviewServer, Path, list[str]]
) -> None:
    """A video in outputs/ that is a link to a file outside the state directory was never served, but the server
    dropped the connection (UnsafeDestination escaped the handler): the player said only that the network failed.
    Now a 404 naming the link and where it leads."""
    server, state, keys = served
    outside = state.parent / "secret.txt"
    outside.write_text("not for the page")
    (state / "outputs" / "m").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, state / "outputs" / "m" / "c0.mp4")
    with open_ledger(state, readonly=True) as ledger:
        job = ledger.get(keys[0])
        assert job is not None and job.path == "outputs/m/c0.mp4"
    answer = httpx.get(server.url + f"video/{keys[0]}", timeout=30)
    assert answer.status_code == 404 and "not for the page" not in answer.text, answer.text
    assert "leads outside the state directory" in answer.json()["error"], answer.text


def test_what_another_origins_page_can_send_decides_nothing(served: tuple[ReviewServer, Path, list[str]]) -> None:
    """Pinned (it held): the requests any web page, or a name rebound to 127.0.0.1, can make the browser send — a
    form or no-cors POST (text/plain, no token), a POST through a rebound Host, a CORS preflight — decide nothing;
    only the page's own request (its token, JSON, this server's Host) does."""
    server, state, keys = served
    url, host = server.url + "api/review", f"127.0.0.1:{server.port}"
    body = b'{"key": "%s", "decision": "reject", "reason": "csrf"}' % keys[0].encode()
    json_with_token = {"Content-Type": "application/json", "X-Review-Token": server.token}
    for headers in ({"Content-Type": "text/plain"},  # a form's or a no-cors fetch's POST
                    {"Content-Type": "application/json"},  # no token (needs a preflight anyway)
                    {"Content-Type": "text/plain", "X-Review-Token": server.token},  # a token but not JSON
                    {**json_with_token, "Host": f"rebound.example:{server.port}"},  # DNS rebinding
                    {**json_with_token, "Host": "127.0.0.1:1"}):  # another port's page
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
        assert answer.status_code == 403, (headers, answer.text)
    preflight = httpx.request("OPTIONS", url, headers={"Origin": "https://evil.example", "Host": host,
                                                       "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.status_code >= 400 and "access-control-allow-origin" not in preflight.headers
    page = httpx.get(server.url, headers={"Host": f"rebound.example:{server.port}"}, timeout=30)
    assert page.status_code == 403 and server.token not in page.text
    with open_ledger(state, readonly=True) as ledger:
        assert ledger.rejections(keys[0]) == []
    answer = httpx.post(url, content=body, headers=json_with_token, timeout=30)
    assert answer.status_code == 200 and answer.json()["review"] == "rejected", answer.text


def test_a_client_that_stalls_mid_request_blocks_no_other(served: tuple[ReviewServer, Path, list[str]]) -> None:
    """Held by the threaded server (one thread a connection, no lock held while a request is read): a local client
    that connects and sends nothing, half a request line, or a decision's headers and half its body does not keep a
    second client from the page or from deciding."""
    server, _state, keys = served
    host = f"127.0.0.1:{server.port}"
    stalls = [b"", b"GET / HT", f"POST /api/review HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
              f"X-Review-Token: {server.token}\r\nContent-Length: 200\r\n\r\n{{\"key\": ".encode()]
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in stalls]
    try:
        for sock, data in zip(stalled, stalls, strict=True):
            sock.sendall(data)
        assert keys[0] in httpx.get(server.url, timeout=5).text
        decided = httpx.post(server.url + "api/review", json={"key": keys[0], "decision": "reject"}, timeout=5,
                             headers={"X-Review-Token": server.token})
        assert decided.status_code == 200, decided.text
    finally:
        for sock in stalled:
            sock.close()
