"""Run settings and where they come from.

Precedence, fixed and tested: command-line flag > environment variable >
manifest (``limits:`` and top-level policy keys) > built-in default.

| setting       | flag              | environment            | manifest              | default |
|---------------|-------------------|------------------------|-----------------------|---------|
| concurrency   | --concurrency     | RUNNER_CONCURRENCY     | limits.concurrency    | 4       |
| rpm           | --rpm             | RUNNER_RPM             | limits.rpm            | 20      |
| poll_rpm      | --poll-rpm        | RUNNER_POLL_RPM        | limits.poll_rpm       | none    |
| poll_interval | --poll-interval   | RUNNER_POLL_INTERVAL   | limits.poll_interval  | 3.0     |
| downloads     | --downloads       | RUNNER_DOWNLOADS       | limits.downloads      | none    |
| budget_usd    | --budget          | RUNNER_BUDGET_USD      | limits.budget_usd     | none    |
| in_doubt      | --in-doubt        | RUNNER_IN_DOUBT        | in_doubt              | hold    |
| max_runtime   | --max-runtime     | RUNNER_MAX_RUNTIME     | —                     | none    |
| read_timeout  | —                 | RUNNER_READ_TIMEOUT    | —                     | 60      |
| download_timeout | —              | RUNNER_DOWNLOAD_TIMEOUT | —                    | 120     |
| download_max_bytes | —            | RUNNER_DOWNLOAD_MAX_BYTES | —                  | 2 GiB   |
| inline_memory | —                 | RUNNER_INLINE_MEMORY   | —                     | 256 MiB |

This table is the docstring's copy of :data:`SETTINGS` (sources) and of
:class:`RunSettings`' field defaults (the only place a default is written);
``tests/unit/test_settings_sources.py`` keeps it, ``runner run --help``,
``docs/manifest.md`` and the README in step with them. Every source is read by
:func:`convert`, so a flag, a variable and a manifest key accept the same
values (``none``/``null`` for a liftable limit) with the same words.

A download's deadline is ``max(download_timeout, size / 100 kB/s)``; a result
larger than ``download_max_bytes`` is refused (see :mod:`runner.client.download`).
``inline_memory`` bounds the bytes of request bodies carrying local images inline
that are built and on the wire at once (a larger body goes alone; see
:mod:`runner.engine.room`): a property of the machine, not of a manifest.

A blank environment variable counts as unset (a cron line's ``RUNNER_RPM=``
does not lift the rate limit); ``none`` (or ``off``, ``unlimited``) lifts a
limit that may be lifted. A bad value is a :class:`~runner.errors.UsageError`
naming its source (``--budget``, ``RUNNER_RPM``, ``manifest limits.rpm``).

The API key is not a setting: it is read from ``NOVITA_API_KEY`` by the
client's helper and never stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from runner.errors import UsageError

__all__ = ["BY_NAME", "DEFAULTS", "IN_DOUBT_POLICIES", "MAX_DOWNLOADS", "SETTINGS", "RunSettings", "Setting", "convert",
           "default_text", "download_workers", "liftable", "resolve_one", "resolve_settings"]

InDoubtPolicy = Literal["hold", "resubmit"]
IN_DOUBT_POLICIES: tuple[str, ...] = get_args(InDoubtPolicy)  # what --in-doubt, RUNNER_IN_DOUBT and in_doubt: accept


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The resolved knobs of one run; None means "no limit".

    Its field defaults are the only place a setting's default is written: the
    flags' help, the manifest's ``limits:`` and :class:`runner.engine.EngineConfig`
    take theirs from :data:`DEFAULTS`.
    """

    concurrency: int = 4
    rpm: float | None = 20.0
    poll_rpm: float | None = None  # no fixed cap: polls follow the tasks' due times and back off on 429
    poll_interval: float = 3.0
    downloads: int | None = None  # None: one per 8 tasks outstanding (at least 4, at most 1024): see download_workers
    budget_usd: float | None = None
    in_doubt: InDoubtPolicy = "hold"
    max_runtime: float | None = None
    read_timeout: float = 60.0  # seconds to wait for a response once a request is sent
    download_timeout: float = 120.0  # minimum overall deadline of one download attempt
    download_max_bytes: int = 2 * 1024**3  # a result video larger than this is refused
    inline_memory: int = 256 * 1024**2  # bytes of inline request bodies (images sent inline) in memory at once


@dataclass(frozen=True, slots=True)
class Setting:
    """Where one setting may be said: its flag, variable and manifest key (None: not there), and what it is."""

    name: str
    flag: str | None
    env: str | None
    manifest_key: str | None
    help: str


