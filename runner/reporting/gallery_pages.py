"""``runner report`` of a big batch: an index page and pages of :data:`PER_PAGE` cards each, under ``DIR/pages/``.

One page of every job was 111 MB with 120k ``<video>`` elements at 200k jobs (bench/ops_scale.py), which a browser
opens slowly if at all. A report of more than :data:`PER_PAGE` jobs now writes ``DIR/index.html`` with the header,
counts and spend and, per group, links to its pages (``pages/G-P.html``: group G, its page P), and the failed, lost
and in-doubt jobs' table in pages of its own (``pages/problems-P.html``). Each page holds the header, a way back
to the index, the previous and next page, and its cards; its links are relative to DIR (``<base href="../">``),
as the single page's are, so the folder can still be moved or published as a whole. A smaller report stays one
page, as before; page files an earlier report wrote and this one does not are removed (:func:`forget_pages`).
"""

from __future__ import annotations

import re
from pathlib import Path

from runner.ledger import LedgerBackend
from runner.reporting.gallery_page import (
    INDEX,
    TABLE_HEAD,
    Spill,
    counts_and_spend,
    group_title,
    url,
    write_end,
    write_head,
)
from runner.reporting.ticker import Ticker
from runner.reporting.whole_file import whole_file

__all__ = ["PAGES", "forget_pages", "write_index", "write_pages"]

PAGES = "pages"
_OURS = re.compile(r"(?:\d+-\d+|problems-\d+)\.html")  # the names this module writes, nothing else is removed


def write_pages(dest: Path, ledger: LedgerBackend, manifest: str, keys: list[str], cards: Spill, problems: Spill,
                *, jobs: int, models: str, now: float, ticker: Ticker | None = None) -> list[str]:
    """Every page of ``cards`` and ``problems`` into ``dest/pages/``; their names (relative to ``dest``), in order.
    The index (:func:`write_index`) is written after them, by the caller. The header's counts and spend are read
    once (read at each page, they took 190 s of a 200k-job report's 1,200 pages); ``ticker`` is told of each page."""
    (dest / PAGES).mkdir(exist_ok=True)
    figures = counts_and_spend(ledger, manifest)
    total = sum(map(cards.pages, cards.spans)) + problems.pages(())
    tick = ticker.of(total, "report: {done} of {total} page(s) written") if ticker is not None else None
    names: list[str] = []
    groups = list(cards.spans)
    for g, group in enumerate(groups, 1):
        count = cards.pages(group)
        for p in range(count):
            around = _around(f"{g}-", p, count)
            if tick is not None:
                tick()
            with whole_file(dest / _name(f"{g}-", p), follow=False) as out:
                title = f"{' · '.join(group) or 'all jobs'} · page {p + 1} of {count}"
                write_head(out, manifest, figures, jobs=jobs, models=models, now=now, title=title, base="../")
                out.write(f"<nav>{around}</nav>\n<main>\n")
                out.write(f'<section class="group"><h2>{group_title(keys, group)}<small>{_range(p, cards, group)}'
                          f" of {cards.sizes[group]} job(s)</small></h2><div class=\"grid\">")
                for piece in cards.text(group, p):
                    out.write(piece)
                out.write(f"</div></section>\n</main>\n<nav>{around}</nav>\n")
                write_end(out, ledger)
            names.append(_name(f"{g}-", p))
    count = problems.pages(())
    for p in range(count):
        around = _around("problems-", p, count)
        if tick is not None:
            tick()
        with whole_file(dest / _name("problems-", p), follow=False) as out:
            title = f"failed, lost and in doubt · page {p + 1} of {count}"
            write_head(out, manifest, figures, jobs=jobs, models=models, now=now, title=title, base="../")
            out.write(f'<nav>{around}</nav>\n<section id="problems"><h2>Failed, lost and in-doubt jobs'
                      f" ({_range(p, problems, ())} of {problems.sizes[()]})</h2>{TABLE_HEAD}")
            for piece in problems.text((), p):
                out.write(piece)
            out.write(f"</tbody></table></section>\n<nav>{around}</nav>\n")
            write_end(out, ledger, script=False)
        names.append(_name("problems-", p))
    return names


def write_index(out_path: Path, ledger: LedgerBackend, manifest: str, keys: list[str], cards: Spill,
                problems: Spill, *, jobs: int, models: str, now: float) -> None:
    """``index.html`` of a paged report: the header and, per group, the links to its pages."""
    figures = counts_and_spend(ledger, manifest)
    with whole_file(out_path, follow=False) as out:
        write_head(out, manifest, figures, jobs=jobs, models=models, now=now)
        out.write(f'<main>\n<p class="meta">{jobs} job(s) on {sum(map(cards.pages, cards.spans))} page(s) of at most'
                  f" {cards.per_page} each:</p>\n")
        for g, group in enumerate(cards.spans, 1):
            out.write(f'<section class="group" id="g{g}"><h2>{group_title(keys, group)}<small>{cards.sizes[group]}'
                      f" job(s)</small></h2><nav>{_links(f'{g}-', cards, group)}</nav></section>\n")
        out.write("</main>\n")
        if problems.sizes:
            out.write(f'<section id="problems"><h2>Failed, lost and in-doubt jobs ({problems.sizes[()]})</h2>'
                      f"<nav>{_links('problems-', problems, ())}</nav></section>\n")
        write_end(out, ledger, script=False)


def forget_pages(dest: Path, written: list[str]) -> int:
    """Remove the page files under ``dest/pages/`` an earlier report wrote that this one did not; how many."""
    folder, keep, removed = dest / PAGES, {Path(name).name for name in written}, 0
    if not folder.is_dir() or folder.is_symlink():
        return 0
    for path in folder.iterdir():
        if _OURS.fullmatch(path.name) and path.name not in keep and not path.is_dir():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _name(prefix: str, page: int) -> str:
    return f"{PAGES}/{prefix}{page + 1}.html"


def _range(page: int, spill: Spill, group: tuple[str, ...]) -> str:
    first = page * spill.per_page + 1
    return f"{first}-{min(first + spill.per_page - 1, spill.sizes[group])}"


def _links(prefix: str, spill: Spill, group: tuple[str, ...]) -> str:
    return "".join(f'<a href="{url(_name(prefix, p))}">{_range(p, spill, group)}</a>'
                   for p in range(spill.pages(group)))


def _around(prefix: str, page: int, count: int) -> str:
    links = [f'<a href="{INDEX}">index</a>']
    if page > 0:
        links.append(f'<a href="{url(_name(prefix, page - 1))}">← page {page}</a>')
    if page + 1 < count:
        links.append(f'<a href="{url(_name(prefix, page + 1))}">page {page + 2} →</a>')
    return "".join(links)
