"""A PostgreSQL ledger URL's password is printed nowhere, wherever the URL spells it: not in the flags a pasteable
`runner adopt` hint carries (runner.service.hints.ledger_words), not in the refusal of a URL of another spelling."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from runner.engine.admission import AdoptCommands
from runner.service.hints import ledger_words

SECRET = "s3cret-never-printed"


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://u:{SECRET}@h/db", "postgresql://u@h/db"),
    (f"postgres://u:{SECRET}@h:5433/db?sslmode=require", "postgres://u@h:5433/db?sslmode=require"),
    (f"postgresql://u@h/db?password={SECRET}", "postgresql://u@h/db"),
    (f"postgresql://u@h/db?sslmode=require&password={SECRET}&connect_timeout=5",
     "postgresql://u@h/db?sslmode=require&connect_timeout=5"),
    (f"postgresql://u@h/db?pass%77ord={SECRET}", "postgresql://u@h/db"),
    (f"postgresql:///db?host=/run/postgresql&password={SECRET}", "postgresql:///db?host=/run/postgresql"),
    (f"postgresql://u:{SECRET}@h1:5432,h2:5433/db?password={SECRET}", "postgresql://u@h1:5432,h2:5433/db"),
    (f"postgresql://u:p%40{SECRET}@h/db", "postgresql://u@h/db"),
])
def test_the_password_is_left_out_and_the_rest_kept(url: str, shown: str) -> None:
    words = ledger_words(Path("my state"), url)
    assert words == ("--state", "my state", "--ledger", shown)
    hint = AdoptCommands("my manifest.yaml", words).every()
    assert SECRET not in hint and shlex.split(hint)[2:] == ["my manifest.yaml", "--held-back", *words]


@pytest.mark.parametrize("url", [f"POSTGRESQL://u@h/db?password={SECRET}", f"pg://u:{SECRET}@h/db",
                                 f"postgresql+psycopg://u@h/db?sslmode=require&password={SECRET}",
                                 f"host=h dbname=db password={SECRET}", f"host=h password = '{SECRET} x'"])
def test_a_ledger_url_refused_for_its_scheme_is_named_without_its_password(url: str) -> None:
    """`--ledger` given a URL of another spelling (upper case, SQLAlchemy's): the refusal named the part after its @,
    a password in the query string with it."""
    from runner.errors import UsageError
    from runner.ledger.factory import check_url

    with pytest.raises(UsageError) as refused:
        check_url(url)
    assert SECRET not in str(refused.value) and ("h/db" in str(refused.value) or "conninfo" in str(refused.value))
