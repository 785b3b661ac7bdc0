"""A connection pooler in transaction mode, as PgBouncer's ``pool_mode=transaction``, for the PostgreSQL tests.

:class:`TransactionPooler` listens on a loopback port and speaks PostgreSQL's wire protocol to its clients; each
*transaction* of a client (from its first message while idle to the server's ReadyForQuery saying idle again: an
autocommit statement, or BEGIN … COMMIT) goes to the next of its server connections in turn, so no session state —
a ``SET``, a prepared statement, a temporary table, a session advisory lock — is sure to be there for the next one,
and what one client left on a server connection is there for the next client handed it (PgBouncer runs no
``server_reset_query`` in transaction mode). ``backends=1`` is a pool of one server connection that clients share
one after another; :meth:`retire` (or ``retire_after``: once a transaction that sent those bytes ended) sets the
server connections in use aside for good, as a pooler does when a server connection goes to another client for a
while: every transaction after it runs on a fresh one. Trust authentication only (the throwaway server's), no TLS (it answers ``N`` to the request).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Self

__all__ = ["TransactionPooler"]

_SSL_REQUEST, _GSS_REQUEST, _CANCEL = 80877103, 80877104, 80877102


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _message(sock: socket.socket) -> tuple[bytes, bytes]:
    """One typed message: its type byte and its whole bytes."""
    head = _exactly(sock, 5)
    return head[:1], head + _exactly(sock, struct.unpack("!i", head[1:])[0] - 4)


class _Backend:
    """One server connection, started with a client's startup packet; the messages of its start-up kept."""

    def __init__(self, address: tuple[str, int], startup: bytes) -> None:
        self.sock = socket.create_connection(address)
        self.sock.sendall(startup)
        self.busy = self.retiring = False
        self.greeting = b""
        while True:
            kind, data = _message(self.sock)
            self.greeting += data
            if kind == b"Z":
                return
            if kind == b"E":
                raise ConnectionError(data.decode(errors="replace"))


class TransactionPooler:
    """A transaction-mode pool in front of ``server`` (host, port): :attr:`port` is where clients connect."""

    def __init__(self, server: tuple[str, int], *, backends: int = 2, retire_after: bytes | None = None) -> None:
        self._server, self._size, self._retire_after = server, backends, retire_after
        self._pool: list[_Backend] = []
        self._next = 0
        self._free = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.transactions = 0
        self.retired = False
        self._retired: list[_Backend] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname: str, user: str = "runner") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}?sslmode=disable&gssencmode=disable"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take(self, startup: bytes) -> _Backend:
        """An idle server connection, the next in turn; waits for one."""
        with self._free:
            while True:
                while len(self._pool) < self._size:  # the whole pool at once: each transaction on the next
                    self._pool.append(_Backend(self._server, startup))
                idle = [b for b in self._pool if not b.busy]
                if idle:
                    backend = idle[self._next % len(idle)]
                    self._next += 1
                    backend.busy = True
                    self.transactions += 1
                    return backend
                self._free.wait()

    def _give_back(self, backend: _Backend) -> None:
        with self._free:
            backend.busy = False
            if backend.retiring and backend in self._pool:
                self._pool.remove(backend)
            self._free.notify_all()

    def retire(self) -> None:
        """Set every server connection aside (kept open: no session on the server ends); new ones from now on."""
        with self._free:
            self._retired.extend(self._pool)
            self._pool = [b for b in self._pool if b.busy]  # (one in use goes aside once given back)
            for backend in self._pool:
                backend.retiring = True
            self.retired = True

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ConnectionError), client:
            while True:
                size = struct.unpack("!i", _exactly(client, 4))[0]
                body = _exactly(client, size - 4)
                code = struct.unpack("!i", body[:4])[0]
                if code in (_SSL_REQUEST, _GSS_REQUEST):
                    client.sendall(b"N")
                    continue
                if code == _CANCEL:
                    return
                startup = struct.pack("!i", size) + body
                break
            first = self._take(startup)
            client.sendall(first.greeting)  # AuthenticationOk, ParameterStatus, …, ReadyForQuery
            self._give_back(first)
            current: list[_Backend] = []  # the server connection of the transaction under way, if any
            guard = threading.Lock()
            try:
                while True:
                    kind, data = _message(client)
                    if kind == b"X":  # Terminate: the server connection stays in the pool
                        return
                    with guard:
                        if not current:
                            current.append(self._take(startup))
                            threading.Thread(target=self._answers, args=(client, current, guard),
                                             daemon=True).start()
                        current[0].sock.sendall(data)
                        if self._retire_after is not None and self._retire_after in data and not self.retired:
                            self.retire()  # this transaction ends on its server connection; the next on a new one
            finally:
                with guard, contextlib.suppress(OSError):
                    if current:  # a client gone mid-transaction: rolled back, as a pooler does (its answers dropped)
                        current[0].sock.sendall(b"Q" + struct.pack("!i", 13) + b"ROLLBACK\0")

    def _answers(self, client: socket.socket, current: list[_Backend], guard: threading.Lock) -> None:
        """The server's answers to ``client`` until it says idle again: the server connection goes back to the pool
        (before the client reads that answer, so its next message takes the next server connection)."""
        backend = current[0]
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                kind, data = _message(backend.sock)
                if kind == b"Z" and data[5:6] == b"I":
                    with guard:
                        current.clear()
                        self._give_back(backend)
                    with contextlib.suppress(OSError):
                        client.sendall(data)
                    return
                with contextlib.suppress(OSError):  # a client gone: its transaction's answers read to the end
                    client.sendall(data)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for backend in self._pool + self._retired:
            with contextlib.suppress(OSError):
                backend.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
