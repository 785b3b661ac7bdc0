"""The HTML of ``runner report``'s page (:mod:`runner.reporting.gallery` writes it): its cards, groups and table.

Each card is made as its job is read and written to a spill file (:class:`Spill`), where the page takes it back
group by group: neither the jobs nor the cards are held (a 200k-job report held 910 MiB). The page is written to
its stream piece by piece, never joined into one string.
"""

from __future__ import annotations

import codecs
import html
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

from runner.jobs import JobState
from runner.ledger import JobRecord, LedgerBackend
from runner.reporting.inputs import JobInput
from runner.reporting.text import local_time

__all__ = ["INDEX", "PER_PAGE", "PROBLEMS", "TABLE_HEAD", "Spill", "card", "counts_and_spend", "group_title", "problem_row", "url",
           "write_end", "write_head", "write_page"]

INDEX = "index.html"
PROBLEMS = (JobState.FAILED, JobState.LOST, JobState.IN_DOUBT)
_PIECE = 1 << 20
PER_PAGE = 200  # cards a page holds when the report is paged (a batch of more than this many jobs)


@dataclass(slots=True)
class Spill:
    """Cards (or table rows) written to ``file`` as they are made, each group's as pages of ``per_page`` cards, each
    page as (start, end) spans of the file: a group's cards are read back in the order they were added. Jobs of one
    group come one after another when the group is the first matrix axis (the expansion's outer loop), so a page is
    mostly one span."""

    file: IO[bytes]
    per_page: int = PER_PAGE
    spans: dict[tuple[str, ...], list[list[list[int]]]] = field(default_factory=dict)  # group → pages → spans
    sizes: dict[tuple[str, ...], int] = field(default_factory=dict)

    def add(self, group: tuple[str, ...], text: str) -> None:
        data = text.encode()
        start = self.file.seek(0, 2)
        self.file.write(data)
        pages = self.spans.setdefault(group, [])
        if self.sizes.get(group, 0) % self.per_page == 0:
            pages.append([])
        spans = pages[-1]
        if spans and spans[-1][1] == start:
            spans[-1][1] = start + len(data)
        else:
            spans.append([start, start + len(data)])
        self.sizes[group] = self.sizes.get(group, 0) + 1

    def pages(self, group: tuple[str, ...]) -> int:
        return len(self.spans.get(group, []))

    def text(self, group: tuple[str, ...], page: int | None = None) -> Iterator[str]:
        """The group's cards (those of its ``page``, from 0; None: all), as they were added, a piece at a time."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pages = self.spans.get(group, [])
        for spans in (pages if page is None else pages[page:page + 1]):
            for start, end in spans:
                self.file.seek(start)
                left = end - start
                while left > 0:
                    chunk = self.file.read(min(_PIECE, left))
                    left -= len(chunk)
                    yield decoder.decode(chunk, final=left <= 0)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def url(path: str) -> str:
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


def card(job: JobRecord, shown_vars: dict[str, Any], src: str | None, *, show_repeat: bool,
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
    if job.state in PROBLEMS and (job.error or job.reason):
        parts.append(f'<p class="reason">{_e(job.error or job.reason)}</p>')
    if job.state is JobState.IN_DOUBT:
        parts.append('<p class="reason">the submit may have created a billed task whose id never arrived;'
                     ' decide with <code>runner retry --in-doubt</code></p>')
    if src is not None:
        parts.append('<p class="missing">the video file cannot be played or is missing</p>')
    return (f'<figure class="card s-{_e(state)}" data-key="{_e(job.key)}" data-state="{_e(state)}">'
            f'{media}<figcaption>{"".join(parts)}</figcaption></figure>')


def problem_row(job: JobRecord) -> str:
    """A failed, lost or in-doubt job's row of the table at the end."""
    return (f"<tr><td><code>{_e(job.key)}</code></td><td>{_e('in doubt' if job.state is JobState.IN_DOUBT else job.state)}"
            f"</td><td>{_e(', '.join(f'{k}={v}' for k, v in job.vars.items()))}</td>"
            f"<td>{_e(job.error or job.reason or '')}</td><td>{job.attempts}</td></tr>")


