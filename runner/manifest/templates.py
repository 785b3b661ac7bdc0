"""``{var}`` templates: compiled once, rendered once per job.

The syntax is the name-only subset of Python's ``str.format``: ``{name}``
inserts a variable, ``{{`` and ``}}`` are literal braces. Attribute and index
access (``{a.b}``, ``{a[0]}``), positional fields (``{}``, ``{0}``),
conversions (``{a!r}``) and format specs (``{a:>5}``) are refused when the
manifest is loaded, so rendering can never reach into a value's attributes.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from runner.errors import ManifestError
from runner.manifest.values import is_variable_name

__all__ = ["Template", "compile_template"]

_FORMATTER = string.Formatter()


class Template(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """A checked template: its text, the variables it uses and where it is."""

    text: str
    fields: tuple[str, ...]
    where: str
    line: int | None

    @property
    def constant(self) -> bool:
        return not self.fields

    def render(self, values: Mapping[str, Any]) -> str:
        """The text with each ``{name}`` replaced; ``KeyError(name)`` if one is missing."""
        text = self.text
        join = _joins.get(text)
        if join is None and text not in _joins:
            join = _joins[text] = _join_of(text) if len(_joins) < 1024 else None
        if join is not None:
            try:
                return join(values)
            except TypeError:  # a value that is not a string: format it, here and from now on
                _joins[text] = None
        return text.format_map(values)


# Per template text: a function joining its literal pieces and its values when they are all strings (the same
# text as ``format_map``, without parsing the template at every job), or None (``format_map``).
_Join = Callable[[Mapping[str, Any]], str]
_joins: dict[str, _Join | None] = {}


def _join_of(text: str) -> _Join | None:
    pieces: list[str] = []
    names: list[str] = []
    current = ""
    for literal, name, spec, conversion in _FORMATTER.parse(text):
        current += literal
        if name is not None:
            if spec or conversion:
                return None
            pieces.append(current)
            names.append(name)
            current = ""
    pieces.append(current)
    join = "".join
    if len(names) == 1:
        (a,), (p0, p1) = names, pieces
        return lambda values: join((p0, values[a], p1))
    if len(names) == 2:
        (a, b), (p0, p1, p2) = names, pieces
        return lambda values: join((p0, values[a], p1, values[b], p2))
    if len(names) == 3:
        (a, b, c), (p0, p1, p2, p3) = names, pieces
        return lambda values: join((p0, values[a], p1, values[b], p2, values[c], p3))
    return None


def compile_template(text: str, *, where: str, path: str, line: int | None) -> Template:
    """Check ``text`` (found at ``path:line``, described as ``where``) and compile it."""
    fields: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ManifestError(
            f"{where}: bad template {text!r}: {exc} (write {{{{ and }}}} for literal braces)",
            path=path,
            line=line,
            rule="template-syntax",
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not is_variable_name(name) or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ManifestError(
                f"{where}: {shown} is not allowed; a template field is a plain variable name like {{city}} "
                "(write {{ and }} for literal braces)",
                path=path,
                line=line,
                rule="template-syntax",
            )
        if name not in fields:
            fields.append(name)
    return Template(text, tuple(fields), where, line)
