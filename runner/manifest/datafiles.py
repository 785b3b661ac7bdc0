"""Reading the value files a manifest names: text (one value a line), CSV and JSONL.

Each reader streams its file and gives every value with the line it came from, so an error names the file
and line, and a million-row CSV is never held in memory (:mod:`runner.manifest.sources` builds the matrix
axes from them). Values are checked as they are read: a row of the wrong shape, a column name that is no
variable, a quote left open, a lone surrogate or a control character is a :class:`ManifestError` at its line.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from runner.errors import ManifestError
from runner.manifest.files import NotAFile, bad_utf8, open_regular, utf16_hint
from runner.manifest.loader import LineMap, integer_too_long
from runner.manifest.values import (
    RESERVED_VARS,
    Item,
    check_scalar,
    control_character,
    is_variable_name,
    lone_surrogate,
    norm,
)

__all__ = [
    "DataFile",
    "check_columns",
    "csv_header",
    "csv_rows",
    "item",
    "jsonl_header",
    "jsonl_rows",
    "resolve",
    "row_values",
    "text_lines",
]

LINE_MAX = 32 << 20  # bytes of one line of a value file: a JSONL row with a 10 MB image inline as a data: URI fits
_BREAK = re.compile(r"\r\n|\r|\n")  # the line ends a text file's lines split at (newline="")


def item(values: tuple[Any, ...], line: int | None) -> Item:
    return values, tuple(norm(v) for v in values), line


class DataFile(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
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
        hint = utf16_hint(exc)
        if isinstance(exc, UnicodeDecodeError) and not hint:  # the decoder's position is in its last piece: the line
            try:
                found = bad_utf8(self.path)
            except OSError:
                found = None
            if found is not None:
                line, column, byte = found
                return ManifestError(f"line {line} is not UTF-8 (byte 0x{byte:02x} at column {column}): save it as"
                                     " UTF-8", path=self.shown, line=line, rule="matrix-source")
        return ManifestError(f"cannot read this file: {exc}{hint}", path=self.shown, rule="matrix-source")

    def open(self, newline: str | None = None) -> TextIO:
        """The file's text (a BOM skipped), opened the one way that never blocks (:func:`open_regular`); at the
        manifest's line, the reason when it is not (or no longer) a regular file of values."""
        try:
            return open_regular(self.path, "utf-8-sig", newline, line_max=LINE_MAX)
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


def resolve(base: Path, spec: dict[str, Any], where: str, lines: LineMap, key: tuple[str | int, ...]) -> DataFile:
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
    src = DataFile(path, shown, spec["file"], where, lines, key)
    src.open().close()  # a folder, a FIFO, a missing file… is refused here, before the name's suffix is looked at
    return src


def text_lines(src: DataFile) -> Iterator[Item]:
    try:
        with src.open() as handle:
            for number, raw in enumerate(handle, start=1):
                value = raw.strip()
                if value and not value.startswith("#"):
                    why = control_character(value)
                    if why is not None:
                        raise src.fail(why, number, "axis-value")
                    yield (value,), (value,), number
    except (OSError, UnicodeDecodeError) as exc:
        raise src.unreadable(exc) from exc



def check_columns(columns: Sequence[str], path: str, line: int | None) -> None:
    for column in columns:
        if not is_variable_name(column) or column in RESERVED_VARS:
            why = "is built in" if column in RESERVED_VARS else "is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            raise ManifestError(f"rows column {column!r} {why}", path=path, line=line, rule="rows-column")
    if len(set(columns)) != len(columns):
        raise ManifestError(f"rows columns repeat a name: {list(columns)}", path=path, line=line, rule="rows-column")


def row_values(row: dict[str, Any], names: tuple[str, ...], path: str, line: int | None) -> tuple[Any, ...]:
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


def _open_quote(src: DataFile, record: list[str], end: int, names: tuple[str, ...] | None) -> ManifestError:
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


def csv_header(src: DataFile) -> tuple[str, ...]:
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
    if len(names) == 1 and (mark := next((m for m in (";", "\t") if m in names[0]), None)) is not None:
        what = "semicolons (Excel's \"CSV\" where a comma is the decimal mark)" if mark == ";" else "tabs"
        raise src.fail(f"the header is one column, {names[0]!r}: its names are separated by {what}, not commas;"
                       " save the file as \"CSV UTF-8 (Comma delimited)\" (or replace the separators with commas)",
                       1, "rows-csv")
    while len(names) > 1 and not names[-1]:  # a spreadsheet's empty column after the last (Excel writes "a,b,")
        names = names[:-1]
    check_columns(names, src.shown, 1)
    return names


def _blank(cells: list[str]) -> bool:
    """Whether a row holds no value: an empty line, or a spreadsheet's empty row (Excel writes ",," after the last)."""
    return all(not cell.strip() for cell in cells)


def csv_rows(src: DataFile, names: tuple[str, ...]) -> Iterator[Item]:
    width = len(names)
    ended: list[bool] = []
    try:
        with src.open(newline="") as handle:
            reader = csv.reader(_to_the_end(handle, ended))
            next(reader, None)
            for record in reader:
                if ended:
                    raise _open_quote(src, record, reader.line_num, names)
                if _blank(record):
                    continue
                if len(record) > width and _blank(record[width:]):  # cells of an empty column after the last
                    record = record[:width]
                if len(record) != width:
                    raise src.fail(
                        f"this row has {len(record)} cells but the header has {width} {list(names)}",
                        reader.line_num,
                        "rows-shape",
                    )
                for name, cell in zip(names, record, strict=True):  # the width is checked above
                    why = control_character(cell)
                    if why is not None:
                        raise src.fail(f"column {name!r}: {why}", reader.line_num, "rows-value")
                values = tuple(record)
                yield values, values, reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise src.unreadable(exc) from exc


class _Refused(ValueError):
    """A JSONL line that parses but is refused: a key given twice, an integer too long to read."""


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of ``pairs``; a key given twice is refused (json.loads keeps the last without a word; YAML refuses)."""
    row = dict(pairs)
    if len(row) != len(pairs):
        seen: set[str] = set()
        for name, _value in pairs:
            if name in seen:
                raise _Refused(f"the key {name!r} twice in one object; keep one")
            seen.add(name)
    return row


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # past Python's digit limit (json.loads would say: use sys.set_int_max_str_digits())
        raise _Refused(integer_too_long(len(text.lstrip("-")))) from None


def _jsonl_objects(src: DataFile) -> Iterator[tuple[dict[str, Any], int]]:
    try:
        with src.open() as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw, object_pairs_hook=_once, parse_int=_integer)
                except _Refused as exc:
                    raise src.fail(str(exc), number, "rows-json") from None
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


def jsonl_header(src: DataFile) -> tuple[str, ...]:
    for row, line in _jsonl_objects(src):
        names = tuple(row)
        check_columns(names, src.shown, line)
        return names
    return ()


def jsonl_rows(src: DataFile, names: tuple[str, ...]) -> Iterator[Item]:
    for row, number in _jsonl_objects(src):
        yield item(row_values(row, names, src.shown, number), number)