# The one table of sources; the defaults are RunSettings' own (``DEFAULTS``), never typed twice.
SETTINGS: tuple[Setting, ...] = (
    Setting("concurrency", "--concurrency", "RUNNER_CONCURRENCY", "limits.concurrency",
            "Tasks outstanding at the provider at once."),
    Setting("rpm", "--rpm", "RUNNER_RPM", "limits.rpm", "Submit requests per minute; 'none' for no cap."),
    Setting("poll_rpm", "--poll-rpm", "RUNNER_POLL_RPM", "limits.poll_rpm",
            "Task-result requests per minute, at most; by default ('none') polls follow the tasks' due times and"
            " slow down on the provider's 429s."),
    Setting("poll_interval", "--poll-interval", "RUNNER_POLL_INTERVAL", "limits.poll_interval",
            "Seconds between polls of one task, at least."),
    Setting("downloads", "--downloads", "RUNNER_DOWNLOADS", "limits.downloads",
            "Downloads at once (at most 1024: a larger number runs 1024, with a warning); by default ('none') one per 8"
            " tasks of --concurrency (at least 4, at most 1024)."),
    Setting("budget_usd", "--budget", "RUNNER_BUDGET_USD", "limits.budget_usd",
            "Stop submitting before the manifest's estimated spend (every job it ever listed) passes this many USD;"
            " 'none' for no budget."),
    Setting("in_doubt", "--in-doubt", "RUNNER_IN_DOUBT", "in_doubt",
            "What to do with jobs whose submit may or may not have created a task: 'hold' them or 'resubmit'"
            " (pay again)."),
    Setting("max_runtime", "--max-runtime", "RUNNER_MAX_RUNTIME", None,
            "Stop gracefully after this many seconds (exit 3); for cron. 'none' for no limit."),
    Setting("read_timeout", None, "RUNNER_READ_TIMEOUT", None, "Seconds to wait for a response once a request is sent."),
    Setting("download_timeout", None, "RUNNER_DOWNLOAD_TIMEOUT", None,
            "Minimum overall deadline of one download attempt, in seconds."),
    Setting("download_max_bytes", None, "RUNNER_DOWNLOAD_MAX_BYTES", None, "A result video larger than this is refused."),
    Setting("inline_memory", None, "RUNNER_INLINE_MEMORY", None,
            "Bytes of request bodies carrying local images inline built and on the wire at once; a larger body goes"
            " alone."),
)
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
DEFAULTS = RunSettings()  # every default, once: the field defaults of RunSettings

MAX_DOWNLOADS = 1024  # downloads at once, at most: each is a task (a concurrency of 10^9 started 125 million)


def download_workers(downloads: int | None, concurrency: int) -> int:
    """Downloads at once: the setting, or one per 8 tasks outstanding (at least 4, at most :data:`MAX_DOWNLOADS`).

    Tasks finish about T apart per slot, so C slots need about C × d / T download workers for downloads of d
    seconds; one per 8 slots keeps up when d ≤ T / 8 (seconds of download against a minute of generation), while
    one per slot would cost CPU in idle connections for nothing (measured: bench/saturation.py, issue 14).
    """
    return downloads if downloads is not None else max(4, min(concurrency // 8, MAX_DOWNLOADS))


def default_text(name: str) -> str:
    """The default of a setting as the help and the docs show it: ``none`` for no limit."""
    value = getattr(DEFAULTS, name)
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def liftable(name: str) -> bool:
    """Whether 'none' (null in a manifest) is a value of this setting: no cap, no budget, no limit."""
    return name in _NULLABLE


def _source_name(name: str, where: str) -> str:
    setting = BY_NAME[name]
    if where == "flag":
        return setting.flag or f"--{name.replace('_', '-')}"
    return f"manifest {setting.manifest_key or f'limits.{name}'}"


_INTEGERS = frozenset({"concurrency", "downloads", "download_max_bytes", "inline_memory"})
_NULLABLE = frozenset({"rpm", "poll_rpm", "downloads", "budget_usd", "max_runtime"})  # None: no cap / no limit
_ZERO_OK = frozenset({"budget_usd"})  # a budget of 0 submits nothing
_NULLS = {"none", "null", "off", "unlimited"}


def convert(name: str, raw: Any, source: str) -> Any:
    """One raw value (flag text, environment text or YAML scalar) as the setting's type.

    ``source`` names where it came from, for the message of the UsageError.
    """
    if name == "in_doubt":
        value = str(raw).strip().lower()
        if value not in IN_DOUBT_POLICIES:
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
    if name == "downloads" and number > MAX_DOWNLOADS:  # asks for more than runner gives: never a refusal (exit 2)
        logging.getLogger("runner.config").warning(
            "%s: %s downloads at once is more than runner starts (each one is a task of its own); %s are", source,
            raw, f"{MAX_DOWNLOADS:,}")
        return MAX_DOWNLOADS
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
    have none (rpm, poll_rpm, downloads, budget_usd, max_runtime) and "not said" for the
    others. Raises :class:`~runner.errors.UsageError` naming the flag, the
    variable or the manifest key of a bad value.
    """
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        said = _said(setting.name, flags, environ, manifest)
        if said is not None:
            values[setting.name] = convert(setting.name, *said)
    return RunSettings(**values)


def resolve_one(name: str, *, flags: Mapping[str, Any], environ: Mapping[str, str],
                manifest: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Setting ``name`` alone, as :func:`resolve_settings` resolves it, and where it was said: its flag
    (``--budget``), its variable (``RUNNER_BUDGET_USD``) or its manifest key (``manifest limits.budget_usd``);
    None: the default. The other settings are not read (a bad ``RUNNER_RPM`` does not concern a budget)."""
    said = _said(name, flags, environ, manifest)
    if said is None:
        return getattr(DEFAULTS, name), None
    return convert(name, *said), said[1]


def _said(name: str, flags: Mapping[str, Any], environ: Mapping[str, str],
          manifest: Mapping[str, Any]) -> tuple[Any, str] | None:
    """The raw value of setting ``name`` from the first source that says it, highest first, and that source."""
    env_name = BY_NAME[name].env
    env_value = environ.get(env_name) if env_name is not None else None
    if flags.get(name) is not None:
        return flags[name], _source_name(name, "flag")
    if env_name is not None and env_value is not None and env_value.strip():
        return env_value, env_name
    if name in manifest and (manifest[name] is not None or name in _NULLABLE):
        return manifest[name], _source_name(name, "manifest")
    return None
