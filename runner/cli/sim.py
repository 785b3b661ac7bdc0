"""`runner simulate`: serve the built-in Novita simulator."""

from __future__ import annotations

import errno
import functools
from typing import Any

import anyio
import click

from runner.cli.common import guarded
from runner.errors import UsageError


def _parse_faults(items: tuple[str, ...]) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--fault takes NAME=VALUE (e.g. p_drop=0.05), not {item!r}")
        value = value.strip()
        faults[name.strip()] = None if value.lower() in ("null", "none") else value  # balance_usd=null: no balance
    return faults


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--api-key", default=None, help="Accept only this key (default: any non-empty key).")
@click.option("--task-seconds", type=float, default=3.0, show_default=True, help="Simulated time from submit to result.")
@click.option("--url-ttl", type=int, default=3600, show_default=True, help="Seconds a result URL stays valid.")
@click.option("--rpm", type=int, default=None, help="Enforce a submit requests-per-minute limit (429 beyond).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault dice.")
@click.option("--fault", "faults", multiple=True, metavar="NAME=P",
              help="A fault knob, e.g. p_drop=0.05, p_rate_limit=0.1, p_gateway=0.02, p_truncated=0.1, or a setting:"
                   " balance_usd=12.5 (null: the balance routes answer 404) (repeatable).")
@guarded
def simulate_cmd(host: str, port: int, api_key: str | None, task_seconds: float, url_ttl: int, rpm: int | None,
                 seed: int, faults: tuple[str, ...]) -> None:
    """Serve a simulator of Novita's Kling v3.0 video API, failures included.

    \b
    Examples:
      runner simulate --port 8765 --task-seconds 5
      runner simulate --fault p_drop=0.05 --fault p_rate_limit=0.2 --rpm 20
      curl -s -X POST localhost:8765/v3/async/kling-v3.0-pro-t2v \\
           -H 'Authorization: Bearer k' -H 'Content-Type: application/json' -d '{"prompt": "a fox"}'
    """
    from pydantic import ValidationError

    from runner.simulator import SimConfig, Simulator, serve_until_signalled

    try:
        config = SimConfig.model_validate({
            "api_key": api_key, "task_seconds": task_seconds, "video_url_ttl": url_ttl, "rpm": rpm, "seed": seed,
            **_parse_faults(faults),
        })
    except ValidationError as exc:
        raise UsageError(f"bad simulator setting: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    sim = Simulator(config)
    try:
        anyio.run(functools.partial(serve_until_signalled, sim, host=host, port=port))
    except (OSError, BaseExceptionGroup) as exc:
        refused = _bind_refusal(exc)
        if refused is None:
            raise
        raise UsageError(f"cannot listen on {host}:{port}: {refused.strerror or refused}; pick another --port"
                         " (0 picks a free one)") from refused


_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _bind_refusal(exc: BaseException) -> OSError | None:
    """The OSError saying the address cannot be listened on (in use, not ours, privileged), if that is what ended it."""
    if isinstance(exc, OSError):
        return exc if exc.errno in _BIND_ERRORS else None
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _bind_refusal(inner)
            if found is not None:
                return found
    return None
