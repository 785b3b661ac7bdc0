"""The review page's HTML: one page of a manifest's jobs, filtered, repeats side by side.

Pure functions of the ledger's records (the server, :mod:`runner.review.server`, does the I/O).
A *row* holds the jobs that differ only by ``repeat`` (same model and variables), side by side;
pages hold :data:`PAGE_SIZE` rows. Videos load only when played (``preload="none"``), from the
server's ``/video/<key>``. Filters: ``state`` (a job state; ``rejected``: the rejected videos;
``all``: everything; default: every job but rejected videos), ``model``, and ``var`` (repeatable
``name=value``). Keys: ←/→ or j/k move between cards, ``a`` accepts and ``r`` rejects the card in
focus (with the reason typed in the header); the buttons do the same. Decisions are POSTed to
``/api/review`` with the page's per-launch token and the sample the card shows (a page loaded before a
regeneration cannot decide the new sample unseen).
"""

from __future__ import annotations

import html
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.jobs import JobState
from runner.ledger import JobRecord

__all__ = ["PAGE_SIZE", "Filters", "Listing", "list_rows", "render_page"]

PAGE_SIZE = 24  # rows of repeats per page


@dataclass(frozen=True, slots=True)
class Filters:
    state: str = ""
    model: str = ""
    vars: tuple[tuple[str, str], ...] = ()
    page: int = 1

    @classmethod
    def from_query(cls, query: str) -> Filters:
        params = urllib.parse.parse_qs(query, keep_blank_values=False)
        pairs = tuple(tuple(v.split("=", 1)) for v in params.get("var", []) if "=" in v)
        try:
            page = max(1, int(params.get("page", ["1"])[0]))
        except ValueError:
            page = 1
        return cls(state=params.get("state", [""])[0], model=params.get("model", [""])[0],
                   vars=tuple((a, b) for a, b in pairs), page=page)

    def query(self, **changes: Any) -> str:
        state = changes.get("state", self.state)
        items: list[tuple[str, str]] = [("state", state)] if state else []
        if changes.get("model", self.model):
            items.append(("model", changes.get("model", self.model)))
        items += [("var", f"{k}={v}") for k, v in changes.get("vars", self.vars)]
        items.append(("page", str(changes.get("page", self.page))))
        return "?" + urllib.parse.urlencode(items)

    def keep(self, job: JobRecord) -> bool:
        rejected = job.review == "rejected"
        if self.state == "rejected":
            if not rejected:
                return False
        elif self.state not in ("", "all"):
            if str(job.state) != self.state or rejected:
                return False
        elif self.state == "" and rejected:
            return False
        if self.model and job.model != self.model:
            return False
        return all(str(job.vars.get(name)) == value for name, value in self.vars)


@dataclass(slots=True)
class Listing:
    rows: list[list[JobRecord]] = field(default_factory=list)  # this page's rows
    total_rows: int = 0
    total_jobs: int = 0
    pages: int = 1
    models: list[str] = field(default_factory=list)
    variables: dict[str, list[str]] = field(default_factory=dict)


