"""Where an axis gets its values: inline lists, text files, and ``rows``.

An :class:`Axis` is one factor of the matrix product. A plain axis has one
variable (``city: [Tokyo, Lima]`` or ``subject: {file: subjects.txt}``); the
``rows`` axis has several variables that travel together, one row at a time
(``rows: [{prompt: …, duration: 5}, …]`` or ``rows: {file: prompts.csv}`` /
``.jsonl``).

File-backed axes are read once when the manifest is loaded (to check them and
count their values) and streamed again on every pass of the expansion, so a
million-row CSV is never held in memory when it is the matrix's first axis.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from runner.errors import ManifestError
from runner.manifest.files import NotAFile, open_regular
from runner.manifest.loader import LineMap
from runner.manifest.values import (
    RESERVED_VARS,
    Item,
    check_scalar,
    is_variable_name,
    lone_surrogate,
    norm,
)

__all__ = ["Axis", "axis_from_yaml", "rows_from_yaml"]

_BREAK = re.compile(r"\r\n|\r|\n")  # the line ends a text file's lines split at (newline="")


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


def _item(values: tuple[Any, ...], line: int | None) -> Item:
    return values, tuple(norm(v) for v in values), line


class _DataFile(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """A value file: where it is, how to name it in messages, and the manifest line that names it."""

    path: Path
    shown: str
    named: str  # as the manifest writes it
    where: str  # the axis: "matrix axis 'city'", "matrix 'rows'"
    lines: LineMap
    key: tuple[str | int, ...]

    def fail(self, message: str, line: int | None, rule: str) -> ManifestError:
        return ManifestError(message, path=self.shown, line=line, rule=rule)

    def unreadable(self, exc: Exception) -> ManifestError:
        return ManifestError(f"cannot read this file: {exc}", path=self.shown, rule="matrix-source")

    def open(self, newline: str | None = None) -> TextIO:
        """The file's text (a BOM skipped), opened the one way that never blocks (:func:`open_regular`); at the
        manifest's line, the reason when it is not (or no longer) a regular file of values."""
        try:
            return open_regular(self.path, "utf-8-sig", newline)
        except (FileNotFoundError, NotADirectoryError):
            why = f"not found (looked for {self.path}; paths are relative to the manifest)"
        except IsADirectoryError:
            why = f"is a folder (looked for {self.path}); name a file of values"
        except NotAFile as exc:
            why = f"is {exc.what}, not a regular file; name a file of values"
        except OSError as exc:  # a symlink loop, no permission…
            why = f"cannot be read: {exc.strerror or exc} (looked for {self.path})"
        raise ManifestError(f"{self.where}: file {self.named!r} {why}", path=self.lines.path,
                            line=self.lines.line_of(*self.key, "file"), rule="matrix-source")


def _resolve(base: Path, spec: dict[str, Any], where: str, lines: LineMap, key: tuple[str | int, ...]) -> _DataFile:
    """The file a ``{file: …}`` source names (relative to the manifest), refused at its line unless it can be read."""
    if set(spec) != {"file"} or not isinstance(spec.get("file"), str) or not spec["file"]:
        raise ManifestError(
            f"{where} must be a list of values or {{file: <path>}}",
            path=lines.path,
            line=lines.line_of(*key),
            rule="matrix-source",
        )
    surrogate = lone_surrogate(spec["file"])
    if surrogate is not None:
        raise ManifestError(f"{where}: file {surrogate}", path=lines.path, line=lines.line_of(*key, "file"),
                            rule="matrix-source")
    shown = os.path.normpath(os.path.join(os.path.dirname(lines.path), spec["file"]))
    try:
        path = (base / spec["file"]).resolve()
    except (OSError, RuntimeError):  # a symlink loop, as Path.resolve says it before 3.13: the open says it below
        path = base / spec["file"]
    src = _DataFile(path, shown, spec["file"], where, lines, key)
    src.open().close()  # a folder, a FIFO, a missing file… is refused here, before the name's suffix is looked at
    return src


# ---------------------------------------------------------------- plain axes


def _text_lines(src: _DataFile) -> Iterator[Item]:
    try:
        with src.open() as handle:
            for number, raw in enumerate(handle, start=1):
                value = raw.strip()
                if value and not value.startswith("#"):
                    yield (value,), (value,), number
    except (OSError, UnicodeDecodeError) as exc:
        raise src.unreadable(exc) from exc


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
            items.append(_item((value,), lines.line_of(*key, index)))
        return Axis((name,), lines.path, line, len(items), tuple(items), None)
    if isinstance(raw, dict) and set(raw) == {"glob"}:
        return _glob_axis(name, raw["glob"], lines=lines, base=base)
    if isinstance(raw, dict):
        src = _resolve(base, raw, f"matrix axis {name!r}", lines, key)
        count = sum(1 for _ in _text_lines(src))
        if count == 0:
            raise src.fail(f"matrix axis {name!r}: no values (blank and # lines are skipped)", None, "empty-axis")
        return Axis((name,), src.shown, line, count, None, lambda: _text_lines(src))
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
    for match in found:
        if lone_surrogate(match):  # bytes that are not UTF-8, as Python decodes a file name
            raise ManifestError(f"matrix axis {name!r}: the file name {match!r} is not valid UTF-8: rename it",
                                path=lines.path, line=line, rule="axis-value")
    items = tuple(_item((match,), line) for match in found)
    return Axis((name,), lines.path, lines.line_of("matrix", name), len(items), items, None)


# ---------------------------------------------------------------------- rows


