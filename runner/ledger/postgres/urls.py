"""PostgreSQL ledger URLs: telling one from a state folder, and naming one without its password.

The password (in the URL, ``PGPASSWORD`` or ``~/.pgpass``) appears in no message, log line or location:
:func:`redacted` gives the URL to show, :func:`scrub` takes a secret out of a driver's message.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from runner.errors import LedgerError

__all__ = ["is_postgres_url", "redacted", "scrub", "without_password"]

_PASSWORD_IN_URL = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):[^@]*@")  # user:password@ (libpq: up to the first @)
_QUERY = re.compile(r"(postgres(?:ql)?://[^?\s]*)\?(\S*)")  # the URL's parameters, where libpq takes a password too


def is_postgres_url(target: str) -> bool:
    """Whether ``target`` names a PostgreSQL ledger (``postgresql://…`` or ``postgres://…``)."""
    return re.match(r"postgres(ql)?://", target) is not None


def redacted(url: str) -> tuple[str, str | None]:
    """(``postgresql://user@host:port/dbname``, the password or ``None``) of a libpq URL or conninfo."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception as exc:
        raise LedgerError(f"not a PostgreSQL URL: {scrub(str(exc), url)} (expected "
                          "postgresql://user@host:port/dbname)") from None
    user = f"{quote(str(info['user']), safe='')}@" if info.get("user") else ""
    host = str(info.get("host") or "")
    netloc = f"[{host}]" if ":" in host else (quote(host, safe="") if host.startswith("/") else host)
    port = f":{info['port']}" if info.get("port") else ""
    password = info.get("password")
    return f"postgresql://{user}{netloc}{port}/{info.get('dbname') or ''}", None if password is None else str(password)


def scrub(message: str, *secrets: str | None) -> str:
    """``message`` with each secret in it replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def without_password(text: str) -> str:
    """``text`` (a URL, or a word that holds one) as typed, its password left out — its parameters kept (a schema's
    ``options=-csearch_path…``, ``sslmode``): a command printed for pasting that finds the same ledger."""
    return _QUERY.sub(_no_password_parameter, _PASSWORD_IN_URL.sub(r"\1@", text))


def _no_password_parameter(url: re.Match[str]) -> str:
    """A URL's ``?a=1&password=…`` without its password (``?password=``, its key percent-encoded too)."""
    kept = [pair for pair in url[2].split("&") if unquote(pair.partition("=")[0]) != "password"]
    return url[1] + ("?" + "&".join(kept) if any(kept) else "")
