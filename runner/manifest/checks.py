"""Checks that catch a manifest's typos, and the errors that explain them (issue 12, item 4).

- :func:`check_excludes`: an ``exclude`` entry that matches no combination of the matrix's product
  (GitHub Actions removes nothing then; here it is a typo such as ``"16:9 "``) is refused, naming
  the entry and the nearest values that exist. An ``include`` never is: it extends combinations or
  becomes one of its own, as in GitHub Actions;
- :func:`check_output_extension`: a literal extension at the end of ``output`` must be the one the
  endpoints produce (:attr:`EndpointSpec.output_extension <runner.endpoints.EndpointSpec>`), since
  ``x.webm`` would silently become ``x.webm.mp4``;
- :func:`blank_prompt`: the error for a prompt or shot prompt that renders empty or blank;
- :func:`duplicate_output`: the error for two jobs that would write one file, naming the variables
  whose values differ and that ``output`` leaves out.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runner import endpoints
from runner.errors import ManifestError
from runner.jobs import JobSpec
from runner.manifest.loader import LineMap
from runner.manifest.matrix import Exclude, Matrix
from runner.manifest.models import MODEL_VAR
from runner.manifest.templates import Template
from runner.manifest.values import describe_job, norm, shown

if TYPE_CHECKING:
    from runner.manifest.manifest import Manifest

__all__ = ["blank_prompt", "check_excludes", "check_output_extension", "duplicate_output"]

#: What reads as a file extension: a dot and 1-5 letters or digits, not only digits (``v1.5`` is a version).
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,5})$")
_SUGGEST_LIMIT = 100_000  # distinct values looked at for a did-you-mean (error path only)


# ------------------------------------------------------------------ exclude entries that match nothing


def check_excludes(matrix: Matrix, lines: LineMap) -> None:
    """Refuse the first ``exclude`` entry that matches no combination of the axes' product.

    An entry matches something when, on every axis it names, some value (or row) has all of its
    keys on that axis; axes are independent in a product. Each constrained axis is read once, and
    only until every entry has found its value there.
    """
    pending: dict[int, dict[int, tuple[tuple[int, str], ...]]] = {}  # axis → exclude index → (column, value)
    for exclude in matrix.excludes:
        by_axis: dict[int, list[tuple[int, str]]] = {}
        for a, c, v in exclude.constraints:
            by_axis.setdefault(a, []).append((c, v))
        for a, wanted in by_axis.items():
            pending.setdefault(a, {})[exclude.index] = tuple(wanted)
    unmatched: dict[int, int] = {}  # exclude index → the axis it found nothing on
    for a, left in pending.items():
        left = dict(left)
        for _, norms, _ in matrix.axes[a].items():
            for index in [i for i, wanted in left.items() if all(norms[c] == v for c, v in wanted)]:
                del left[index]
            if not left:
                break
        for index in left:
            unmatched.setdefault(index, a)
    if unmatched:
        index = min(unmatched)
        raise _unmatched(matrix, matrix.excludes[index], unmatched[index], lines)


def _unmatched(matrix: Matrix, exclude: Exclude, a: int, lines: LineMap) -> ManifestError:
    axis = matrix.axes[a]
    wanted = [(c, v) for b, c, v in exclude.constraints if b == a]
    seen: dict[int, dict[str, None]] = {c: {} for c, _ in wanted}
    for _, norms, _ in axis.items():
        for c, values in seen.items():
            if len(values) < _SUGGEST_LIMIT:
                values.setdefault(norms[c], None)
    missing = [(c, v) for c, v in wanted if v not in seen[c]]
    entry = describe_job(exclude.entry, None)
    if missing:
        c, v = missing[0]
        name = axis.names[c]
        known = list(seen[c])
        close = difflib.get_close_matches(v, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(x) for x in close)}?" if close else ""
        listed = f" (its values: {', '.join(known)})" if len(known) <= 12 else f" ({len(known):,} values)"
        why = f"{name} has no value {v!r}{hint}{listed}"
        line = lines.line_of("matrix", "exclude", exclude.index, name)
    else:
        together = " and ".join(f"{axis.names[c]} {v!r}" for c, v in wanted)
        why = f"no row of {axis.label} has {together} together"
        line = exclude.line
    return ManifestError(
        f"exclude entry {entry} matches no combination of the matrix: {why}; fix the entry or remove it",
        path=lines.path,
        line=line,
        rule="exclude-unmatched",
    )


# ------------------------------------------------------------------ output extensions


def _literal_tail(text: str) -> str:
    """The literal text after the last ``{field}`` of a template (``""`` when it ends with a field)."""
    parsed = list(string.Formatter().parse(text))
    if not parsed or parsed[-1][1] is not None:
        return ""
    return parsed[-1][0]


def check_output_extension(output: Template, models: tuple[str, ...], path: str) -> None:
    """Refuse an ``output`` that ends in an extension other than the one its models' endpoints produce."""
    found = _EXTENSION.search(_literal_tail(output.text).rpartition("/")[2])
    if found is None or found.group(1).isdigit():
        return
    extension = "." + found.group(1)
    expected = sorted({endpoints.get(model).output_extension for model in models})
    if extension.lower() in (e.lower() for e in expected):
        return
    makes = " and ".join(expected)
    fix = f"end it in {expected[0]} (or leave the extension out: {expected[0]} is added)" if len(expected) == 1 else (
        "leave the extension out (each model's is added)")
    raise ManifestError(
        f"output {output.text!r} ends in {extension!r}, but {', '.join(models)} makes {makes} files: {fix}",
        path=path,
        line=output.line,
        rule="output-extension",
    )


