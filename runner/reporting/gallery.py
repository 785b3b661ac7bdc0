"""``runner report``: a static HTML page to review a batch (no server needed).

    DIR/index.html     self-contained: inline CSS and a few lines of JS
    DIR/videos/…       the videos, hard-linked (or copied) from the state dir;
                       with ``copy_videos=False`` the page links into the state dir instead
    DIR/inputs/…       the input images of image-to-video jobs, named by content (when found)

Videos sit in ``<video>`` elements grouped by matrix variables (the first
axis by default), each with a caption: the other variables, the prompt, the
state, the model and the estimated cost; an image-to-video clip shows its input image (a
thumbnail: a URL as is, a local file copied from ``inputs_root`` if its bytes still match the
recorded sha256, else its name). Jobs without a video show their state and,
when they failed, the reason; failed, lost and in-doubt jobs are listed
again in a table at the end, with the header's counts and spend.
Links are relative, so the folder can be moved or published as a whole.
"""

from __future__ import annotations

import html
import os
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner.errors import DiskError, RunnerError, UsageError
from runner.host import place_tag
from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.ledger.rescue import crash_point
from runner.reporting.gallery_files import forget_unshown
from runner.reporting.inputs import JobInput, job_inputs, write_input
from runner.reporting.left_behind import LeftBehind
from runner.reporting.links_out import refuse_links_out
from runner.reporting.stored_copy import stored_elsewhere
from runner.reporting.text import local_time
from runner.reporting.whole_file import whole_file
from runner.storage import OutputStore
from runner.storage.api import WHOLE_DISK_ERRNOS, whole_disk_fix
from runner.storage.folder_sync import sync_folders_of
from runner.storage.local import LocalStore
from runner.storage.ownership import refused

__all__ = ["GalleryResult", "write_gallery"]

INDEX = "index.html"
VIDEOS = "videos"
INPUTS = "inputs"
_PROBLEMS = (JobState.FAILED, JobState.LOST, JobState.IN_DOUBT)


@dataclass(slots=True)
class GalleryResult:
    index: Path
    jobs: int = 0
    videos: int = 0
    groups: int = 0
    missing: list[str] = field(default_factory=list)
    removed: int = 0  # videos an earlier report wrote into the folder and this one no longer shows
    changed: list[str] = field(default_factory=list)  # such videos kept: changed since the report wrote them
    only_copy: list[str] = field(default_factory=list)  # such videos kept: the state directory holds no other copy


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _url(path: str) -> str:
    return urllib.parse.quote(PurePosixPath(path).as_posix())


def _aspect(request: dict[str, Any]) -> str:
    ratio = str(request.get("aspect_ratio") or "16:9")
    width, _, height = ratio.partition(":")
    return f"{width} / {height}" if width.isdigit() and height.isdigit() else "16 / 9"


def _request_facts(request: dict[str, Any]) -> str:
    facts = []
    if request.get("duration") is not None:
        facts.append(f"{request['duration']} s")
    if request.get("aspect_ratio"):
        facts.append(str(request["aspect_ratio"]))
    if request.get("cfg_scale") is not None:
        facts.append(f"cfg {request['cfg_scale']}")
    if request.get("sound"):
        facts.append("sound")
    return " · ".join(facts)


def _prompt(request: dict[str, Any]) -> str:
    if request.get("prompt"):
        return str(request["prompt"])
    shots = request.get("multi_prompt") or []
    return " | ".join(f"[{s.get('duration', '?')} s] {s.get('prompt', '')}" for s in shots if isinstance(s, dict))


