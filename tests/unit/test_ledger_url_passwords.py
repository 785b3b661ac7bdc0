"""A PostgreSQL ledger URL's password is printed nowhere, wherever the URL spells it: not in the flags a pasteable
`runner adopt` hint carries (runner.service.hints.ledger_words), not in the refusal of a URL of another spelling."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
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
    words, note = ledger_words(Path("my state"), url, environ={})
    hint = AdoptCommands("my manifest.yaml", words, note).every()
    assert SECRET not in hint and SECRET not in note
    assert shlex.split(hint)[2:] == ["my manifest.yaml", "--held-back", "--state", "my state", "--ledger", shown]
    assert "password" in note and "PGPASSWORD" in note  # pasted, the command must be given the password


def _pasted(command: str, environ: dict[str, str]) -> list[str]:
    """The words ``command`` pasted into bash gives `runner` (a shell function here that prints them), in ``environ``."""
    shell = shutil.which("bash") or pytest.skip("no bash here")
    out = subprocess.run([shell, "-c", 'runner() { printf "%s\\0" "$@"; }; ' + command], env=environ,
                         capture_output=True, text=True, check=True).stdout
    return out.split("\0")[:-1]


def test_a_url_the_environment_gives_with_its_password_is_named_by_the_variable() -> None:
    """A run's ledger from RUNNER_LEDGER_URL, its password in the URL: the exit-6 `runner adopt` hint carried
    `--ledger` with the URL less its password, which, pasted in that very shell, overrode the variable and logged
    in without a password (exit 5). Pasted now, it opens the URL the variable gives, and prints no password."""
    url = f"postgresql://u:{SECRET}@h/db?sslmode=require"
    environ = {"PATH": os.environ.get("PATH", ""), "RUNNER_LEDGER_URL": url}
    words, note = ledger_words(Path("my state"), url, environ=environ)
    adopt = AdoptCommands("my manifest.yaml", words, note)
    for hint, head in ((adopt.every(), ["adopt", "my manifest.yaml", "--held-back"]),
                       (adopt.one("job 1"), ["adopt", "job 1", "--file"])):
        assert SECRET not in hint and note == ""
        assert _pasted(hint, environ) == [*head, "--state", "my state", "--ledger", url]


def test_a_url_without_a_password_is_printed_whole() -> None:
    """The password from PGPASSWORD or ~/.pgpass: the URL as given works pasted anywhere; nothing to say."""
    url = "postgresql://u@h:5433/db?sslmode=require"
    words, note = ledger_words(None, url, environ={"RUNNER_LEDGER_URL": url})
    assert note == "" and _pasted(AdoptCommands(None, words).one("k"), {}) == ["adopt", "k", "--file", "--ledger", url]


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