# ------------------------------------------------------------------ blank prompts


def _blank(value: Any) -> bool:
    return isinstance(value, str) and (not value or value.isspace())


def blank_prompt(manifest: Manifest, template: Template, values: Mapping[str, Any], variables: dict[str, Any],
                 repeat: int) -> ManifestError:
    """The error for ``template`` (a prompt or shot prompt) rendered blank for this job: the variables that
    made it so, at the line (or data row) that gave the first one."""
    blank = [name for name in template.fields if _blank(values.get(name, ""))]
    path, line = manifest.display_path, template.line
    if blank:
        origin = manifest.matrix.origin_of(blank[0], variables)
        if origin is not None:
            path, line = origin
        elif manifest.lines.has("defaults", blank[0]):
            line = manifest.line_of("defaults", blank[0])
        names = ", ".join(f"{{{name}}}" for name in blank)
        why = (f"{names} {'is' if len(blank) == 1 else 'are'} empty in this job; give it a value (an empty matrix"
               " value or CSV cell is no text) or drop that row")
    else:
        why = "write what the video should show"
    return ManifestError(
        f"{template.where} is empty: {why} — an empty prompt would still be a paid task",
        path=path,
        line=line,
        job=describe_job(variables, repeat),
        rule="empty-prompt",
    )


# ------------------------------------------------------------------ two jobs, one file


def _named(job: JobSpec) -> dict[str, Any]:
    return {**job.vars, MODEL_VAR: job.model, "repeat": job.repeat}


def duplicate_output(manifest: Manifest, first: JobSpec, second: JobSpec) -> ManifestError:
    """Two jobs would write one file: name both, and the variables whose values tell them apart."""
    output = manifest.templates.output
    a, b = _named(first), _named(second)
    differ = [name for name in dict.fromkeys([*a, *b]) if norm(a.get(name, "")) != norm(b.get(name, ""))]
    missing = [name for name in differ if name not in output.fields]
    if missing:
        text = output.text
        stem, ext = (text[:-4], text[-4:]) if text.lower().endswith(".mp4") else (text, "")
        suggestion = stem + "".join(f"-{{{name}}}" for name in missing) + ext
        pairs = ", ".join(f"{name} ({_value(a, name)} vs {_value(b, name)})" for name in missing[:3])
        verb = "does" if len(missing) == 1 else "do"
        fix = (f"they differ in {pairs}, which output {verb} not use; add "
               f"{', '.join(f'{{{name}}}' for name in missing)} to output, e.g. output: \"{suggestion}\"")
    elif differ:
        name = differ[0]
        fix = (f"their {name} values {_value(a, name)} and {_value(b, name)} give the same name (names ignore case,"
               " and / \\ : * ? \" < > | become _); make the values differ by more, or add {key} to output")
    else:  # pragma: no cover - jobs that differ in nothing have one key, refused before
        fix = "put a variable that tells them apart into output, e.g. {key} or {repeat}"
    return ManifestError(
        f"jobs {describe_job(first.vars, first.repeat)} and {describe_job(second.vars, second.repeat)} would both "
        f"be saved as {second.output!r} (names are compared ignoring case): {fix}",
        path=manifest.display_path,
        line=output.line,
        job=describe_job(second.vars, second.repeat),
        rule="duplicate-output",
    )


def _value(variables: Mapping[str, Any], name: str) -> str:
    return shown(variables[name]) if name in variables else "(none)"
