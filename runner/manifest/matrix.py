"""The ``matrix``: a product of axes, then ``exclude``, then ``include``.

The rules are GitHub Actions' ("Expanding or adding matrix configurations"):

1. The *original* combinations are the cartesian product of the axes, the
   first axis varying slowest.
2. An ``exclude`` entry removes every original combination it matches; it
   matches when each of its keys equals the combination's value (a partial
   match: keys it does not name are free).
3. Each ``include`` entry, in order, is merged into every remaining original
   combination whose *original* values it does not contradict (each of its
   keys that is an axis variable has the combination's value). Its other keys
   are added, and may overwrite values an earlier include added.
4. An include entry that was merged into no combination becomes a new
   combination of its own, after all the others. Later includes are never
   merged into such new combinations.
5. With no axes, each include entry is a combination; with neither axes nor
   includes there is exactly one (empty) combination.

Values are compared as text (``10`` matches ``"10"`` from a CSV file).

The expansion streams: the first axis is read as the loop goes (a file is not
held in memory); the other axes are held as lists. The number of combinations
is computed when the matrix is compiled, without expanding it: excludes and
includes only look at a few variables, so the axes are reduced to classes of
values that those entries cannot tell apart, and the product of the classes is
enumerated with multiplicities.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, product
from pathlib import Path
from typing import Any

from runner.errors import ManifestError
from runner.jobs import nfc
from runner.manifest.loader import LineMap
from runner.manifest.sources import Axis, axis_from_yaml, rows_from_yaml
from runner.manifest.values import (
    RESERVED_VARS,
    Item,
    check_scalar,
    did_you_mean,
    is_variable_name,
    norm,
)

__all__ = ["Exclude", "Include", "Matrix", "compile_matrix"]

#: At most this many value classes are enumerated to count combinations;
#: past it, the combinations are counted by streaming (when few enough).
CLASS_LIMIT = 1_000_000

Constraint = tuple[int, int, str]  # (axis index, column index, value text)



@dataclass(frozen=True, slots=True)
class Exclude:
    index: int
    line: int | None
    entry: dict[str, Any]
    constraints: tuple[Constraint, ...]


@dataclass(frozen=True, slots=True)
class Include:
    index: int
    line: int | None
    entry: dict[str, Any]
    constraints: tuple[Constraint, ...]
    additions: dict[str, Any]
    key_lines: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class Matrix:
    """A compiled matrix: axes, excludes, includes and the counts they give."""

    path: str
    axes: tuple[Axis, ...]
    excludes: tuple[Exclude, ...]
    includes: tuple[Include, ...]
    names: tuple[str, ...]
    combinations: int
    exact: bool
    extends: tuple[bool, ...]

    @property
    def variables(self) -> frozenset[str]:
        """Every variable some combination may have."""
        return frozenset(self.names).union(*(inc.entry for inc in self.includes))

    def axis_of(self, name: str) -> tuple[int, int] | None:
        """``(axis index, column index)`` of an original variable."""
        for index, axis in enumerate(self.axes):
            if name in axis.names:
                return index, axis.names.index(name)
        return None

    def combos(self, normal: bool = False) -> Iterator[dict[str, Any]]:
        """The variables of every combination, in order; with ``normal``, as :func:`runner.jobs.nfc` gives them
        (in the plain product of two axes, each value is put in NFC once, not once per combination)."""
        includes = self.includes
        if self.axes:
            names = self.names
            if not self.excludes and not includes:
                yield from self._product(names, normal)
            else:
                for items, applied in self._originals():
                    variables = dict(zip(names, chain.from_iterable(item[0] for item in items), strict=False))
                    for index in applied:
                        variables.update(includes[index].additions)
                    yield nfc(variables) if normal else variables
        elif not includes:
            yield {}
        for include in includes:
            if not self.extends[include.index]:
                yield nfc(dict(include.entry)) if normal else dict(include.entry)

    def _product(self, names: tuple[str, ...], normal: bool) -> Iterator[dict[str, Any]]:
        """The plain product (no exclude, no include): the hot path of big batches."""
        first, rest = self.axes[0], self.axes[1:]
        single = all(len(axis.names) == 1 for axis in self.axes)
        if normal and not (single and len(names) == 2):
            yield from map(nfc, self._product(names, False))
            return
        if single:
            rest_values = [[item[0][0] for item in axis.materialize()] for axis in rest]
            if len(names) == 2:  # two single axes, the usual big batch: a dict display per job, not a zip
                one, two = names
                if normal:  # ``nfc({one: value, two: other})``, key for key, value for value, done once each
                    one, two, rest_values[0] = nfc(one), nfc(two), nfc(rest_values[0])
                for head in first.items():
                    value = nfc(head[0][0]) if normal else head[0][0]
                    for other in rest_values[0]:
                        yield {one: value, two: other}
                return
            for head in first.items():
                for values in product((head[0][0],), *rest_values):
                    yield dict(zip(names, values, strict=False))
        else:
            rest_rows = [[item[0] for item in axis.materialize()] for axis in rest]
            for head in first.items():
                for rows in product((head[0],), *rest_rows):
                    yield dict(zip(names, chain.from_iterable(rows), strict=False))

    def origin_of(self, name: str, variables: dict[str, Any]) -> tuple[str, int | None] | None:
        """Where this combination's value of ``name`` was written: ``(file, line)``.

        Used for error messages only, so it searches rather than tracks: the
        last include that gave the value, else the first value of its axis
        equal to it.
        """
        for include in reversed(self.includes):
            if name in include.entry and variables.get(name) == include.entry[name]:
                axes = self.axes
                if all(norm(variables.get(axes[a].names[c], "")) == v for a, c, v in include.constraints):
                    return self.path, include.key_lines.get(name, include.line)
        place = self.axis_of(name)
        if place is None:
            return None
        axis = self.axes[place[0]]
        wanted = norm(variables.get(name, ""))
        for _, norms, line in axis.items():
            if norms[place[1]] == wanted:
                return axis.path, line
        return axis.path, axis.line

    def _originals(self) -> Iterator[tuple[tuple[Item, ...], tuple[int, ...]]]:
        first, rest = self.axes[0], self.axes[1:]
        rest_lists = [axis.materialize() for axis in rest]
        for head in first.items():
            head_norms = head[1]
            excludes: list[tuple[Constraint, ...]] = []
            whole = False
            for exclude in self.excludes:
                if all(head_norms[c] == v for a, c, v in exclude.constraints if a == 0):
                    remaining = tuple(k for k in exclude.constraints if k[0] != 0)
                    if not remaining:
                        whole = True
                        break
                    excludes.append(remaining)
            if whole:
                continue
            includes = [
                (include.index, tuple(k for k in include.constraints if k[0] != 0))
                for include in self.includes
                if all(head_norms[c] == v for a, c, v in include.constraints if a == 0)
            ]
            for tail in product(*rest_lists):
                items = (head, *tail)
                if excludes and any(all(items[a][1][c] == v for a, c, v in cons) for cons in excludes):
                    continue
                if includes:
                    applied = tuple(
                        index for index, cons in includes if all(items[a][1][c] == v for a, c, v in cons)
                    )
                    yield items, applied
                else:
                    yield items, ()


def _entries(raw: Any, kind: str, lines: LineMap) -> list[tuple[int, dict[str, Any], int | None]]:
    key = ("matrix", kind)
    if raw is None:  # `exclude:` with every entry commented out
        return []
    if not isinstance(raw, list):
        raise ManifestError(
            f"matrix '{kind}' must be a list of mappings", path=lines.path, line=lines.line_of(*key), rule=f"{kind}-shape"
        )
    entries: list[tuple[int, dict[str, Any], int | None]] = []
    for index, entry in enumerate(raw):
        line = lines.line_of(*key, index)
        if not isinstance(entry, dict) or not entry:
            raise ManifestError(
                f"each '{kind}' entry must be a non-empty mapping", path=lines.path, line=line, rule=f"{kind}-shape"
            )
        checked: dict[str, Any] = {}
        for name, value in entry.items():
            try:
                checked[name] = check_scalar(value)
            except (TypeError, ValueError) as exc:
                raise ManifestError(
                    f"'{kind}' entry, key {name!r}: {exc}",
                    path=lines.path,
                    line=lines.line_of(*key, index, name),
                    rule=f"{kind}-shape",
                ) from None
        entries.append((index, checked, line))
    return entries


def compile_matrix(raw: Any, *, lines: LineMap, base: Path, budget: int) -> Matrix:
    """Check the ``matrix`` mapping, open its sources and count its combinations.

    ``budget`` is the largest number of combinations worth counting one by
    one when the excludes are too many to count by classes.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ManifestError(
            "'matrix' must be a mapping of axes", path=lines.path, line=lines.line_of("matrix"), rule="matrix-shape"
        )
    axes: list[Axis] = []
    seen: dict[str, str] = {}
    for name, value in raw.items():
        if name in ("exclude", "include"):
            continue
        if name != "rows" and isinstance(value, list) and any(isinstance(item, dict) for item in value):
            hint = did_you_mean(name, ("exclude", "include", "rows"))
            if hint:
                raise ManifestError(
                    f"matrix key {name!r} is not exclude, include or rows{hint}",
                    path=lines.path,
                    line=lines.line_of("matrix", name),
                    rule="unknown-key",
                )
        axis = rows_from_yaml(value, lines=lines, base=base) if name == "rows" else axis_from_yaml(
            name, value, lines=lines, base=base
        )
        for variable in axis.names:
            if variable in seen:
                raise ManifestError(
                    f"variable {variable!r} comes from both {seen[variable]!r} and {axis.label!r}",
                    path=lines.path,
                    line=axis.line,
                    rule="axis-name",
                )
            seen[variable] = axis.label
        axes.append(axis)
    names = tuple(chain.from_iterable(axis.names for axis in axes))
    where = {name: (a, i) for a, axis in enumerate(axes) for i, name in enumerate(axis.names)}  # linear in columns

    excludes: list[Exclude] = []
    for index, entry, line in _entries(raw.get("exclude", []), "exclude", lines):
        constraints: list[Constraint] = []
        for name, value in entry.items():
            if name not in where:
                raise ManifestError(
                    f"exclude key {name!r} is not a matrix variable{did_you_mean(name, names)}"
                    + ("" if names else " (the matrix has no axes)"),
                    path=lines.path,
                    line=lines.line_of("matrix", "exclude", index, name),
                    rule="exclude-key",
                )
            constraints.append((where[name][0], where[name][1], norm(value)))
        excludes.append(Exclude(index, line, entry, tuple(constraints)))

    includes: list[Include] = []
    for index, entry, line in _entries(raw.get("include", []), "include", lines):
        constraints = []
        additions: dict[str, Any] = {}
        for name, value in entry.items():
            if not is_variable_name(name) or name in RESERVED_VARS:
                why = "is built in" if name in RESERVED_VARS else "is not a valid variable name"
                raise ManifestError(
                    f"include key {name!r} {why}",
                    path=lines.path,
                    line=lines.line_of("matrix", "include", index, name),
                    rule="include-key",
                )
            if name in where:
                constraints.append((where[name][0], where[name][1], norm(value)))
            else:
                additions[name] = value
        key_lines = {name: lines.line_of("matrix", "include", index, name) for name in entry}
        includes.append(Include(index, line, entry, tuple(constraints), additions, key_lines))

    parts = (lines.path, tuple(axes), tuple(excludes), tuple(includes), names)
    combinations, exact, extends = _count(Matrix(*parts, 0, True, (False,) * len(includes)), budget)
    return Matrix(*parts, combinations, exact, extends)


