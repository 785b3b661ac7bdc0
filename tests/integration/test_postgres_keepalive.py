"""TCP keepalives and a user timeout on the PostgreSQL ledger's connections (hunt-pg2, item 3).

A partition that drops packets (a firewall, a dead switch, a failover whose old primary's address went nowhere)
answered nothing, not even a reset: a statement sent then waited until the kernel gave up retransmitting (~15
minutes on Linux), and the ledger's calls run on the engine's event loop — the whole run stalled that long, its
lease long expired. Each connection now asks libpq for keepalives (a probe after 10 s idle, every 5 s, 3 missed) and
``tcp_user_timeout`` 30 s (data unacknowledged that long ends the connection): the statement fails as a lost
connection, which the ledger already handles (a read read again, a write's COMMIT looked up by its mark). A value
the URL gives is kept. Checked where it matters: the options of the socket the kernel holds.
"""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from runner.ledger.postgres import open_postgres_ledger

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)  # Linux's number


def _socket_options(raw: psycopg.Connection) -> tuple[int, int, int, int, int]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) of the connection's socket."""
    sock = socket.socket(fileno=raw.pgconn.socket)
    try:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT))
    finally:
        sock.detach()  # libpq's socket: not closed here


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="Linux socket options")
def test_the_ledgers_connections_carry_keepalives_and_a_user_timeout_made_again_too(
    pg_url: str, tmp_path: Path
) -> None:
    with open_postgres_ledger(pg_url, tmp_path / "state") as ledger:
        params = ledger._conn.raw.info.get_parameters()
        assert {name: params.get(name) for name in ("keepalives_idle", "keepalives_interval", "keepalives_count",
                                                    "tcp_user_timeout")} == {
            "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3", "tcp_user_timeout": "30000"}
        assert _socket_options(ledger._conn.raw)[0] == 1 and _socket_options(ledger._conn.raw)[1:] == (10, 5, 3, 30000)
        with psycopg.connect(pg_url, autocommit=True) as admin:  # a restart's goodbye: the connection made again
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'runner'")
        assert ledger.total() == 0
        assert _socket_options(ledger._conn.raw)[1:] == (10, 5, 3, 30000)


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="Linux socket options")
def test_a_keepalive_setting_the_url_gives_is_kept(pg_url: str, tmp_path: Path) -> None:
    with open_postgres_ledger(f"{pg_url}?keepalives_idle=30&tcp_user_timeout=60000", tmp_path / "state") as ledger:
        assert _socket_options(ledger._conn.raw)[1:] == (30, 5, 3, 60000)