def _check_columns(columns: Sequence[str], path: str, line: int | None) -> None:
    for column in columns:
        if not is_variable_name(column) or column in RESERVED_VARS:
            why = "is built in" if column in RESERVED_VARS else "is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            raise ManifestError(f"rows column {column!r} {why}", path=path, line=line, rule="rows-column")
    if len(set(columns)) != len(columns):
        raise ManifestError(f"rows columns repeat a name: {list(columns)}", path=path, line=line, rule="rows-column")


def _row_values(row: dict[str, Any], names: tuple[str, ...], path: str, line: int | None) -> tuple[Any, ...]:
    if set(row) != set(names):
        missing = sorted(set(names) - set(row))
        extra = sorted(set(row) - set(names))
        detail = "; ".join(part for part in (f"missing {missing}" * bool(missing), f"extra {extra}" * bool(extra)) if part)
        raise ManifestError(
            f"every row must have the same variables as the first row {list(names)}: {detail}",
            path=path,
            line=line,
            rule="rows-shape",
        )
    try:
        return tuple(check_scalar(row[name]) for name in names)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"row value: {exc}", path=path, line=line, rule="rows-value") from exc


def _to_the_end(handle: Iterable[str], ended: list[bool]) -> Iterator[str]:
    """The lines of ``handle``; ``ended`` gets an entry once they ran out. The reader returns a record only when
    its last line ends it, except at the end of the file: a record returned after that had a quote left open."""
    yield from handle  # the lines go to the reader at C speed: no Python code a line
    ended.append(True)


def _open_quote(src: _DataFile, record: list[str], end: int, names: tuple[str, ...] | None) -> ManifestError:
    """The error for a quoted value left open at the end of the file (``end``: its last line)."""
    value = record[-1]  # all that followed the opening quote
    line = end - len(_BREAK.findall(value)) + value.endswith(("\n", "\r"))
    if names is None:
        where = "in the header"
    else:
        where = f"in column {names[len(record) - 1]!r}" if len(record) <= len(names) else f"in cell {len(record)}"
    return src.fail(
        f"the quote opened on this line ({where}) is never closed: every line after it, to the end of the file,"
        " became part of that one value; close the quote (a quote inside a quoted value is written twice: \"\")",
        line,
        "rows-csv",
    )


def _csv_header(src: _DataFile) -> tuple[str, ...]:
    ended: list[bool] = []
    try:
        with src.open(newline="") as handle:
            reader = csv.reader(_to_the_end(handle, ended))
            header = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise src.unreadable(exc) from exc
    if header is not None and ended:
        raise _open_quote(src, header, reader.line_num, None)
    if not header:
        raise src.fail("the CSV file has no header row", 1, "rows-shape")
    names = tuple(column.strip() for column in header)
    _check_columns(names, src.shown, 1)
    return names


def _csv_rows(src: _DataFile, names: tuple[str, ...]) -> Iterator[Item]:
    width = len(names)
    ended: list[bool] = []
    try:
        with src.open(newline="") as handle:
            reader = csv.reader(_to_the_end(handle, ended))
            next(reader, None)
            for record in reader:
                if ended:
                    raise _open_quote(src, record, reader.line_num, names)
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                if len(record) != width:
                    raise src.fail(
                        f"this row has {len(record)} cells but the header has {width} {list(names)}",
                        reader.line_num,
                        "rows-shape",
                    )
                values = tuple(record)
                yield values, values, reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise src.unreadable(exc) from exc


def _jsonl_objects(src: _DataFile) -> Iterator[tuple[dict[str, Any], int]]:
    try:
        with src.open() as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except ValueError as exc:
                    raise src.fail(f"invalid JSON: {exc}", number, "rows-json") from exc
                except RecursionError as exc:
                    raise src.fail("nested too deeply (a row is one JSON object of plain values)", number,
                                   "rows-json") from exc
                if not isinstance(row, dict):
                    raise src.fail("each line must be a JSON object", number, "rows-json")
                yield row, number
    except (OSError, UnicodeDecodeError) as exc:
        raise src.unreadable(exc) from exc


def _jsonl_header(src: _DataFile) -> tuple[str, ...]:
    for row, line in _jsonl_objects(src):
        names = tuple(row)
        _check_columns(names, src.shown, line)
        return names
    return ()


def _jsonl_rows(src: _DataFile, names: tuple[str, ...]) -> Iterator[Item]:
    for row, number in _jsonl_objects(src):
        yield _item(_row_values(row, names, src.shown, number), number)


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
        _check_columns(names, lines.path, lines.line_of(*key, 0))
        items: list[Item] = []
        for index, row in enumerate(raw):
            row_line = lines.line_of(*key, index)
            if not isinstance(row, dict):
                raise ManifestError(
                    "matrix 'rows' must be a list of mappings", path=lines.path, line=row_line, rule="rows-shape"
                )
            items.append(_item(_row_values(row, names, lines.path, row_line), row_line))
        return Axis(names, lines.path, line, len(items), tuple(items), None, rows=True)
    if isinstance(raw, dict):
        src = _resolve(base, raw, "matrix 'rows'", lines, key)
        reader: Callable[[], Iterator[Item]]
        suffix = src.path.suffix.lower()
        if suffix == ".csv":
            names = _csv_header(src)
            reader = lambda: _csv_rows(src, names)  # noqa: E731
        elif suffix == ".jsonl":
            names = _jsonl_header(src)
            reader = lambda: _jsonl_rows(src, names)  # noqa: E731
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
