"""`runner report`: a static HTML gallery of a manifest's videos, to review a batch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from runner.cli.common import MANIFEST_PATH, guarded, say, state_option
from runner.reporting.ticker import Ticker
from runner.service.reading import gallery

__all__ = ["report_cmd"]


@click.command("report")
@click.argument("manifest", type=MANIFEST_PATH)
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write index.html (and videos/) into.")
@state_option
@click.option("--group-by", "group_by", multiple=True, metavar="VAR",
              help="Group the videos by this variable (repeatable; default: the first matrix axis).")
@click.option("--no-copy", "no_copy", is_flag=True,
              help="Link the videos where they are in the state directory instead of hard-linking them into DIR.")
@click.option("--include-rejected", is_flag=True,
              help="Show the clips rejected in review too (left out by default), each marked rejected.")
@guarded
def report_cmd(manifest: Path, dest: Path, state_dir: Path | None, group_by: tuple[str, ...], no_copy: bool,
               include_rejected: bool) -> None:
    """Write a static HTML page to review MANIFEST's videos: no server needed, open it in a browser.

    Videos are grouped by matrix variables, each captioned with its other
    variables, prompt, state and estimated cost; failed, lost and in-doubt jobs
    show their reasons. The page is self-contained except the video files,
    which it links relatively (hard-linked into DIR/videos/ unless --no-copy).
    Clips rejected in review (runner reject) are left out unless
    --include-rejected, which shows them marked rejected.

    \b
    Examples:
      runner report manifests/demo.yaml --to report/ && xdg-open report/index.html
      runner report manifests/cities.yaml --to review/ --group-by style --group-by time
      runner report manifests/cities.yaml --to all/ --include-rejected
    """
    result = gallery(manifest, dest, state_dir, group_by=group_by, copy_videos=not no_copy,
                     include_rejected=include_rejected,
                     ticker=Ticker(say, "report: {done} of {total} job(s) on the page", tty=sys.stderr.isatty()))
    pages = f" on {result.pages} page(s) (index.html links the others, in {dest / 'pages'})" if result.pages > 1 else ""
    say(f"{result.jobs} job(s), {result.videos} video(s) in {result.groups} group(s){pages}")
    if result.missing:
        say(f"{len(result.missing)} done job(s) have no file any more (first: {result.missing[0]})", "warning")
    if result.removed:
        say(f"{result.removed} video(s) no longer shown removed from {dest / 'videos'} (rejected, or dropped by an edit)")
    if result.changed:
        say(f"{len(result.changed)} video(s) no longer shown left in {dest / 'videos'}: changed since the report wrote"
            f" them (first: {result.changed[0]})", "warning")
    if result.only_copy:
        say(f"{len(result.only_copy)} video(s) no longer shown left in {dest / 'videos'}: the state directory holds"
            f" no other copy (first: {result.only_copy[0]}): keep them; `runner verify` names the stored files missing",
            "warning")
    click.echo(str(result.index))