def counts_and_spend(ledger: LedgerBackend, manifest: str) -> str:
    """The header's counts and spend of ``manifest`` (read once a report: three queries over the batch)."""
    counts = ledger.counts(manifest)
    spent = ledger.spent_usd(manifest)
    pending = ledger.estimate_usd(manifest, [JobState.PENDING])
    chips = "".join(
        f'<li class="s-{s}{"" if counts[s] else " zero"}">{_e("in doubt" if s is JobState.IN_DOUBT else s)}'
        f" <b>{counts[s]}</b></li>" for s in JobState
    )
    return (f'<ul class="counts">{chips}</ul>\n<p class="spend">Estimated spend so far: <b>{spent:.2f} USD</b> ·'
            f" pending jobs: ~{pending:.2f} USD · estimates from a price table, not the provider's bill</p></header>")


def write_head(out: IO[str], manifest: str, figures: str, *, jobs: int, models: str, now: float, title: str = "",
               base: str = "") -> None:
    """The page's head and header to ``out``: ``figures`` are the counts and spend (:func:`counts_and_spend`);
    ``title`` after its name (a page of a paged report); ``base``: the folder the page's links are relative to
    (``../`` from ``pages/``)."""
    name = _e(manifest) if not base else f'<a href="{INDEX}">{_e(manifest)}</a>'
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        *([f'<base href="{_e(base)}">'] if base else []),
        f"<title>{_e(manifest)}{_e(title and f' · {title}')} · runner report</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{name}{_e(title and f' · {title}')}</h1>",
        f'<p class="meta">{_e(models or "-")} · {jobs} job(s) · report of {_e(local_time(now))}</p>',
        figures,
    ]
    out.write("\n".join(head) + "\n")


def group_title(keys: list[str], group: tuple[str, ...]) -> str:
    title = " · ".join(f'<span class="var">{_e(k)} =</span> {_e(v)}' for k, v in zip(keys, group, strict=True))
    return title or "all jobs"


def write_end(out: IO[str], ledger: LedgerBackend, *, script: bool = True) -> None:
    out.write(f"<footer>Made by <code>runner report</code> from {_e(ledger.location)}.</footer>\n")
    out.write(f"<script>{_JS}</script></body></html>\n" if script else "</body></html>\n")


TABLE_HEAD = ("<table><thead><tr><th>key</th><th>state</th><th>variables</th><th>reason</th>"
              "<th>submits</th></tr></thead><tbody>")


def write_page(out: IO[str], ledger: LedgerBackend, manifest: str, keys: list[str], cards: Spill, problems: Spill,
               *, jobs: int, models: str, now: float) -> None:
    """The page to ``out``: header, counts and spend, the groups of ``cards`` (in the order first seen), then the
    table of ``problems`` (one group, ``()``)."""
    write_head(out, manifest, counts_and_spend(ledger, manifest), jobs=jobs, models=models, now=now)
    if len(cards.spans) > 1:
        links = "".join(f'<a href="#g{i}">{_e(" · ".join(group))}</a>' for i, group in enumerate(cards.spans, 1))
        out.write(f"<nav>{links}</nav>\n")
    out.write("<main>\n")
    for i, group in enumerate(cards.spans, 1):
        out.write(f'<section class="group" id="g{i}"><h2>{group_title(keys, group)}<small>{cards.sizes[group]} job(s)'
                  '</small></h2><div class="grid">')
        for piece in cards.text(group):
            out.write(piece)
        out.write("</div></section>\n")
    out.write("</main>\n")
    if problems.sizes:
        out.write(f'<section id="problems"><h2>Failed, lost and in-doubt jobs ({problems.sizes[()]})</h2>{TABLE_HEAD}')
        for piece in problems.text(()):
            out.write(piece)
        out.write("</tbody></table></section>\n")
    write_end(out, ledger)
