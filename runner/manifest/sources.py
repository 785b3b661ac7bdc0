"""Where an axis gets its values: inline lists, text files, and ``rows``.

An :class:`Axis` is one factor of the matrix product. A plain axis has one
variable (``city: [Tokyo, Lima]`` or ``subject: {file: subjects.txt}``); the
``rows`` axis has several variables that travel together, one row at a time
(``rows: [{prompt: …, duration: 5}, …]`` or ``rows: {file: prompts.csv}`` /
``.jsonl``).

File-backed axes are read once when the manifest is loaded (to check them and
count their values) and streamed again on every pass of the expansion, so a
million-row CSV is never held in memory when it is the matrix's first axis.
The files themselves are read by :mod:`runner.manifest.datafiles`.
"""

from __future__ import annotations

import glob
import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ManifestError
from runner.manifest.datafiles import (
    check_columns,
    csv_header,
    csv_rows,
    item,
    jsonl_header,
    jsonl_rows,
    resolve,
    row_values,
    text_lines,
)
from runner.manifest.globwalk import walked_twice
from runner.manifest.loader import LineMap
from runner.manifest.values import (
    RESERVED_VARS,
    Item,
    check_scalar,
    control_character,
    is_variable_name,
    lone_surrogate,
)

__all__ = ["Axis", "axis_from_yaml", "rows_from_yaml"]


@dataclass(frozen=True, slots=True)
class Axis:
    """One factor of the matrix product.

    ``names`` are its variables (one for a plain axis, the columns for rows);
    ``path`` the file its values live in; ``line`` the line of the axis in
    the manifest; ``count`` how many values it has.
    """

    names: tuple[str, ...]
    path: str
    line: int | None
    count: int
    inline: tuple[Item, ...] | None
    reader: Callable[[], Iterator[Item]] | None
    rows: bool = False

    @property
    def label(self) -> str:
        """``rows`` or the axis's variable name, as written in the manifest."""
        return "rows" if self.rows else self.names[0]

    def items(self) -> Iterator[Item]:
        """Its values in order, streamed from the file when file-backed."""
        if self.inline is not None:
            return iter(self.inline)
        assert self.reader is not None
        return self.reader()

    def materialize(self) -> Sequence[Item]:
        """Its values as a sequence (for inner axes, iterated many times)."""
        return self.inline if self.inline is not None else tuple(self.reader() if self.reader else ())




# ---------------------------------------------------------------- plain axes


def axis_from_yaml(name: str, raw: Any, *, lines: LineMap, base: Path) -> Axis:
    """A plain axis from ``name: [values…]`` or ``name: {file: path}``."""
    key = ("matrix", name)
    line = lines.line_of(*key)
    if not is_variable_name(name) or name in RESERVED_VARS:
        why = "is built in" if name in RESERVED_VARS else "is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
        raise ManifestError(f"matrix axis {name!r} {why}", path=lines.path, line=line, rule="axis-name")
    if isinstance(raw, list):
        if not raw:
            raise ManifestError(
                f"matrix axis {name!r} has no values; give at least one or remove it",
                path=lines.path,
                line=line,
                rule="empty-axis",
            )
        items: list[Item] = []
        for index, value in enumerate(raw):
            try:
                value = check_scalar(value)
            except (TypeError, ValueError) as exc:
                raise ManifestError(
                    f"matrix axis {name!r}: {exc}", path=lines.path, line=lines.line_of(*key, index), rule="axis-value"
                ) from exc
            items.append(item((value,), lines.line_of(*key, index)))
        return Axis((name,), lines.path, line, len(items), tuple(items), None)
    if isinstance(raw, dict) and set(raw) == {"glob"}:
        return _glob_axis(name, raw["glob"], lines=lines, base=base)
    if isinstance(raw, dict):
        src = resolve(base, raw, f"matrix axis {name!r}", lines, key)
        count = sum(1 for _ in text_lines(src))
        if count == 0:
            raise src.fail(f"matrix axis {name!r}: no values (blank and # lines are skipped)", None, "empty-axis")
        return Axis((name,), src.shown, line, count, None, lambda: text_lines(src))
    raise ManifestError(
        f"matrix axis {name!r} must be a list of values, {{file: <path>}} or {{glob: <pattern>}}",
        path=lines.path,
        line=line,
        rule="matrix-source",
    )


