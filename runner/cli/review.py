"""`runner review`: the review page on loopback (library: :mod:`runner.review.server`)."""

from __future__ import annotations

from pathlib import Path

import click

from runner.cli.common import MANIFEST_PATH, Interrupted, guarded, resolve_state, say, state_option
from runner.ledger import LedgerBackend
from runner.manifest import load_manifest
from runner.review.page import PAGE_SIZE
from runner.review.server import ReviewServer
from runner.service.opening import refuse_moved
from runner.service.state import open_existing_ledger, open_ledger_at
from runner.storage.local import LocalStore

__all__ = ["review_cmd"]


@click.command("review")
@click.argument("manifest", type=MANIFEST_PATH)
@state_option
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True,
              help="Loopback port to serve on (0: any free port).")
@click.option("--page-size", type=click.IntRange(1, 500), default=PAGE_SIZE, show_default=True,
              help="Rows (a request and its repeats) per page.")
@guarded
def review_cmd(manifest: Path, state_dir: Path | None, port: int, page_size: int) -> None:
    """Serve MANIFEST's videos as a review page on http://127.0.0.1:PORT/ until Ctrl-C.

    Paginated, videos load only when played; filter by state, model and variable;
    the repeats of one request side by side. Accept or reject with the buttons or
    the keys a / r (←/→ to move); decisions go to the ledger at once (rejected
    clips leave exports; `runner regenerate` queues fresh samples of them). Only
    this machine can reach the page. `runner report` still writes a static page
    to share.

    \b
    Examples:
      runner review manifests/demo.yaml            # then open http://127.0.0.1:8766/
      runner review manifests/demo.yaml --port 0   # any free port (printed)
    """
    spec = load_manifest(manifest)
    state = resolve_state(state_dir, manifest)

    def writer() -> LedgerBackend:
        return open_ledger_at(state, create=False)

    with open_existing_ledger(state, readonly=True, spec=spec, manifest=manifest) as reader:
        refuse_moved(reader, "nothing was served")  # its decisions would be saved where no run sees them
        server = ReviewServer(reader, writer, LocalStore(state), spec.name, port=port, page_size=page_size)
        click.echo(server.url, nl=True)
        say(f"reviewing {spec.name} at {server.url} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except Interrupted:
            say("review stopped")
        finally:
            server.shutdown()
