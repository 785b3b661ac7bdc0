"""Run settings and where they come from.

Precedence, fixed and tested: command-line flag > environment variable >
manifest (``limits:`` and top-level policy keys) > built-in default.

| setting       | flag              | environment            | manifest              | default |
|---------------|-------------------|------------------------|-----------------------|---------|
| concurrency   | --concurrency     | RUNNER_CONCURRENCY     | limits.concurrency    | 4       |
| rpm           | --rpm             | RUNNER_RPM             | limits.rpm            | 20      |
| poll_rpm      | --poll-rpm        | RUNNER_POLL_RPM        | limits.poll_rpm       | 120     |
| poll_interval | --poll-interval   | RUNNER_POLL_INTERVAL   | limits.poll_interval  | 3.0     |
| downloads     | --downloads       | RUNNER_DOWNLOADS       | limits.downloads      | 4       |
| budget_usd    | --budget          | RUNNER_BUDGET_USD      | limits.budget_usd     | none    |
| in_doubt      | --in-doubt        | RUNNER_IN_DOUBT        | in_doubt              | hold    |
| max_runtime   | --max-runtime     | RUNNER_MAX_RUNTIME     | —                     | none    |
| read_timeout  | —                 | RUNNER_READ_TIMEOUT    | —                     | 60      |
| download_timeout | —              | RUNNER_DOWNLOAD_TIMEOUT | —                    | 120     |
| download_max_bytes | —            | RUNNER_DOWNLOAD_MAX_BYTES | —                  | 2 GiB   |

A download's deadline is ``max(download_timeout, size / 100 kB/s)``; a result
larger than ``download_max_bytes`` is refused (see :mod:`runner.client.download`).

A blank environment variable counts as unset (a cron line's ``RUNNER_RPM=``
does not lift the rate limit); ``none`` (or ``off``, ``unlimited``) lifts a
limit that may be lifted. A bad value is a :class:`~runner.errors.UsageError`
naming its source (``--budget``, ``RUNNER_RPM``, ``manifest limits.rpm``).

The API key is not a setting: it is read from ``NOVITA_API_KEY`` by the
client's helper and never stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runner.errors import UsageError

__all__ = ["RunSettings", "resolve_settings"]

InDoubtPolicy = Literal["hold", "resubmit"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The resolved knobs of one run; None means "no limit"."""

    concurrency: int = 4
    rpm: float | None = 20.0
    poll_rpm: float | None = 120.0
    poll_interval: float = 3.0
    downloads: int = 4
    budget_usd: float | None = None
    in_doubt: InDoubtPolicy = "hold"
    max_runtime: float | None = None
    read_timeout: float = 60.0  # seconds to wait for a response once a request is sent
    download_timeout: float = 120.0  # minimum overall deadline of one download attempt
    download_max_bytes: int = 2 * 1024**3  # a result video larger than this is refused


_ENV = {
    "concurrency": "RUNNER_CONCURRENCY",
    "rpm": "RUNNER_RPM",
    "poll_rpm": "RUNNER_POLL_RPM",
    "poll_interval": "RUNNER_POLL_INTERVAL",
    "downloads": "RUNNER_DOWNLOADS",
    "budget_usd": "RUNNER_BUDGET_USD",
    "in_doubt": "RUNNER_IN_DOUBT",
    "max_runtime": "RUNNER_MAX_RUNTIME",
    "read_timeout": "RUNNER_READ_TIMEOUT",
    "download_timeout": "RUNNER_DOWNLOAD_TIMEOUT",
    "download_max_bytes": "RUNNER_DOWNLOAD_MAX_BYTES",
}

_FLAGS = {
    "concurrency": "--concurrency",
    "rpm": "--rpm",
    "poll_rpm": "--poll-rpm",
    "poll_interval": "--poll-interval",
    "downloads": "--downloads",
    "budget_usd": "--budget",
    "in_doubt": "--in-doubt",
    "max_runtime": "--max-runtime",
    "read_timeout": "--read-timeout",  # no such flag today; named for completeness
    "download_timeout": "--download-timeout",  # idem
    "download_max_bytes": "--download-max-bytes",  # idem
}

_MANIFEST_KEYS = {"in_doubt": "in_doubt"}  # the rest live under ``limits:``

_INTEGERS = frozenset({"concurrency", "downloads", "download_max_bytes"})
_NULLABLE = frozenset({"rpm", "poll_rpm", "budget_usd", "max_runtime"})  # None: no cap / no limit
_ZERO_OK = frozenset({"budget_usd"})  # a budget of 0 submits nothing
_NULLS = {"none", "null", "off", "unlimited"}


def _convert(name: str, raw: Any, source: str) -> Any:
    """One raw value (flag text, environment text or YAML scalar) as the setting's type.

    ``source`` names where it came from, for the message of the UsageError.
    """
    if name == "in_doubt":
        value = str(raw).strip().lower()
        if value not in ("hold", "resubmit"):
            raise UsageError(f"{source}: the in-doubt policy must be 'hold' or 'resubmit', not {raw!r}")
        return value
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NULLS):
        if name in _NULLABLE:
            return None
        raise UsageError(f"{source}: {name} needs a number, not {raw!r}")
    if isinstance(raw, bool) or (isinstance(raw, str) and not raw.strip()):
        raise UsageError(f"{source}: {name} needs a number, not {raw!r}")
    try:
        number: float = float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: {name} must be a number, not {raw!r}") from None
    if not math.isfinite(number):
        hint = " (say 'none' for no limit)" if name in _NULLABLE else ""
        raise UsageError(f"{source}: {name} must be a finite number, not {raw!r}{hint}")
    if name in _INTEGERS:
        if not number.is_integer():
            raise UsageError(f"{source}: {name} must be a whole number, not {raw!r}")
        number = int(number)
    if number < 0 or (number == 0 and name not in _ZERO_OK):
        floor = "0 or more" if name in _ZERO_OK else "greater than 0"
        raise UsageError(f"{source}: {name} must be {floor}, not {raw!r}")
    return number


def resolve_settings(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    manifest: Mapping[str, Any],
) -> RunSettings:
    """Merge the sources, highest first: flags, environment, manifest, defaults.

    ``flags`` and ``manifest`` map setting names to values. A value of None in
    ``flags`` means the flag was not given; a blank environment variable counts
    as unset. In ``manifest``, None means "no limit" for the settings that may
    have none (rpm, poll_rpm, budget_usd, max_runtime) and "not said" for the
    others. Raises :class:`~runner.errors.UsageError` naming the flag, the
    variable or the manifest key of a bad value.
    """
    values: dict[str, Any] = {}
    for name, env_name in _ENV.items():
        env_value = environ.get(env_name)
        if flags.get(name) is not None:
            values[name] = _convert(name, flags[name], _FLAGS[name])
        elif env_value is not None and env_value.strip():
            values[name] = _convert(name, env_value, env_name)
        elif name in manifest and (manifest[name] is not None or name in _NULLABLE):
            key = _MANIFEST_KEYS.get(name, f"limits.{name}")
            values[name] = _convert(name, manifest[name], f"manifest {key}")
    return RunSettings(**values)