def _count(matrix: Matrix, budget: int) -> tuple[int, bool, tuple[bool, ...]]:
    """``(combinations, exact, extends)`` without expanding the product."""
    includes = matrix.includes
    if not matrix.axes:
        return (len(includes) or 1), True, (False,) * len(includes)
    by_classes = _count_by_classes(matrix)
    if by_classes is not None:
        survivors, extends = by_classes
        return survivors + extends.count(False), True, tuple(extends)
    upper = math.prod(axis.count for axis in matrix.axes) + len(includes)
    if upper > budget:
        return upper, False, (False,) * len(includes)
    survivors = 0
    flags = [False] * len(includes)
    for _, applied in matrix._originals():
        survivors += 1
        for index in applied:
            flags[index] = True
    return survivors + flags.count(False), True, tuple(flags)


def _count_by_classes(matrix: Matrix) -> tuple[int, list[bool]] | None:
    mentioned: dict[tuple[int, int], set[str]] = {}
    constraint_sets = [entry.constraints for entry in matrix.excludes]
    constraint_sets += [entry.constraints for entry in matrix.includes]
    for constraints in constraint_sets:
        for a, c, v in constraints:
            mentioned.setdefault((a, c), set()).add(v)
    constrained = sorted({a for a, _ in mentioned})
    free = math.prod(axis.count for a, axis in enumerate(matrix.axes) if a not in constrained)
    columns = {a: sorted(c for (b, c) in mentioned if b == a) for a in constrained}
    position = {(a, c): i for a in constrained for i, c in enumerate(columns[a])}
    groups: list[list[tuple[tuple[str | None, ...], int]]] = []
    for a in constrained:
        counter: Counter[tuple[str | None, ...]] = Counter()
        cols = columns[a]
        sets = [mentioned[(a, c)] for c in cols]
        for _, norms, _ in matrix.axes[a].items():
            counter[tuple(norms[c] if norms[c] in s else None for c, s in zip(cols, sets, strict=False))] += 1
        groups.append(list(counter.items()))
    if math.prod(len(group) for group in groups) > CLASS_LIMIT:
        return None
    slot = {a: i for i, a in enumerate(constrained)}
    excludes = [tuple((slot[a], position[(a, c)], v) for a, c, v in e.constraints) for e in matrix.excludes]
    includes = [tuple((slot[a], position[(a, c)], v) for a, c, v in i.constraints) for i in matrix.includes]
    survivors = 0
    extends = [False] * len(includes)
    for cell in product(*groups):
        if any(all(cell[s][0][p] == v for s, p, v in cons) for cons in excludes):
            continue
        survivors += math.prod(weight for _, weight in cell)
        for index, cons in enumerate(includes):
            if not extends[index] and all(cell[s][0][p] == v for s, p, v in cons):
                extends[index] = True
    return survivors * free, extends
