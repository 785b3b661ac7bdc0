"""`runner verify`: check stored videos against the ledger; download missing or damaged ones again.

Library: :mod:`runner.review.verify`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from runner.cli.common import EXIT_FAILED, MANIFEST_PATH, base_url_option, guarded, resolve_state, say, state_option
from runner.client import NovitaClient, make_http_client
from runner.ledger import LedgerBackend
from runner.manifest import load_manifest
from runner.reporting.ticker import Ticker
from runner.review.verify import VerifyResult, check_again, check_files, put_back_files, restore_files
from runner.service.provider import provider_for_ledger
from runner.service.state import open_existing_ledger
from runner.service.stoppable import run_stoppable
from runner.storage.local import LocalStore

__all__ = ["verify_cmd"]


async def _restore(ledger: LedgerBackend, store: LocalStore, result: VerifyResult, base_url: str, key: str) -> None:
    async with make_http_client() as http:
        client = NovitaClient(http, base_url=base_url, api_key=key)
        await restore_files(ledger, store, client, result)


@click.command("verify")
@click.argument("manifest", type=MANIFEST_PATH)
@state_option
@base_url_option
@click.option("--check-only", is_flag=True, help="Only check and report; download nothing.")
@guarded
def verify_cmd(manifest: Path, state_dir: Path | None, base_url: str | None, check_only: bool) -> None:
    """Check every stored video of MANIFEST against its recorded sha256 and size, and download
    missing or damaged ones again while the provider still serves them (nothing is paid).

    A recorded result URL is used while valid, else a fresh one from the provider the
    ledger records, or --base-url / NOVITA_BASE_URL (a task-result GET). What could not be restored is listed with the reason, and the
    exit code is 1; 0 when every file is (again) as recorded.

    \b
    Examples:
      runner verify manifests/demo.yaml
      runner verify manifests/demo.yaml --check-only
    """
    spec = load_manifest(manifest)
    state = resolve_state(state_dir, manifest)
    store = LocalStore(state)
    # Checked read-only, the ledger's lock not taken: a cron run started while every video is read goes on (it was
    # refused, exit 75, for as long as the check took: most of an hour on a big batch); the lock only to restore.
    with open_existing_ledger(state, readonly=True, spec=spec, manifest=manifest) as ledger:
        ticker = Ticker(say, "verify: {done} of {total} stored video(s) checked", tty=sys.stderr.isatty())
        result = check_files(ledger, store, spec.name, ticker)
    for problem in result.problems:
        copy = f"  (a good copy is at {problem.copy}: `runner verify` puts it back)" if problem.copy else ""
        click.echo(f"{problem.key[:16]}  {problem.what:8} {problem.path}{copy}")
    if result.problems and not check_only:
        with open_existing_ledger(state, spec=spec, manifest=manifest) as ledger:
            result = put_back_files(ledger, store, check_again(ledger, store, result))
            if len(result.restored) < len(result.problems):
                endpoint, api_key = provider_for_ledger(ledger, base_url)
                run_stoppable(functools.partial(_restore, ledger, store, result, endpoint, api_key))  # Ctrl-C cuts it
    for key, why in result.not_restored:
        say(f"job {key}: not restored: {why}", "error")
    restored = f", {len(result.restored)} restored" if result.restored else ""
    click.echo(f"{result.checked} stored video(s) checked in {spec.name}: {len(result.problems)} missing or damaged"
               f"{restored}, {len(result.not_restored)} not restored")
    if result.not_restored or (check_only and result.problems):
        raise SystemExit(EXIT_FAILED)