def list_rows(jobs: Iterable[JobRecord], filters: Filters, page_size: int = PAGE_SIZE) -> Listing:
    """The rows of ``filters.page`` (the last page past the end): jobs kept by ``filters``, repeats of one request
    together. Streams ``jobs`` once, holding the jobs of that page's rows and of the last page's only, and each row's
    place: every kept job of a 200k-job batch was held (455 MiB for one page of 24 rows)."""
    listing = Listing()
    place: dict[str, int] = {}  # row (model and variables) → its place, first seen first
    wanted = range((filters.page - 1) * page_size, filters.page * page_size)
    shown: dict[int, list[JobRecord]] = {}  # the rows of the page asked for
    last: dict[int, list[JobRecord]] = {}  # the rows of the last page so far: shown when the page asked is past it
    models: set[str] = set()
    variables: dict[str, set[str]] = {}
    for job in jobs:
        models.add(job.model)
        for name, value in job.vars.items():
            values = variables.setdefault(name, set())
            values.add(str(value))
            if len(values) > 2 * _VALUES:  # the first _VALUES in order are shown: the others need not be kept
                variables[name] = set(sorted(values)[:_VALUES])
        if not filters.keep(job):
            continue
        listing.total_jobs += 1
        row = place.setdefault(json.dumps([job.model, job.vars], sort_keys=True, default=str), len(place))
        if row % page_size == 0 and row == len(place) - 1 and row > 0:
            last = {}  # a new last page
        if row >= len(place) - 1 - (len(place) - 1) % page_size:
            last.setdefault(row, []).append(job)
        if row in wanted:
            shown.setdefault(row, []).append(job)
    listing.total_rows = len(place)
    listing.pages = max(1, -(-len(place) // page_size))
    page = shown if filters.page <= listing.pages else last
    listing.rows = [page[row] for row in sorted(page)]
    listing.models = sorted(models)
    listing.variables = {name: sorted(values)[:_VALUES] for name, values in variables.items()}
    return listing


_VALUES = 200  # values of a variable offered as filters


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _prompt(request: dict[str, Any]) -> str:
    if request.get("prompt"):
        return str(request["prompt"])
    shots = request.get("multi_prompt") or []
    return " | ".join(str(s.get("prompt", "")) for s in shots if isinstance(s, dict))


def _card(job: JobRecord, queued: Mapping[str, tuple[str, int]]) -> str:
    review = job.review or ""
    verdict = review
    waiting = queued.get(job.key)
    if waiting is not None and waiting[1] == job.sample and job.state is JobState.DONE:  # a run holds the ledger
        verdict = f"{waiting[0]} queued: the run saves it within seconds"
    if job.state is JobState.DONE and job.path is not None:
        media = (f'<video preload="none" controls muted loop playsinline src="/video/{_e(job.key)}"></video>')
        buttons = ('<button class="accept" data-decision="accept" title="accept (a)">accept</button>'
                   '<button class="reject" data-decision="reject" title="reject (r)">reject</button>')
    else:
        media = f'<div class="placeholder">{_e(job.state)}</div>'
        buttons = ""
    reason = f'<p class="why">{_e(job.error or job.reason)}</p>' if job.state is not JobState.DONE and (
        job.error or job.reason) else ""
    return (f'<figure class="card s-{_e(job.state)}" tabindex="0" data-key="{_e(job.key)}"'
            f' data-sample="{_e(job.sample)}" data-review="{_e(review)}">{media}<figcaption><span class="rep">repeat {_e(job.repeat)}'
            f'{" · sample " + _e(job.sample + 1) if job.sample else ""}</span>'
            f' <span class="state">{_e(job.state)}</span> <span class="verdict">{_e(verdict)}</span>'
            f'<span class="buttons">{buttons}</span>{reason}</figcaption></figure>')


def _row(jobs: Sequence[JobRecord], queued: Mapping[str, tuple[str, int]]) -> str:
    first = jobs[0]
    chips = f'<span class="model">{_e(first.model)}</span>' + "".join(
        f"<span>{_e(k)}: {_e(v)}</span>" for k, v in first.vars.items())
    return (f'<section class="row"><header><div class="vars">{chips}</div><p class="prompt">'
            f'{_e(_prompt(first.request))}</p></header><div class="repeats">{"".join(_card(job, queued) for job in jobs)}</div></section>')


def _select(name: str, current: str, options: Iterable[str], blank: str) -> str:
    opts = f'<option value="">{_e(blank)}</option>' + "".join(
        f'<option value="{_e(o)}"{" selected" if o == current else ""}>{_e(o)}</option>' for o in options)
    return f'<select name="{_e(name)}">{opts}</select>'


def render_page(manifest: str, listing: Listing, filters: Filters, token: str,
                queued: Mapping[str, tuple[str, int]] | None = None) -> str:
    """The whole HTML page; ``queued``: each job's decision waiting for the run to end, and the sample it was on."""
    queued = queued or {}
    states = ["all", *(str(s) for s in JobState), "rejected"]
    var_filters = "".join(f'<input type="hidden" name="var" value="{_e(k)}={_e(v)}">' for k, v in filters.vars)
    var_links = " ".join(
        f'<a href="{_e(filters.query(vars=(*filters.vars, (name, value)), page=1))}">{_e(name)}={_e(value)}</a>'
        for name, values in listing.variables.items() for value in values[:12])
    page = min(filters.page, listing.pages)
    nav = (f'<nav class="pages">page {page} of {listing.pages} · {listing.total_jobs} job(s) in'
           f' {listing.total_rows} row(s) ')
    if page > 1:
        nav += f'<a rel="prev" href="{_e(filters.query(page=page - 1))}">← previous</a> '
    if page < listing.pages:
        nav += f'<a rel="next" href="{_e(filters.query(page=page + 1))}">next →</a>'
    nav += "</nav>"
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f'<meta name="review-token" content="{_e(token)}">',
        f"<title>{_e(manifest)} · runner review</title><style>{_CSS}</style></head><body>",
        f"<header class=top><h1>{_e(manifest)} <small>review</small></h1>",
        f'<form method="get" action="/">{_select("state", filters.state, states, "to review (not rejected)")}'
        f'{_select("model", filters.model, listing.models, "any model")}{var_filters}'
        '<button type="submit">filter</button> <a href="/">clear</a></form>',
        f'<p class="vars-filter">{var_links}</p>',
        '<label>reason for rejections <input id="reason" value="rejected on the review page" size="40"></label>',
        '<p class="help">keys: ←/→ or j/k move · a accept · r reject</p>',
        nav, "</header><main>",
        "".join(_row(jobs, queued) for jobs in listing.rows) or "<p>no job matches these filters</p>",
        "</main>", nav, f"<script>{_JS}</script></body></html>",
    ]) + "\n"


