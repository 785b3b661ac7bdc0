"""A PostgreSQL ledger's URL with no role, run by a user with no name (a container's: ``docker run -u 12345``,
OpenShift's arbitrary uid): libpq takes the role from the user's name, has none, and gives up before connecting."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from runner.errors import LedgerNotReached
from runner.ledger.postgres import reach

LIBPQ = "connection is bad: local user with ID 12345 does not exist"  # libpq 15+; before: "could not look up local user ID 12345: …"


def _libpq_refusing(said: str) -> Any:
    def connect(*args: Any, **kwargs: Any) -> None:
        raise psycopg.OperationalError(said)
    return SimpleNamespace(connect=connect, Error=psycopg.Error, pq=psycopg.pq)


@pytest.mark.parametrize("said", [LIBPQ, "could not look up local user ID 12345: No such file or directory"])
def test_no_role_and_no_user_name_asks_for_the_role(monkeypatch: pytest.MonkeyPatch, said: str) -> None:
    """It said "… Check the URL, that the server runs, and the password", none of which was wrong (exit 5, every
    run); it asks for the role in the URL or PGUSER now."""
    monkeypatch.setattr(reach, "driver", lambda: _libpq_refusing(said))
    with pytest.raises(LedgerNotReached) as refused:
        reach.connect("postgresql://db.internal/videos", "postgresql://db.internal/videos", None, readonly=True,
                      session="s")
    message = str(refused.value)
    assert "has no user name here" in message and "postgresql://ROLE@db.internal/videos" in message, message
    assert "PGUSER" in message and "nothing was read or written" in message, message
    assert "that the server runs" not in message, message


def test_another_failure_keeps_its_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reach, "driver", lambda: _libpq_refusing("connection refused"))
    with pytest.raises(LedgerNotReached) as refused:
        reach.connect("postgresql://db.internal/videos", "postgresql://db.internal/videos", None, readonly=True,
                      session="s")
    assert "that the server runs" in str(refused.value) and "ROLE@" not in str(refused.value)
