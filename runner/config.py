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

The API key is not a setting: it is read from ``NOVITA_API_KEY`` by the
client's helper and never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runner.errors import UsageError

__all__ = ["RunSettings", "resolve_settings"]

InDoubtPolicy = Literal["hold", "resubmit"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    concurrency: int = 4
    rpm: float | None = 20.0
    poll_rpm: float | None = 120.0
    poll_interval: float = 3.0
    downloads: int = 4
    budget_usd: float | None = None
    in_doubt: InDoubtPolicy = "hold"
    max_runtime: float | None = None


_ENV = {
    "concurrency": "RUNNER_CONCURRENCY",
    "rpm": "RUNNER_RPM",
    "poll_rpm": "RUNNER_POLL_RPM",
    "poll_interval": "RUNNER_POLL_INTERVAL",
    "downloads": "RUNNER_DOWNLOADS",
    "budget_usd": "RUNNER_BUDGET_USD",
    "in_doubt": "RUNNER_IN_DOUBT",
    "max_runtime": "RUNNER_MAX_RUNTIME",
}

_NULLS = {"", "none", "null", "off", "unlimited"}


def _convert(name: str, raw: Any, source: str) -> Any:
    if name == "in_doubt":
        value = str(raw).strip().lower()
        if value not in ("hold", "resubmit"):
            raise UsageError(f"{source}: in-doubt policy must be 'hold' or 'resubmit', not {raw!r}")
        return value
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NULLS):
        if name in ("rpm", "poll_rpm", "budget_usd", "max_runtime"):
            return None
        raise UsageError(f"{source}: {name} needs a value")
    try:
        number = int(raw) if name in ("concurrency", "downloads") else float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: {name} must be a number, not {raw!r}") from None
    if number <= 0 and not (name == "budget_usd" and number == 0):
        raise UsageError(f"{source}: {name} must be greater than 0, not {raw!r}")
    return number


def resolve_settings(
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    manifest: Mapping[str, Any],
) -> RunSettings:
    """Merge the sources, highest first: flags, environment, manifest, defaults.

    ``flags`` and ``manifest`` map setting names to values; a value of None in
    ``flags`` means the flag was not given.
    """
    values: dict[str, Any] = {}
    for name, env_name in _ENV.items():
        if flags.get(name) is not None:
            values[name] = _convert(name, flags[name], f"--{name.replace('_', '-')}")
        elif env_name in environ:
            values[name] = _convert(name, environ[env_name], env_name)
        elif name in manifest:
            values[name] = _convert(name, manifest[name], f"manifest {name}")
    return RunSettings(**values)