_CSS = """
:root { color-scheme: light; --ink:#1d2330; --muted:#5d6675; --line:#dde1e8; --bg:#f5f6f8; --card:#fff;
  --done:#1f8a4c; --failed:#c0392b; --lost:#8e1b10; --doubt:#b00020; --running:#1f6fb2; --pending:#7a8290; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: var(--ink); background: var(--bg); }
header { padding: 20px 28px 12px; background: var(--card); border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 24px; }
.meta, .spend { margin: 4px 0; color: var(--muted); }
.spend b { color: var(--ink); }
ul.counts { list-style: none; padding: 0; margin: 10px 0 4px; display: flex; flex-wrap: wrap; gap: 8px; }
ul.counts li { padding: 3px 10px; border-radius: 999px; background: var(--bg); border: 1px solid var(--line); }
ul.counts li.zero { opacity: .45; }
ul.counts li.s-done:not(.zero) { border-color: var(--done); color: var(--done); }
ul.counts li.s-failed:not(.zero), ul.counts li.s-lost:not(.zero) { border-color: var(--failed); color: var(--failed); }
ul.counts li.s-in_doubt:not(.zero) { background: var(--doubt); border-color: var(--doubt); color: #fff; }
nav { padding: 8px 28px; font-size: 14px; }
nav a { margin-right: 12px; color: var(--running); }
main { padding: 4px 28px 12px; }
section.group h2 { font-size: 18px; margin: 22px 0 10px; }
section.group h2 .var { color: var(--muted); font-weight: 500; }
section.group h2 small { color: var(--muted); font-weight: 400; margin-left: 8px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 16px; }
figure.card { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  overflow: hidden; display: flex; flex-direction: column; }
figure.card video, figure.card .placeholder { width: 100%; display: block; background: #111; }
figure.card .placeholder { display: flex; align-items: center; justify-content: center; color: #fff;
  font-weight: 600; letter-spacing: .04em; text-transform: uppercase; }
figure.s-failed .placeholder, figure.s-lost .placeholder { background: var(--failed); }
figure.s-in_doubt .placeholder { background: var(--doubt); }
figure.s-pending .placeholder { background: var(--pending); }
figure.s-running .placeholder, figure.s-submitting .placeholder, figure.s-succeeded .placeholder {
  background: var(--running); }
figcaption { padding: 10px 12px 12px; }
.vars { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.vars span { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 0 6px; font-size: 13px; }
.state { margin-left: auto; font-size: 12px; font-weight: 700; text-transform: uppercase; color: var(--muted); }
.s-done .state { color: var(--done); } .s-failed .state, .s-lost .state { color: var(--failed); }
.s-in_doubt .state { color: #fff; background: var(--doubt); padding: 0 6px; border-radius: 4px; }
.vars span.model { font-family: ui-monospace, monospace; font-size: 12px; }
.vars span.rejected { color: var(--failed); border-color: var(--failed); font-weight: 700; }
.inputs { display: flex; gap: 8px; margin: 8px 0 0; flex-wrap: wrap; }
.inputs figure { margin: 0; font-size: 12px; color: var(--muted); text-align: center; }
.inputs img { display: block; height: 72px; max-width: 128px; object-fit: contain; background: var(--bg);
  border: 1px solid var(--line); border-radius: 6px; }
.prompt { margin: 8px 0 4px; }
.small { margin: 0; font-size: 12.5px; color: var(--muted); }
.reason { margin: 6px 0 0; color: var(--failed); font-size: 13.5px; }
.missing { display: none; margin: 6px 0 0; color: var(--failed); font-weight: 600; }
figure[data-video="error"] .missing { display: block; }
section#problems { padding: 0 28px 24px; }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
td code, .small code { font-size: 12px; }
td:nth-child(2) { white-space: nowrap; }
footer { padding: 12px 28px 28px; color: var(--muted); font-size: 13px; }
"""

_JS = """
for (const video of document.querySelectorAll("video")) {
  const card = video.closest("figure");
  const mark = (state) => { card.dataset.video = state; };
  video.addEventListener("loadeddata", () => mark("loaded"));
  video.addEventListener("error", () => mark("error"));
  if (video.error) mark("error"); else if (video.readyState >= 2) mark("loaded");
}
"""


def _thumbs(thumbs: Sequence[tuple[JobInput, str | None]]) -> str:
    """The input images of a card: a thumbnail when there is something to show, else the name."""
    items = []
    for item, src in thumbs:
        if item.kind != "image":
            items.append(f'<figure><span>{_e(item.field)}: {_e(item.label)}</span></figure>')
        elif src is None:
            items.append(f'<figure title="{_e(item.sha256 or "")}"><span>{_e(item.field)}: {_e(item.label)}'
                         " (not found)</span></figure>")
        else:
            items.append(f'<figure><img src="{_e(src)}" alt="{_e(item.field)}: {_e(item.label)}" loading="lazy">'
                         f"<span>{_e(item.field)}</span></figure>")
    return f'<div class="inputs">{"".join(items)}</div>' if items else ""


