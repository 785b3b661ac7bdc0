"""How long a PostgreSQL ledger whose server went away holds up the engine's event loop.

Every ledger call runs on the loop, so a connection made again stalls the whole engine (polls, downloads, the lease's
renewals) for as long as it takes. That is kept, and bounded: the lease cannot be renewed while the server cannot be
reached anyway, and a POST leaves only while the lease may hold (``LeaseKeeper.may_send``, on the loop and steady
clocks, which a stall advances). What must hold is the bound: :data:`RECONNECT_S` in all, not that plus a connect
timeout for each try — a server that accepts connections and answers nothing (a hung host, a full listen backlog, a
proxy with no server behind it) kept the loop for the driver's 10 s a try, whatever the window said.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from pathlib import Path

import anyio
import pytest

from runner.errors import LedgerNotReached, LedgerUnreachable
from runner.jobs import JobSpec
from runner.ledger.postgres import connection as pg_connection
from runner.ledger.postgres import open_postgres_ledger, reach
from runner.testing_pg import TempPostgres


class _Mute:
    """A TCP relay to the server; :meth:`hang` cuts the connections through it, then accepts new ones and answers
    nothing on them (a server that hung, seen from the client)."""

    def __init__(self, port: int) -> None:
        self.port, self.hung = port, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url_port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept)]
        self.threads[0].start()

    def __enter__(self) -> _Mute:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(timeout=10)

    def hang(self) -> None:
        self.hung = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.hung:
                continue  # accepted, never answered
            server = socket.create_connection(("127.0.0.1", self.port))
            self.sockets.append(server)
            for src, dst in ((client, server), (server, client)):
                self.threads.append(threading.Thread(target=self._pump, args=(src, dst)))
                self.threads[-1].start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_server_that_accepts_and_never_answers_stalls_the_loop_for_the_reconnect_window_only(
    pg_server: TempPostgres, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop stalls while the connection is made again (measured: no tick of a 20 ms ticker meanwhile), and no
    longer than the window and one last try's shortest timeout (libpq's 2 s). It stalled 10 s (the driver's connect
    timeout) with a window of 1 s."""
    monkeypatch.setattr(pg_connection, "RECONNECT_S", 1.0)
    spec = JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "clip", "duration": 5}, vars={}, repeat=1,
                         output="c.mp4", estimated_usd=0.56)
    ticks: list[float] = []
    with _Mute(pg_server.port) as relay, open_postgres_ledger(
            pg_url.replace(f":{pg_server.port}/", f":{relay.url_port}/"), tmp_path) as ledger:
        ledger.register("m", "d", [spec])
        relay.hang()
        time.sleep(0.2)  # the cut crosses loopback

        async def main() -> float:
            async def ticker() -> None:
                while True:
                    ticks.append(time.monotonic())
                    await anyio.sleep(0.02)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                await anyio.sleep(0.1)
                started = time.monotonic()
                with pytest.raises(LedgerUnreachable, match=r"tried for 1 s"):
                    ledger.total()  # on the loop, as the engine calls it
                took = time.monotonic() - started
                await anyio.sleep(0.1)
                tg.cancel_scope.cancel()
            return took

        took = anyio.run(main)
    longest = max(later - earlier for earlier, later in itertools.pairwise(ticks))
    assert longest >= min(took, 1.0) * 0.9, "the call held the loop: nothing else ran meanwhile"
    assert took < 1.0 + 2.0 + 0.5, f"the reconnect held the loop {took:.1f} s with a window of 1 s"


@pytest.mark.parametrize("left", [0.0, -0.004])
def test_the_last_try_of_the_window_still_has_a_connect_timeout(pg_server: TempPostgres, left: float) -> None:
    """The reconnect's tries back off (0.25 s … 2 s) and the last sleep takes what is left of the window, so a server
    refusing throughout leaves the last try 0 s or a hair under: ``ceil`` made that ``connect_timeout=0``, which
    libpq reads as *wait for ever* — a server that accepted by then and answered nothing (a failover's proxy, a host
    coming back with its backlog full) held the event loop, and the run, for ever. It gets libpq's shortest (2 s)."""
    outcome: list[BaseException | None] = []

    def last_try(port: int) -> None:
        try:
            reach.connect(f"postgresql://runner@127.0.0.1:{port}/x", "the ledger", None, readonly=False, session="s",
                          within=left)
        except BaseException as exc:  # what it raised is the outcome
            outcome.append(exc)
        else:
            outcome.append(None)

    with _Mute(pg_server.port) as relay:
        relay.hang()
        thread = threading.Thread(target=last_try, args=(relay.url_port,), daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(8.0)
        took = time.monotonic() - started
        hung = thread.is_alive()
    thread.join(10.0)  # the relay closed: a try still waiting ends now
    assert not hung, "the last try waited for an answer with no timeout"
    assert isinstance(outcome[0], LedgerNotReached) and took < 4.0, (outcome, took)