_CSS = """
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #f5f6f8; color: #1d2330; }
header.top { padding: 12px 20px; background: #fff; border-bottom: 1px solid #dde1e8; }
h1 { margin: 0 0 6px; font-size: 20px; } h1 small { color: #5d6675; font-weight: 400; }
main { padding: 8px 20px; }
section.row { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; margin: 10px 0; padding: 8px 10px; }
.vars span { background: #f5f6f8; border: 1px solid #dde1e8; border-radius: 6px; padding: 0 6px; margin-right: 4px; }
.prompt { margin: 4px 0; color: #5d6675; }
.repeats { display: flex; gap: 10px; overflow-x: auto; }
figure.card { margin: 0; width: 260px; flex: none; border: 2px solid transparent; border-radius: 8px; }
figure.card:focus { outline: none; border-color: #1f6fb2; }
figure.card video, .placeholder { width: 100%; aspect-ratio: 16 / 9; background: #111; display: block; }
.placeholder { color: #fff; display: flex; align-items: center; justify-content: center; text-transform: uppercase; }
figure[data-review="rejected"] { border-color: #c0392b; opacity: .6; }
figure[data-review="accepted"] { border-color: #1f8a4c; }
.verdict { font-weight: 700; } .why { color: #c0392b; margin: 2px 0; }
.buttons { float: right; } .buttons button { margin-left: 4px; }
nav.pages a { margin: 0 6px; } .vars-filter a { margin-right: 6px; font-size: 12px; }
"""

_JS = """
const token = document.querySelector('meta[name="review-token"]').content;
const cards = Array.from(document.querySelectorAll("figure.card"));
async function decide(card, decision) {
  const reason = document.getElementById("reason").value || "rejected on the review page";
  const answer = await fetch("/api/review", {method: "POST",
    headers: {"Content-Type": "application/json", "X-Review-Token": token},
    body: JSON.stringify({key: card.dataset.key, sample: Number(card.dataset.sample), decision: decision,
                          reason: reason})});
  const data = await answer.json().catch(() => ({}));
  if (answer.status === 202) { card.dataset.queued = data.queued; card.querySelector(".verdict").textContent = data.message; }
  else if (answer.ok) { card.dataset.review = data.review; card.querySelector(".verdict").textContent = data.review; }
  else { card.querySelector(".verdict").textContent = data.error || ("error " + answer.status); }
}
for (const card of cards) {
  for (const button of card.querySelectorAll("button[data-decision]")) {
    button.addEventListener("click", (event) => { event.stopPropagation(); decide(card, button.dataset.decision); });
  }
}
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  const at = cards.indexOf(document.activeElement.closest ? document.activeElement.closest("figure.card") : null);
  const move = {ArrowRight: 1, j: 1, ArrowLeft: -1, k: -1}[event.key];
  if (move) { const next = cards[Math.max(0, Math.min(cards.length - 1, at + move))]; if (next) next.focus(); return; }
  if (at < 0 || !cards[at].querySelector("button[data-decision]")) return;
  if (event.key === "a") decide(cards[at], "accept");
  if (event.key === "r") decide(cards[at], "reject");
});
if (cards.length) cards[0].focus();
"""