def _card(job: JobRecord, shown_vars: dict[str, Any], src: str | None, *, show_repeat: bool,
          thumbs: Sequence[tuple[JobInput, str | None]] = ()) -> str:
    state = str(job.state)
    aspect = _aspect(job.request)
    if src is not None:
        # image-to-video: the clip has its input's shape, which only the file knows
        shape = f' style="aspect-ratio: {aspect}"' if "aspect_ratio" in job.request or not thumbs else ""
        media = f'<video src="{_e(src)}" controls muted loop playsinline preload="auto"{shape}></video>'
    else:
        label = "in doubt" if job.state is JobState.IN_DOUBT else state
        media = f'<div class="placeholder" style="aspect-ratio: {aspect}">{_e(label)}</div>'
    chips = f'<span class="model">{_e(job.model)}</span>'
    chips += "".join(f'<span>{_e(k)}: {_e(v)}</span>' for k, v in shown_vars.items())
    if show_repeat:
        chips += f"<span>repeat {_e(job.repeat)}</span>"
    label = "in doubt" if job.state is JobState.IN_DOUBT else state
    if job.review == "rejected":  # shown with include_rejected only
        chips += '<span class="rejected">rejected in review</span>'
    parts = [f'<div class="vars">{chips}<span class="state">{_e(label)}</span></div>', _thumbs(thumbs),
             f'<p class="prompt">{_e(_prompt(job.request))}</p>']
    negative = job.request.get("negative_prompt")
    facts = _request_facts(job.request)
    cost = f"~{job.spent_usd if job.spent_usd else job.estimated_usd:.2f} USD"
    parts.append(f'<p class="small">{_e(facts)} · {_e(cost)} · key <code>{_e(job.key)}</code></p>')
    if negative:
        parts.append(f'<p class="small">negative: {_e(negative)}</p>')
    if job.state in _PROBLEMS and (job.error or job.reason):
        parts.append(f'<p class="reason">{_e(job.error or job.reason)}</p>')
    if job.state is JobState.IN_DOUBT:
        parts.append('<p class="reason">the submit may have created a billed task whose id never arrived;'
                     ' decide with <code>runner retry --in-doubt</code></p>')
    if src is not None:
        parts.append('<p class="missing">the video file cannot be played or is missing</p>')
    return (f'<figure class="card s-{_e(state)}" data-key="{_e(job.key)}" data-state="{_e(state)}">'
            f'{media}<figcaption>{"".join(parts)}</figcaption></figure>')


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
) -> GalleryResult:
    """Write ``dest/index.html`` (and ``dest/videos/``) for ``manifest``; returns what it holds.

    ``axes`` are the manifest's matrix variables in order: the first one present
    groups the page unless ``group_by`` names the variables to group by. The
    videos are read from ``store`` (by default the ledger's state directory);
    local input images from ``inputs_root`` (the manifest's folder; None: named only). Videos the
    operator rejected (``runner reject``) are left out unless ``include_rejected``.
    """
    store = store if store is not None else LocalStore(ledger.state_dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--to {dest} is a file; the report is a folder (DIR/index.html)")
    for folder in (VIDEOS, INPUTS):  # before anything is written (also with --no-copy: an old videos/ is pruned)
        refuse_links_out(dest, f"{folder}/-")
    jobs = [job for job in ledger.iter_jobs(manifest) if include_rejected or job.review != "rejected"]
    seen_vars: dict[str, None] = {}
    for job in jobs:
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
    show_repeat = any(job.repeat > 1 for job in jobs)
    result = GalleryResult(index=dest / INDEX, jobs=len(jobs))
    groups: dict[tuple[str, ...], list[str]] = {}
    written: dict[str, str] = {}  # under videos/: name → sha256 (what the next report may remove)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        left = LeftBehind(dest)  # what a killed report left beside each video it places (whole_file clears its own)
        for job in jobs:
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
                        src = _url(rel)
                    else:
                        source = store.locate(job.path)  # a local path, or a remote store's URL
                        src = (source if isinstance(source, str)
                               else _url(Path(os.path.relpath(source.resolve(), dest.resolve())).as_posix()))
                    result.videos += 1
                else:
                    result.missing.append(job.key)
            group = tuple(str(job.vars.get(name, "—")) for name in keys)
            shown = {name: value for name, value in job.vars.items() if name not in keys}
            thumbs = [(item, _thumb_src(item, inputs_root, dest)) for item in job_inputs(job)]
            groups.setdefault(group, []).append(_card(job, shown, src, show_repeat=show_repeat, thumbs=thumbs))
        result.groups = len(groups)
        placed = [f"{VIDEOS}/{name}" for name in written] + ([f"{INPUTS}/-"] if (dest / INPUTS).is_dir() else [])
        sync_folders_of(dest, placed)  # the files' folder entries on the disk before the page shows them
        page = _page(ledger, manifest, keys, groups, jobs, model=model, now=time.time() if now is None else now)
        with whole_file(dest / INDEX, follow=False) as out:  # no temporary file left on a full disk
            out.write(page)
            crash_point("report-page")  # tests: killed with the page written, not yet in place
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


def _thumb_src(item: JobInput, root: Path | None, dest: Path) -> str | None:
    """Where the page finds an input image: its URL, or a verified copy under ``dest/inputs/``."""
    if item.kind != "image":
        return None
    if item.url is not None:
        return item.url
    rel = f"{INPUTS}/{(item.sha256 or '')[:24]}.{item.extension}"
    return _url(rel) if write_input(item, root, dest / rel) else None


def _page(ledger: LedgerBackend, manifest: str, keys: list[str], groups: dict[tuple[str, ...], list[str]],
          jobs: list[JobRecord], *, model: str | None, now: float) -> str:
    counts = ledger.counts(manifest)
    spent = ledger.spent_usd(manifest)
    pending = ledger.estimate_usd(manifest, [JobState.PENDING])
    chips = "".join(
        f'<li class="s-{s}{"" if counts[s] else " zero"}">{_e("in doubt" if s is JobState.IN_DOUBT else s)}'
        f" <b>{counts[s]}</b></li>" for s in JobState
    )
    models = model or ", ".join(sorted({job.model for job in jobs})) or "-"
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(manifest)} · runner report</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(manifest)}</h1>",
        f'<p class="meta">{_e(models)} · {len(jobs)} job(s) · report of {_e(local_time(now))}</p>',
        f'<ul class="counts">{chips}</ul>',
        (f'<p class="spend">Estimated spend so far: <b>{spent:.2f} USD</b> · pending jobs: ~{pending:.2f} USD'
        " · estimates from a price table, not the provider's bill</p></header>"),
    ]
    if len(groups) > 1:
        links = "".join(f'<a href="#g{i}">{_e(" · ".join(group))}</a>' for i, group in enumerate(groups, 1))
        out.append(f"<nav>{links}</nav>")
    out.append("<main>")
    for i, (group, cards) in enumerate(groups.items(), 1):
        title = " · ".join(f'<span class="var">{_e(k)} =</span> {_e(v)}' for k, v in zip(keys, group, strict=True))
        title = title or "all jobs"
        out.append(f'<section class="group" id="g{i}"><h2>{title}<small>{len(cards)} job(s)</small></h2>'
                   f'<div class="grid">{"".join(cards)}</div></section>')
    out.append("</main>")
    problems = [job for job in jobs if job.state in _PROBLEMS]
    if problems:
        rows = "".join(
            f"<tr><td><code>{_e(job.key)}</code></td><td>{_e('in doubt' if job.state is JobState.IN_DOUBT else job.state)}"
            f"</td><td>{_e(', '.join(f'{k}={v}' for k, v in job.vars.items()))}</td>"
            f"<td>{_e(job.error or job.reason or '')}</td><td>{job.attempts}</td></tr>"
            for job in problems
        )
        out.append(f'<section id="problems"><h2>Failed, lost and in-doubt jobs ({len(problems)})</h2>'
                   "<table><thead><tr><th>key</th><th>state</th><th>variables</th><th>reason</th>"
                   f"<th>submits</th></tr></thead><tbody>{rows}</tbody></table></section>")
    out.append(f"<footer>Made by <code>runner report</code> from {_e(ledger.location)}.</footer>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