def _glob_axis(name: str, pattern: Any, *, lines: LineMap, base: Path) -> Axis:
    """An axis of the files a pattern matches, relative to the manifest, sorted (``image: {glob: "frames/*.png"}``)."""
    line = lines.line_of("matrix", name, "glob")
    if not isinstance(pattern, str) or not pattern.strip():
        raise ManifestError(f"matrix axis {name!r}: glob must be a pattern such as \"frames/*.png\"",
                            path=lines.path, line=line, rule="matrix-source")
    looped = walked_twice(pattern, base)
    if looped is not None:
        folder, way = looped
        raise ManifestError(
            f"matrix axis {name!r}: {pattern!r} would walk the folder {folder} again through {way} (a link to it, or to"
            " a folder above it): ** follows links to folders, so it would list the same files over and over, or never"
            " end; remove the link, or write a pattern without ** that does not pass through it",
            path=lines.path, line=line, rule="matrix-source")
    found = sorted(
        match.replace(os.sep, "/")
        for match in glob.glob(pattern, root_dir=base, recursive=True)
        if (base / match).is_file()
    )
    if not found:
        raise ManifestError(
            f"matrix axis {name!r}: no file matches {pattern!r} (looked in {base}; patterns are relative to the"
            " manifest, hidden files are skipped)",
            path=lines.path,
            line=line,
            rule="empty-axis",
        )
    seen: dict[str, str] = {}  # NFC form → the name on disk
    for match in found:
        if lone_surrogate(match):  # bytes that are not UTF-8, as Python decodes a file name
            raise ManifestError(f"matrix axis {name!r}: the file name {match!r} is not valid UTF-8: rename it",
                                path=lines.path, line=line, rule="axis-value")
        if control_character(match) is not None:  # ESC, BEL, DEL…: refused as in any value (a terminal obeys them)
            raise ManifestError(f"matrix axis {name!r}: the file name {match!r} holds a control character (shown"
                                " escaped): rename it", path=lines.path, line=line, rule="axis-value")
        twin = seen.setdefault(unicodedata.normalize("NFC", match), match)
        if twin != match:  # values are planned in NFC: the two would be one value, one file
            raise ManifestError(
                f"matrix axis {name!r}: {twin!r} and {match!r} are two files whose names differ only in how their"
                f" accents are encoded ({twin!a} and {match!a}); runner reads values in one form"
                " (NFC) and cannot tell them apart: rename one of them", path=lines.path, line=line, rule="axis-value")
    items = tuple(item((match,), line) for match in found)
    return Axis((name,), lines.path, lines.line_of("matrix", name), len(items), items, None)




# ---------------------------------------------------------------------- rows


def rows_from_yaml(raw: Any, *, lines: LineMap, base: Path) -> Axis:
    """The ``rows`` axis from an inline list of mappings or a CSV/JSONL file."""
    key = ("matrix", "rows")
    line = lines.line_of(*key)
    if isinstance(raw, list):
        if not raw:
            raise ManifestError("matrix 'rows' is empty", path=lines.path, line=line, rule="empty-axis")
        first = raw[0]
        if not isinstance(first, dict) or not first:
            raise ManifestError(
                "matrix 'rows' must be a list of mappings",
                path=lines.path,
                line=lines.line_of(*key, 0),
                rule="rows-shape",
            )
        names = tuple(first)
        check_columns(names, lines.path, lines.line_of(*key, 0))
        items: list[Item] = []
        for index, row in enumerate(raw):
            row_line = lines.line_of(*key, index)
            if not isinstance(row, dict):
                raise ManifestError(
                    "matrix 'rows' must be a list of mappings", path=lines.path, line=row_line, rule="rows-shape"
                )
            items.append(item(row_values(row, names, lines.path, row_line), row_line))
        return Axis(names, lines.path, line, len(items), tuple(items), None, rows=True)
    if isinstance(raw, dict):
        src = resolve(base, raw, "matrix 'rows'", lines, key)
        reader: Callable[[], Iterator[Item]]
        suffix = src.path.suffix.lower()
        if suffix == ".csv":
            names = csv_header(src)
            reader = lambda: csv_rows(src, names)  # noqa: E731
        elif suffix == ".jsonl":
            names = jsonl_header(src)
            reader = lambda: jsonl_rows(src, names)  # noqa: E731
        else:
            raise ManifestError(
                f"matrix 'rows' file must end in .csv or .jsonl, not {src.path.name!r}",
                path=lines.path,
                line=lines.line_of(*key, "file"),
                rule="matrix-source",
            )
        count = sum(1 for _ in reader())
        if count == 0 or not names:
            raise src.fail("no rows", None, "empty-axis")
        return Axis(names, src.shown, line, count, None, reader, rows=True)
    raise ManifestError(
        "matrix 'rows' must be a list of mappings or {file: <path.csv|path.jsonl>}",
        path=lines.path,
        line=line,
        rule="matrix-source",
    )
