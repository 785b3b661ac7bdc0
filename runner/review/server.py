"""``runner review``: the review page served on loopback, writing decisions to the ledger.

A small threaded HTTP server from the standard library (:class:`http.server.ThreadingHTTPServer`),
bound to a loopback address only. Routes:

* ``GET /?state=&model=&var=name=value&page=N`` — one page of rows (:mod:`runner.review.page`);
* ``GET /video/<key>`` — the job's stored video (``Range`` honoured, so players can seek);
* ``POST /api/review`` — ``{"key", "decision": "accept"|"reject", "reason", "sample"}``, JSON in and out
  (``sample``: the one the card shows; a job regenerated since is refused with 409, nothing written).

A decision is accepted only from a loopback peer, with a ``Host`` naming this server (no DNS
rebinding), ``Content-Type: application/json`` and the page's per-launch token in
``X-Review-Token`` (a page of another origin can send neither without a preflight this server
never grants). A request with a body the server does not read whole (any POST, a GET with a body) ends its
connection, so no body is ever parsed as a second request; a stored video linked outside the state directory is a
404 that says so. Reads go through one read-only ledger; each decision opens the ledger for writing
just for that step (one decision at a time), so a run may go on meanwhile. While a run holds the
ledger's single-writer lock (:mod:`runner.ledger.lock`) the review never writes beside it: the
decision (on a done clip, the sample the card shows) is queued (:mod:`runner.ledger.review_queue`,
fsynced) and answered 202 "queued: the run saves it within seconds"; the run applies it while it runs, between
its POSTs, every few seconds (``runner/service/live_review.py``), and as it ends (a run killed: the next writer to
open the ledger). One that cannot be queued (a full disk) is 507 and says so: nothing was saved.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.errors import LedgerLocked, RunnerError, UsageError
from runner.jobs import JobState
from runner.ledger import LedgerBackend
from runner.ledger.review_queue import QueuedDecision, queue_decision, queued_decisions, saved_by_a_run, who_saves
from runner.review.page import PAGE_SIZE, Filters, list_rows, render_page
from runner.review.regenerate import accept_job
from runner.storage import OutputStore, UnsafeDestination
from runner.text import storable

__all__ = ["LOOPBACK", "ReviewServer"]

log = logging.getLogger("runner.review")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_BODY = 16 * 1024
CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A player that stops reading a video mid-way is normal: a debug line; anything else one
        error line (the cause with ``runner -v``), never a traceback on the terminal."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("review: a connection from %s ended early", client_address)
        else:
            log.error("review: a request failed: %s: %s", type(error).__name__, error)
            log.debug("review: the cause", exc_info=True)


class ReviewServer:
    """Serve ``manifest``'s review page from the ledger at ``reader`` until :meth:`shutdown`."""

    def __init__(self, reader: LedgerBackend, open_writer: Callable[[], LedgerBackend], store: OutputStore,
                 manifest: str, *, host: str = "127.0.0.1", port: int = 0, page_size: int = PAGE_SIZE,
                 token: str | None = None) -> None:
        if host not in LOOPBACK:
            raise UsageError(f"--host {host}: the review page is served on loopback only (127.0.0.1, ::1)")
        self.reader, self.open_writer, self.store, self.manifest = reader, open_writer, store, manifest
        self.page_size = page_size
        self.token = token or secrets.token_urlsafe(24)
        self.lock = threading.Lock()  # the reader's connection
        self.writing = threading.Lock()  # one decision at a time: two at once would lock each other out
        try:
            self.httpd = _Server((host, port), _handler(self))
        except OSError as exc:
            raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; pick another --port") from exc
        self.host, self.port = host, int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------- actions

    def page(self, query: str) -> str:
        filters = Filters.from_query(query)
        with self.lock:
            listing = list_rows(self.reader.iter_jobs(self.manifest), filters, self.page_size)
        queued = {d.key: (d.decision, d.sample) for d in queued_decisions(self.reader.state_dir)
                  if d.manifest == self.manifest}  # the last one of a job stands
        return render_page(self.manifest, listing, filters, self.token, queued)

    def video(self, key: str) -> Path | str | None:
        """The job's stored video, None when there is none, or why it is not served (a link leading outside)."""
        with self.lock:
            job = self.reader.get(key, self.manifest)
        if job is None or job.path is None:
            return None
        try:
            where = self.store.locate(job.path)
        except UnsafeDestination as exc:
            log.warning("job %s: %s", key, exc)
            return f"not served: {exc}"
        return where if isinstance(where, Path) and where.is_file() else None

    def decide(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        # A lone surrogate (JSON.stringify's half of an emoji) cannot be stored (UTF-8): U+FFFD in its place.
        key, decision = storable(str(body.get("key", ""))), body.get("decision")
        reason = storable(str(body.get("reason") or "rejected on the review page")[:500])
        if decision not in ("accept", "reject"):
            return HTTPStatus.BAD_REQUEST, {"error": "decision must be accept or reject"}
        shown = body.get("sample")  # the sample the page's card shows (absent: any, for a script)
        if shown is not None and (isinstance(shown, bool) or not isinstance(shown, int)):
            return HTTPStatus.BAD_REQUEST, {"error": "sample must be an integer"}
        try:
            with self.writing, self.open_writer() as ledger:
                found = ledger.get(key, self.manifest)
                if found is None:
                    return HTTPStatus.NOT_FOUND, {"error": f"no job {key} in {self.manifest}"}
                if shown is not None and shown != found.sample:  # the page predates a regeneration
                    return HTTPStatus.CONFLICT, {"error": f"not saved: this clip was generated again since the page"
                                                          f" was loaded (now sample {found.sample + 1}, {found.state});"
                                                          " reload the page to see it"}
                if decision == "reject":
                    moved = ledger.reject(key, reason=reason)
                else:  # a video a stopped regenerate left aside is put back first
                    moved, _found = accept_job(ledger, self.store, key)
                job = ledger.get(key)
        except LedgerLocked as exc:
            return self._queue(key, str(decision), reason, shown, exc.holder or "another process", exc.command)
        except (RunnerError, OSError) as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        assert job is not None
        if not moved and job.state is not JobState.DONE:  # a regenerated clip is pending: the page says so
            return HTTPStatus.CONFLICT, {"error": f"not saved: this job is {job.state}, not done (only a stored video"
                                                  " can be accepted or rejected)"}
        log.info("job %s: %s%s", key, decision, "" if moved else " (no change)")
        return HTTPStatus.OK, {"key": key, "review": job.review or "", "moved": moved}

    def _queue(self, key: str, decision: str, reason: str, shown: int | None,
               holder: str, command: str | None = None) -> tuple[HTTPStatus, dict[str, Any]]:
        """A run holds the ledger: the decision goes to the review queue, which the run applies within seconds."""
        with self.lock:
            job = self.reader.get(key, self.manifest)
        if job is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no job {key} in {self.manifest}"}
        if shown is not None and shown != job.sample:
            return HTTPStatus.CONFLICT, {"error": f"not saved: this clip was generated again since the page was loaded"
                                                  f" (now sample {job.sample + 1}, {job.state}); reload the page to see it"}
        if job.state is not JobState.DONE:
            return HTTPStatus.CONFLICT, {"error": f"not saved: this job is {job.state}, not done (only a stored video"
                                                  " can be accepted or rejected)"}
        try:
            queue_decision(self.reader.state_dir, QueuedDecision(key, self.manifest, decision, reason, job.sample,
                                                                 time.time()))
        except OSError as exc:
            log.error("job %s: %s not saved: a run holds the ledger (%s) and it could not be queued (%s)", key,
                      decision, holder, exc.strerror or exc)
            return HTTPStatus.INSUFFICIENT_STORAGE, {
                "error": f"not saved: a run is writing this ledger ({holder}) and the decision could not be queued"
                         f" ({exc.strerror or exc}: free space in the state directory); decide again when it ends"}
        log.info("job %s: %s queued: %s", key, decision, who_saves(command, holder))
        message = (f"{decision} queued: the run saves it within seconds" if saved_by_a_run(command) else
                   f"{decision} queued: `runner {command}` holds the ledger; the next command that writes it saves it"
                   " once that one has finished")
        return HTTPStatus.ACCEPTED, {"key": key, "review": job.review or "", "queued": decision, "message": message}


def _handler(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "runner-review"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("review: " + format, *args)

        def _end_headers(self) -> None:
            # A request announcing a body this server does not read whole (a POST, a GET with a body): its
            # connection ends here, else the body would be parsed as the next request (a refused POST's text
            # body holding "GET /" got the page, token and all, on the same connection).
            if self.command == "POST" or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                self.send_header("Connection", "close")
            self.end_headers()

        def _send(self, status: HTTPStatus, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self._end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: HTTPStatus, data: dict[str, Any]) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _local(self) -> bool:
            host = (self.headers.get("Host") or "").lower()
            allowed = {f"{name}:{server.port}" for name in ("127.0.0.1", "localhost", "[::1]")}
            return self.client_address[0] in ("127.0.0.1", "::1") and host in allowed

        def do_GET(self) -> None:
            if not self._local():
                self._json(HTTPStatus.FORBIDDEN, {"error": "loopback only"})
                return
            parts = urlsplit(self.path)
            if parts.path == "/":
                self._send(HTTPStatus.OK, server.page(parts.query).encode(), "text/html; charset=utf-8",
                           {"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline';"
                            " script-src 'unsafe-inline'; media-src 'self'"})
            elif parts.path.startswith("/video/"):
                self._video(unquote(parts.path[len("/video/"):]))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        do_HEAD = do_GET

        def _video(self, key: str) -> None:
            path = server.video(key)
            if not isinstance(path, Path):
                self._json(HTTPStatus.NOT_FOUND, {"error": path or f"no stored video for {key}"})
                return
            size = path.stat().st_size
            start, end = 0, size - 1
            wanted = _RANGE.match(self.headers.get("Range", ""))
            if wanted and (wanted.group(1) or wanted.group(2)):
                if wanted.group(1):
                    start, end = int(wanted.group(1)), min(end, int(wanted.group(2) or end))
                else:
                    start = max(0, size - int(wanted.group(2)))
            if start > end:
                self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", "video/mp4",
                           {"Content-Range": f"bytes */{size}"})
                return
            partial = wanted is not None
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self._end_headers()
            if self.command == "HEAD":
                return
            with path.open("rb") as file:
                file.seek(start)
                left = end - start + 1
                while left > 0:
                    data = file.read(min(CHUNK, left))
                    if not data:
                        break
                    self.wfile.write(data)
                    left -= len(data)

        def do_POST(self) -> None:
            if not self._local():
                self._json(HTTPStatus.FORBIDDEN, {"error": "loopback only"})
                return
            if urlsplit(self.path).path != "/api/review":
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            token = self.headers.get("X-Review-Token", "")
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            # bytes: compare_digest refuses a str past ASCII (a header's byte 0xE9 read as latin-1) with TypeError
            if not secrets.compare_digest(token.encode("latin-1", "replace"), server.token.encode()) or (
                    kind != "application/json"):
                self._json(HTTPStatus.FORBIDDEN, {"error": "a decision needs the page's token (reload the page)"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(min(length, MAX_BODY))) if 0 < length <= MAX_BODY else None
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                self._json(HTTPStatus.BAD_REQUEST, {"error": "expected a JSON object"})
                return
            status, answer = server.decide(body)
            self._json(status, answer)

    return Handler
