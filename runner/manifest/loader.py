"""Safe YAML loading that remembers where every value came from.

The manifest is parsed with PyYAML's pure-Python reader, scanner, parser and
composer, then turned into plain Python values by :func:`parse_yaml` itself
rather than by a PyYAML constructor, so that:

* every node's line is recorded in a :class:`LineMap` keyed by its path
  (``("matrix", "city", 2)``), for error messages;
* scalars follow the YAML 1.2 *core* schema: ``yes``/``no``/``on``/``off``
  are strings, ``16:9`` is a string (not the sexagesimal integer 969),
  dates stay strings; only ``true``/``false``, ``null``/``~``, decimal,
  ``0o``/``0x`` integers and floats are typed;
* mapping keys are always their literal text, and a duplicate key is an error;
* tags other than the core ones (``!!python/...``, ``!!binary``, custom ``!x``)
  are refused;
* aliases are bounded: the value an alias stands for is reused (not copied),
  and the *expanded* size of the document is computed arithmetically, so an
  alias bomb ("billion laughs") is refused after a few hundred node visits
  instead of exhausting memory. Recursive aliases are refused;
* nesting is bounded (:data:`MAX_DEPTH` levels): a document nested deeper is
  refused while it is composed, before anything recurses through it, so a
  hostile file is a :class:`ManifestError` ("nested too deeply"), never a
  ``RecursionError``.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from runner.errors import ManifestError
from runner.manifest.values import control_character

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_NODES", "LineMap", "PathKey", "nested_too_deeply", "parse_yaml"]

#: Upper bound on the number of values a document may expand to, aliases
#: counted as often as they are used. A hand-written manifest with a few
#: thousand inline rows stays far below it; an alias bomb passes it at once.
MAX_EXPANDED_NODES = 2_000_000

#: Upper bound on nesting (mappings and lists inside each other). A real
#: manifest nests five or six levels; the bound keeps every walk over the
#: values (validation, hashing, templates) far from the interpreter's stack limit.
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "merge"


class _CoreResolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema (plus ``<<`` merge keys)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's own per-class table (an instance variable in its stubs)


_CoreResolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_CoreResolver.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_CoreResolver.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_CoreResolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])


def nested_too_deeply(*, path: str, line: int | None) -> ManifestError:
    """The error for a document (or a data file) nested past :data:`MAX_DEPTH` levels."""
    return ManifestError(
        f"nested too deeply (more than {MAX_DEPTH} levels of lists and mappings); a manifest needs a few",
        path=path,
        line=line,
        rule="yaml-depth",
    )


class _Loader(Reader, Scanner, Parser, Composer, _CoreResolver):
    """Composes a node graph; construction is done by :func:`parse_yaml`."""

    def __init__(self, stream: str, path: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreResolver.__init__(self)
        self.path = path
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML's composer recurses once per level: refuse a deep document before the stack does.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise nested_too_deeply(path=self.path, line=int(mark.line) + 1 if mark is not None else None)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass(slots=True)
class LineMap:
    """1-based lines of the YAML nodes of one file, keyed by value path."""

    path: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, *key: str | int) -> int | None:
        """The line of the node at ``key``, or of its nearest recorded ancestor."""
        probe: PathKey = tuple(key)
        while True:
            line = self.lines.get(probe)
            if line is not None or not probe:
                return line
            probe = probe[:-1]

    def has(self, *key: str | int) -> bool:
        return tuple(key) in self.lines


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: ScalarNode, path: str) -> Any:
    tag, text = node.tag, node.value
    if tag == _STR:
        why = control_character(text)
        if why is not None:
            raise ManifestError(why, path=path, line=_line(node), rule="control-character")
        return text
    if tag == _NULL:
        if text not in ("", "~", "null", "Null", "NULL"):
            raise _bad_scalar(node, path, "null")
        return None
    if tag == _BOOL:
        low = text.lower()
        if low not in ("true", "false"):
            raise _bad_scalar(node, path, "bool")
        return low == "true"
    if tag == _INT:
        digits = text.replace("_", "")
        try:
            if digits[:2] in ("0o", "0x"):  # read whatever its length: one Python cannot print is refused here
                number = int(digits[2:], 8 if digits[1] == "o" else 16)
                if number.bit_length() * math.log10(2) >= sys.get_int_max_str_digits():
                    raise ManifestError(integer_too_long(int(number.bit_length() * math.log10(2)) + 1, about=True),
                                        path=path, line=_line(node), rule="yaml-scalar")
                return number
            return int(digits, 10)
        except ValueError:
            count = len(digits.lstrip("+-"))
            if count > sys.get_int_max_str_digits() and digits.lstrip("+-").isdigit():
                raise ManifestError(integer_too_long(count), path=path, line=_line(node), rule="yaml-scalar") from None
            raise _bad_scalar(node, path, "int") from None
    if tag == _FLOAT:
        low = text.lower().lstrip("+")
        if low in (".inf", "-.inf"):
            return -math.inf if low.startswith("-") else math.inf
        if low == ".nan":
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise _bad_scalar(node, path, "float") from None
    raise ManifestError(
        f"unsupported YAML tag {tag!r}; only plain strings, numbers, booleans, null, lists and mappings are allowed",
        path=path,
        line=_line(node),
        rule="yaml-tag",
    )


def _bad_scalar(node: ScalarNode, path: str, kind: str) -> ManifestError:
    value = node.value
    shown = repr(value) if len(value) <= 80 else f"{value[:80]!r}… ({len(value):,} characters)"
    return ManifestError(f"{shown} is not a valid {kind}", path=path, line=_line(node), rule="yaml-scalar")


def integer_too_long(digits: int, *, about: bool = False) -> str:
    """What to say of an integer Python will not read or print (more digits than ``sys.get_int_max_str_digits()``)."""
    return (f"an integer of {'about ' if about else ''}{digits:,} digits is longer than any field takes (at most"
            f" {sys.get_int_max_str_digits():,} digits are read); quote it to make it text")


class _Builder:
    """Turns a composed node graph into Python values, recording lines."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.lines: dict[PathKey, int] = {}
        self.done: dict[int, tuple[Any, int]] = {}  # id(node) -> (value, expanded size)
        self.active: set[int] = set()

    def build(self, node: Node, key: PathKey, record: bool) -> tuple[Any, int]:
        ident = id(node)
        cached = self.done.get(ident)
        if cached is not None:  # an alias: reuse the value, count its size again
            return cached
        if ident in self.active:
            raise ManifestError("recursive YAML alias", path=self.path, line=_line(node), rule="yaml-alias")
        if record:
            self.lines[key] = _line(node)
        if isinstance(node, ScalarNode):
            result: tuple[Any, int] = (_scalar(node, self.path), 1)
        elif isinstance(node, SequenceNode):
            self._check_tag(node, _SEQ)
            self.active.add(ident)
            result = self._sequence(node, key, record)
            self.active.discard(ident)
        elif isinstance(node, MappingNode):
            self._check_tag(node, _MAP)
            self.active.add(ident)
            result = self._mapping(node, key, record)
            self.active.discard(ident)
        else:  # pragma: no cover - the composer makes only these three
            raise ManifestError("unexpected YAML node", path=self.path, line=_line(node), rule="yaml")
        if node.start_mark is not None and _is_anchored(node):
            self.done[ident] = result
        return result

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            raise ManifestError(
                f"unsupported YAML tag {node.tag!r}", path=self.path, line=_line(node), rule="yaml-tag"
            )

    def _grow(self, size: int, node: Node) -> None:
        if size > self.limit:
            raise ManifestError(
                f"the YAML document expands to more than {self.limit:,} values (an alias bomb?); "
                "use files for large value lists",
                path=self.path,
                line=_line(node),
                rule="yaml-size",
            )

    def _sequence(self, node: SequenceNode, key: PathKey, record: bool) -> tuple[Any, int]:
        items: list[Any] = []
        size = 1
        for index, child in enumerate(node.value):
            value, child_size = self.build(child, (*key, index), record)
            size += child_size
            self._grow(size, child)
            items.append(value)
        return items, size

    def _mapping(self, node: MappingNode, key: PathKey, record: bool) -> tuple[Any, int]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        size = 1
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                value, child_size = self.build(value_node, (*key, "<<"), False)
                for source in value if isinstance(value, list) else [value]:
                    if not isinstance(source, dict):
                        raise ManifestError(
                            "a '<<' merge key needs a mapping or a list of mappings",
                            path=self.path,
                            line=_line(key_node),
                            rule="yaml-merge",
                        )
                    for name, item in source.items():
                        merged.setdefault(name, item)
                size += child_size
                self._grow(size, value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise ManifestError(
                    "mapping keys must be plain text", path=self.path, line=_line(key_node), rule="yaml-key"
                )
            name = str(key_node.value)
            if name in result:
                raise ManifestError(
                    f"duplicate key {name!r} (YAML would silently keep only the last one)",
                    path=self.path,
                    line=_line(key_node),
                    rule="duplicate-key",
                )
            value, child_size = self.build(value_node, (*key, name), record)
            if record and isinstance(value_node, (MappingNode, SequenceNode)) and (*key, name) in self.lines:
                # A block collection starts on the line after its key; point at the key.
                self.lines[(*key, name)] = min(self.lines[(*key, name)], _line(key_node))
            size += child_size
            self._grow(size, value_node)
            result[name] = value
        for name, item in merged.items():
            result.setdefault(name, item)
        return result, size


def _is_anchored(node: Node) -> bool:
    # The composer does not keep anchors on nodes; caching every collection is
    # cheap (one dict entry) and is what makes aliases O(1) to rebuild.
    return isinstance(node, (MappingNode, SequenceNode))


# PyYAML's words for the usual slips, and what to do (the README walk: a bad indent named the line, not the fix).
_YAML_FIXES = (
    ("expected <block end>", "this line is indented unlike the lines it belongs with: YAML nests by spaces, so line"
                             " it up with its siblings (or the key it belongs under)"),
    ("mapping values are not allowed here", "a ': ' inside a value starts a key: quote the value (\"…\")"),
    ("cannot start any token", "indent with spaces, not tabs; quote a value that starts with @ or `"),
)


def parse_yaml(text: str, *, path: str, limit: int = MAX_EXPANDED_NODES) -> tuple[Any, LineMap]:
    """Parse one YAML document into plain values and the lines of its nodes.

    Raises :class:`ManifestError` (with line and column) for invalid YAML,
    unsupported tags, duplicate keys, recursive aliases and documents that
    expand past ``limit`` values.
    """
    try:
        loader = _Loader(text, path)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except RecursionError as exc:  # a stack shallower than MAX_DEPTH needs: still the user's file
        raise nested_too_deeply(path=path, line=None) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ManifestError(
            f"invalid YAML: character {exc.character!r} is not allowed (write it as an escape in a \"double-quoted\" string)",
            path=path,
            line=line,
            rule="yaml-syntax",
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        mark_line = int(mark.line) + 1 if mark is not None else None
        column = f" (column {int(mark.column) + 1})" if mark is not None else ""
        hint = next((f"; {fix}" for said, fix in _YAML_FIXES if said in problem), "")
        raise ManifestError(f"invalid YAML{column}: {problem}{hint}", path=path, line=mark_line,
                            rule="yaml-syntax") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", path=path, rule="yaml-syntax") from exc
    lines = LineMap(path)
    if node is None:
        return None, lines
    builder = _Builder(path, limit)
    try:
        value, _ = builder.build(node, (), True)
    except RecursionError as exc:
        raise nested_too_deeply(path=path, line=None) from exc
    lines.lines = builder.lines
    return value, lines
