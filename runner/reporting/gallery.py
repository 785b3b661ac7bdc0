"""``runner report``: a static HTML page to review a batch (no server needed).

    DIR/index.html     self-contained: inline CSS and a few lines of JS
    DIR/videos/…       the videos, hard-linked (or copied) from the state dir;
                       with ``copy_videos=False`` the page links into the state dir instead
    DIR/inputs/…       the input images of image-to-video jobs, named by content (when found)
    DIR/pages/…        a batch of more than PER_PAGE (200) jobs: the pages of cards, index.html links them
                       (:mod:`runner.reporting.gallery_pages`)

Videos sit in ``<video>`` elements grouped by matrix variables (the first
axis by default), each with a caption: the other variables, the prompt, the
state, the model and the estimated cost; an image-to-video clip shows its input image (a
thumbnail: a URL as is, a local file copied from ``inputs_root`` if its bytes still match the
recorded sha256, else its name). Jobs without a video show their state and,
when they failed, the reason; failed, lost and in-doubt jobs are listed
again in a table at the end, with the header's counts and spend.
Links are relative, so the folder can be moved or published as a whole.

The jobs are read twice, none held (the variables to group by, then the cards); each card goes to a spill file
as it is made and the page takes the cards back group by group (:mod:`runner.reporting.gallery_page`, which makes
the HTML): memory stays flat however big the batch (a 200k-job report held 910 MiB).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from runner.errors import DiskError, RunnerError, UsageError
from runner.host import place_tag
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.reporting.gallery_files import forget_unshown
from runner.reporting.gallery_page import INDEX, PROBLEMS, Spill, card, problem_row, url, write_page
from runner.reporting.gallery_pages import PAGES, forget_pages, write_index, write_pages
from runner.reporting.inputs import JobInput, job_inputs, write_input
from runner.reporting.left_behind import LeftBehind
from runner.reporting.links_out import refuse_links_out
from runner.reporting.stored_copy import stored_elsewhere
from runner.reporting.ticker import Ticker
from runner.reporting.whole_file import whole_file
from runner.storage import OutputStore
from runner.storage.api import WHOLE_DISK_ERRNOS, whole_disk_fix
from runner.storage.folder_sync import sync_folders_of
from runner.storage.local import LocalStore
from runner.storage.ownership import refused

__all__ = ["GalleryResult", "write_gallery"]

VIDEOS = "videos"
INPUTS = "inputs"


@dataclass(slots=True)
class GalleryResult:
    index: Path
    jobs: int = 0
    videos: int = 0
    groups: int = 0
    pages: int = 1  # index.html, and the pages of a paged report (runner.reporting.gallery_pages)
    missing: list[str] = field(default_factory=list)
    removed: int = 0  # videos an earlier report wrote into the folder and this one no longer shows
    changed: list[str] = field(default_factory=list)  # such videos kept: changed since the report wrote them
    only_copy: list[str] = field(default_factory=list)  # such videos kept: the state directory holds no other copy


def write_gallery(
    ledger: LedgerBackend,
    manifest: str,
    dest: Path,
    *,
    axes: Sequence[str] = (),
    group_by: Sequence[str] | None = None,
    copy_videos: bool = True,
    model: str | None = None,
    now: float | None = None,
    store: OutputStore | None = None,
    inputs_root: Path | None = None,
    include_rejected: bool = False,
    ticker: Ticker | None = None,
) -> GalleryResult:
    """Write ``dest/index.html`` (and ``dest/videos/``) for ``manifest``; returns what it holds.

    ``axes`` are the manifest's matrix variables in order: the first one present
    groups the page unless ``group_by`` names the variables to group by. The
    videos are read from ``store`` (by default the ledger's state directory);
    local input images from ``inputs_root`` (the manifest's folder; None: named only). Videos the
    operator rejected (``runner reject``) are left out unless ``include_rejected``. ``ticker`` is told of each
    card made.
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--to {dest} is a file; the report is a folder (DIR/index.html)")
    for folder in (VIDEOS, INPUTS, PAGES):  # before anything is written (also with --no-copy: an old videos/ is pruned)
        refuse_links_out(dest, f"{folder}/-")
    # Two passes over the jobs, none of them held: the variables (to group by) first, then the cards.
    seen_vars: dict[str, None] = {}
    jobs, show_repeat, models = 0, False, set()
    first = ledger.iter_jobs(manifest)
    if ticker is not None:
        first = ticker.over(first, ledger.total(manifest), "report: {done} of {total} job(s) read (their variables)")
    for job in first:
        if not include_rejected and job.review == "rejected":
            continue
        jobs += 1
        show_repeat = show_repeat or job.repeat > 1
        models.add(job.model)
        for name in job.vars:
            seen_vars.setdefault(name)
    if group_by:
        unknown = [name for name in group_by if name not in seen_vars]
        if unknown and not jobs:  # not "not a variable (variables: none)" of a manifest whose file has them
            raise UsageError(f"--group-by {', '.join(unknown)}: this ledger holds no job of {manifest} to group yet"
                             f" (run the manifest first, or point --state at the state directory of its run)")
        if unknown:
            raise UsageError(f"--group-by {', '.join(unknown)}: not a variable of {manifest}"
                             f" (variables: {', '.join(seen_vars) or 'none'})")
        keys = list(group_by)
    else:
        keys = [next((name for name in axes if name in seen_vars), None) or next(iter(seen_vars), "")][:1]
        keys = [k for k in keys if k]
    result = GalleryResult(index=dest / INDEX)
    written: dict[str, str] = {}  # under videos/: name → sha256 (what the next report may remove)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        left = LeftBehind(dest)  # what a killed report left beside each video it places (whole_file clears its own)
        # the cards and the table's rows, unnamed files in DIR (gone with the process, however it ends)
        with tempfile.TemporaryFile(dir=dest) as card_file, tempfile.TemporaryFile(dir=dest) as row_file:
            cards, problems = Spill(card_file), Spill(row_file)
            _cards(ledger, manifest, dest, result, written, cards, problems, left, keys=keys, store=store,
                   include_rejected=include_rejected, copy_videos=copy_videos, show_repeat=show_repeat,
                   inputs_root=inputs_root, tick=ticker.of(jobs) if ticker is not None else None)
            result.groups = len(cards.spans)
            placed = [f"{VIDEOS}/{name}" for name in written] + ([f"{INPUTS}/-"] if (dest / INPUTS).is_dir() else [])
            sync_folders_of(dest, placed)  # the files' folder entries on the disk before the page shows them
            names, when = model or ", ".join(sorted(models)), time.time() if now is None else now
            pages = []
            if result.jobs > cards.per_page:  # pages of their own under DIR/pages/, the index links them
                pages = write_pages(dest, ledger, manifest, keys, cards, problems, jobs=result.jobs, models=names,
                                    now=when, ticker=ticker)
                sync_folders_of(dest, pages)
                write_index(dest / INDEX, ledger, manifest, keys, cards, problems, jobs=result.jobs, models=names,
                            now=when)
            else:
                with whole_file(dest / INDEX, follow=False) as out:  # no temporary file left on a full disk
                    write_page(out, ledger, manifest, keys, cards, problems, jobs=result.jobs, models=names, now=when)
                    crash_point("report-page")  # tests: killed with the page written, not yet in place
            result.pages = 1 + len(pages)
            forget_pages(dest, pages)
        if (dest / VIDEOS).is_dir():
            result.removed, result.changed, result.only_copy = forget_unshown(
                dest / VIDEOS, written, lambda path, sha: stored_elsewhere(ledger, store, path, sha))
    except OSError as exc:  # a full disk or the file size limit: exit 6 and its fix, as an export's (it was 3)
        if exc.errno in WHOLE_DISK_ERRNOS:
            raise DiskError(f"cannot write the report to {dest}: {exc.strerror or exc}; {whole_disk_fix(exc.errno)}"
                            ) from exc
        if (whose := refused(exc)) is not None:  # another user's (a `sudo runner report` before): exit 6, was 3
            raise DiskError(f"cannot write the report to {dest}: {exc.strerror}: {whose}") from exc
        raise RunnerError(f"cannot write the report to {dest}: {exc.strerror or exc}") from exc
    return result


def _shown(ledger: LedgerBackend, manifest: str, include_rejected: bool) -> Iterator[JobRecord]:
    return (job for job in ledger.iter_jobs(manifest) if include_rejected or job.review != "rejected")


def _cards(ledger: LedgerBackend, manifest: str, dest: Path, result: GalleryResult, written: dict[str, str],
           cards: Spill, problems: Spill, left: LeftBehind, *, keys: list[str], store: OutputStore,
           include_rejected: bool, copy_videos: bool, show_repeat: bool, inputs_root: Path | None,
           tick: Ticker | None) -> None:
    """Each job's card into ``cards`` (its video placed in DIR/videos/, its input images in DIR/inputs/), a failed,
    lost or in-doubt job's row into ``problems``; counted in ``result``."""
    for job in _shown(ledger, manifest, include_rejected):
        if tick is not None:
            tick()
        result.jobs += 1
        src = None
        if job.state is JobState.DONE and job.path is not None:
            if store.exists(job.path):
                if copy_videos:
                    rel = f"{VIDEOS}/{PurePosixPath(job.output or job.path).as_posix()}"
                    if ".." in PurePosixPath(rel).parts:
                        raise RunnerError(f"output name {job.output!r} leaves the report folder")
                    refuse_links_out(dest, rel)  # a folder of the output name linked out of DIR
                    left.clear(rel)
                    store.export(job.path, dest / rel, writer=place_tag())
                    written[rel.removeprefix(f"{VIDEOS}/")] = job.sha256 or ""
                    src = url(rel)
                else:
                    source = store.locate(job.path)  # a local path, or a remote store's URL
                    src = (source if isinstance(source, str)
                           else url(Path(os.path.relpath(source.resolve(), dest.resolve())).as_posix()))
                result.videos += 1
            else:
                result.missing.append(job.key)
        group = tuple(str(job.vars.get(name, "—")) for name in keys)
        shown = {name: value for name, value in job.vars.items() if name not in keys}
        thumbs = [(item, _thumb_src(item, inputs_root, dest)) for item in job_inputs(job)]
        cards.add(group, card(job, shown, src, show_repeat=show_repeat, thumbs=thumbs))
        if job.state in PROBLEMS:
            problems.add((), problem_row(job))


def _thumb_src(item: JobInput, root: Path | None, dest: Path) -> str | None:
    """Where the page finds an input image: its URL, or a verified copy under ``dest/inputs/``."""
    if item.kind != "image":
        return None
    if item.url is not None:
        return item.url
    rel = f"{INPUTS}/{(item.sha256 or '')[:24]}.{item.extension}"
    return url(rel) if write_input(item, root, dest / rel) else None
