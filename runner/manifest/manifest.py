"""The loaded manifest: :func:`load_manifest` and the :class:`Manifest` it returns.

Loading parses the YAML (safely, with lines), validates the keys, compiles the
templates, opens and counts the value files and counts the matrix — all
without building a single job. Anything that is wrong with the manifest as a
whole is reported here; what is wrong with one job is reported by
:func:`runner.manifest.expand`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from runner import endpoints
from runner.endpoints.media import MediaKind
from runner.endpoints.plain import field_names
from runner.errors import ManifestError
from runner.manifest.checks import check_excludes, check_output_extension
from runner.manifest.files import bad_utf8, open_regular, utf16_hint
from runner.manifest.inputs import InputFiles, InputResolver, media_values
from runner.manifest.loader import LineMap, parse_yaml
from runner.manifest.matrix import Matrix, compile_matrix
from runner.manifest.models import MODEL_VAR, Pricing, manifest_models, parse_pricing, union_fields
from runner.manifest.paths import check_template_text
from runner.manifest.schema import Limits, ShotSpec, Spec, parse_spec
from runner.manifest.sourcefiles import Signature, digest, signature, value_files
from runner.manifest.templates import Template, compile_template
from runner.manifest.values import check_scalar, did_you_mean
from runner.pricing import Price

__all__ = ["Manifest", "Templates", "load_manifest", "request_fields"]


def request_fields(model: str) -> frozenset[str]:
    """Request fields ``defaults:`` and matrix axes may set: the model's fields but those set at the top level."""
    spec = endpoints.get(model)
    return frozenset(field_names(spec)) - spec.templating.top_level


def media_fields(models: tuple[str, ...]) -> dict[str, MediaKind]:
    """The media input fields (``image``, ``end_image``, ``video``) of any of ``models``, with their kind."""
    found: dict[str, MediaKind] = {}
    for model in models:
        found.update(endpoints.get(model).media_fields)
    return found


@dataclass(frozen=True, slots=True)
class Shot:
    """A compiled ``multi_prompt`` item."""

    prompt: Template
    duration: Template | int
    index: int | None


class Templates(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """The compiled templates of a manifest."""

    prompt: Template | None
    texts: tuple[tuple[str, Template], ...]  # (request field, template) of the templated defaults
    shots: tuple[Shot, ...] | None
    output: Template

    def request_fields_used(self) -> frozenset[str]:
        """Variables used by the templates that go into the request body."""
        used: set[str] = set()
        if self.prompt is not None:
            used.update(self.prompt.fields)
        for _, template in self.texts:
            used.update(template.fields)
        for shot in self.shots or ():
            used.update(shot.prompt.fields)
            if isinstance(shot.duration, Template):
                used.update(shot.duration.fields)
        return frozenset(used)

    def all_used(self) -> frozenset[str]:
        return self.request_fields_used() | set(self.output.fields)


class Manifest(NamedTuple):  # a record: no methods generated at every start (a dataclass costs ~1 ms)
    """A loaded, checked manifest. Expand it with :func:`runner.manifest.expand`."""

    name: str
    model: str  # the top-level model: that of every job without a model variable of its own
    models: tuple[str, ...]  # every model some job may use, sorted
    defaults: Mapping[str, Any]
    prompt: str | None
    multi_prompt: tuple[ShotSpec, ...] | None
    matrix: Matrix
    repeats: int
    output: str
    limits: Limits
    salt: str | None
    pricing: Price | None  # the one-price form of pricing: (every model); see price_for
    model_pricing: Mapping[str, Price]  # the per-model form
    inputs: InputFiles
    max_jobs: int
    in_doubt: Literal["hold", "resubmit"]
    retries: int
    path: Path
    file_digest: str
    display_path: str
    lines: LineMap
    templates: Templates
    sources: tuple[tuple[str, Signature], ...] = ()  # each file the plan was read from, as it was before the read

    def line_of(self, *key: str | int) -> int | None:
        """Line of the YAML node at ``key`` (e.g. ``"matrix", "city", 0``) or its parent."""
        return self.lines.line_of(*key)

    def settings_said(self) -> dict[str, Any]:
        """The run settings this manifest says (``limits:`` keys given, ``in_doubt``), for resolve_settings.

        Only what the file says: the model's defaults must not shadow a flag's or a variable's absence.
        None is a lifted limit (``rpm: none``).
        """
        return {**self.limits.said(), "in_doubt": self.in_doubt}

    @property
    def price(self) -> Price:
        """The price of the top-level model's jobs (the manifest's ``pricing`` or the endpoint's default)."""
        return endpoints.get(self.model).price(Pricing(self.pricing, self.model_pricing).override(self.model))

    def price_for(self, model: str) -> Price | None:
        """The price of ``model``'s jobs: the manifest's ``pricing:``, else the endpoint's; None when unknown."""
        return Pricing(self.pricing, self.model_pricing).price_for(model)

    def unpriced_models(self) -> tuple[str, ...]:
        """The models this manifest uses that have no known price (their jobs are estimated at 0)."""
        return tuple(model for model in self.models if self.price_for(model) is None)

    @property
    def digest(self) -> str:
        """What the plan depends on: the manifest, its value files and the local input files it names.

        A run re-plans when this changes, so an edited image (or a renamed folder) is planned anew.
        """
        media = media_fields(self.models)
        values = list(media_values(dict(self.defaults), self.matrix, media)) if media else []
        if not values:
            return self.file_digest
        inputs = self.inputs.digest(values)
        return hashlib.sha256(f"{self.file_digest}\0inputs\0{inputs}".encode()).hexdigest()

    def input_resolver(self, *, deferred: bool = False) -> InputResolver:
        """What the engine sends for this manifest's local input files (data URIs, or ``inputs.base_url`` + path;
        ``deferred``: a file sent inline read only as the body's bytes are encoded, see :class:`InputResolver`)."""
        return InputResolver(self.path.parent, self.inputs.base_url, deferred)


def _compile_templates(
    spec: Spec, templating: endpoints.Templating, defaults: dict[str, Any], lines: LineMap
) -> Templates:
    path = lines.path

    def compile_(text: str, where: str, *key: str | int) -> Template:
        template = compile_template(text, where=where, path=path, line=lines.line_of(*key))
        if "key" in template.fields:
            raise ManifestError(
                f"{where}: {{key}} is the hash of the request, so it can only be used in 'output'",
                path=path,
                line=template.line,
                rule="key-in-request",
            )
        return template

    prompt = compile_(spec.prompt, "prompt", "prompt") if spec.prompt is not None else None
    texts = tuple(
        (name, compile_(text, f"defaults.{name}", "defaults", name))
        for name in templating.texts
        if isinstance(text := defaults.get(name), str) and text
    )
    shots = None
    if spec.multi_prompt is not None:
        compiled = []
        for index, shot in enumerate(spec.multi_prompt):
            duration: Template | int = (
                compile_(shot.duration, f"multi_prompt[{index}].duration", "multi_prompt", index, "duration")
                if isinstance(shot.duration, str)
                else shot.duration
            )
            compiled.append(
                Shot(
                    compile_(shot.prompt, f"multi_prompt[{index}].prompt", "multi_prompt", index, "prompt"),
                    duration,
                    shot.index,
                )
            )
        shots = tuple(compiled)
    output = compile_template(spec.output, where="output", path=path, line=lines.line_of("output"))
    problem = check_template_text(output.render({field: "x" for field in output.fields}))
    if problem is not None:
        raise ManifestError(f"output {spec.output!r}: {problem}", path=path, line=output.line, rule="output-template")
    return Templates(prompt, texts, shots, output)


def _check_templating(spec: Spec, models: tuple[str, ...], lines: LineMap) -> None:
    """The manifest's top-level templates must fill a field every model it uses has."""
    for model in models:
        templating = endpoints.get(model).templating
        for key, target in (("prompt", templating.prompt), ("multi_prompt", templating.shots)):
            if getattr(spec, key) is not None and target is None:
                raise ManifestError(
                    f"{key}: {model} takes no {key}",
                    path=lines.path,
                    line=lines.line_of(key),
                    rule="unknown-field",
                )


def _templating(models: tuple[str, ...]) -> endpoints.Templating:
    """The templating of the manifest's models together (the same for the Kling family)."""
    first = endpoints.get(models[0]).templating
    texts = tuple(dict.fromkeys(name for model in models for name in endpoints.get(model).templating.texts))
    return endpoints.Templating(prompt=first.prompt, shots=first.shots, texts=texts)


def _check_defaults(spec: Spec, models: tuple[str, ...], lines: LineMap) -> dict[str, Any]:
    fields = union_fields(models, request_fields)
    top_level: dict[str | None, str] = {}
    for model in models:
        templating = endpoints.get(model).templating
        top_level.update({templating.prompt: "prompt", templating.shots: "multi_prompt"})
    top_level.pop(None, None)
    defaults: dict[str, Any] = {}
    for name, value in spec.defaults.items():
        line = lines.line_of("defaults", name)
        if name in top_level:
            raise ManifestError(
                f"defaults.{name}: write {top_level[name]}: at the top level of the manifest",
                path=lines.path,
                line=line,
                rule="unknown-field",
            )
        if name not in fields:
            raise ManifestError(
                f"defaults: {name!r} is not a request field of {' or '.join(models)}{did_you_mean(name, fields)} "
                f"(fields: {', '.join(sorted(fields))})",
                path=lines.path,
                line=line,
                rule="unknown-field",
            )
        try:
            defaults[name] = check_scalar(value)
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"defaults.{name}: {exc}", path=lines.path, line=line, rule="defaults-value") from None
    return defaults


def _check_unused(matrix: Matrix, templates: Templates, fields: frozenset[str], lines: LineMap) -> None:
    """An axis or include key that sets no field and feeds no template is a typo or a waste."""
    candidates = templates.all_used() | fields | {MODEL_VAR}  # the model variable picks the endpoint
    provided = matrix.variables | fields | {"repeat", "key", "prompt", "multi_prompt", MODEL_VAR}
    if not candidates <= provided:
        return  # a template names an unknown variable: the first job reports it, with a did-you-mean
    matched = {matrix.axes[a].names[c] for include in matrix.includes for a, c, _ in include.constraints}
    used = candidates | matched  # an axis an include matches on may change the body through it
    for axis in matrix.axes:
        if axis.rows:
            continue  # spare CSV columns are fine
        name = axis.names[0]
        if name not in used:
            raise ManifestError(
                f"matrix axis {name!r} is not a request field and no template uses it, so every value would "
                f"ask for the same video{did_you_mean(name, candidates - {name})}; use {{{name}}} in the prompt "
                "(or output), or use repeats: for several samples",
                path=lines.path,
                line=axis.line,
                rule="unused-variable",
            )
    for include in matrix.includes:
        for name in include.additions:
            if name not in used:
                raise ManifestError(
                    f"include key {name!r} is not a request field and no template uses it"
                    f"{did_you_mean(name, candidates - {name})}",
                    path=lines.path,
                    line=lines.line_of("matrix", "include", include.index, name),
                    rule="unused-variable",
                )


def load_manifest(path: str | Path) -> Manifest:
    """Read, parse and check a manifest file; raises :class:`ManifestError`."""
    given = Path(path)
    shown = str(given)
    before = signature(shown)  # before the read: a save after it is seen as an edit (sourcefiles.EditWatch)
    try:
        with open_regular(given) as handle:  # a FIFO or a device is refused, never waited on nor read endlessly
            raw = handle.read()
    except MemoryError as exc:
        raise ManifestError("the manifest is too large to load; keep large value lists in data files",
                            path=shown, rule="manifest-file") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc.strerror or exc}", path=shown, rule="manifest-file") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        found = None if utf16_hint(exc) else bad_utf8(raw)
        if found is not None:
            line, column, byte = found
            raise ManifestError(f"line {line} is not UTF-8 (byte 0x{byte:02x} at column {column}): save it as UTF-8",
                                path=shown, line=line, rule="manifest-file") from exc
        raise ManifestError(f"the manifest is not UTF-8 ({exc}){utf16_hint(exc)}", path=shown,
                            rule="manifest-file") from exc
    try:
        data, lines = parse_yaml(text, path=shown)
    except MemoryError as exc:
        raise ManifestError("the manifest is too large to load; keep large value lists in data files",
                            path=shown, rule="manifest-file") from exc
    spec = parse_spec(data, lines)
    known = endpoints.slugs()
    if spec.model not in known:
        raise ManifestError(
            f"unknown model {spec.model!r}{did_you_mean(spec.model, known)} (known: {', '.join(known)})",
            path=shown,
            line=lines.line_of("model"),
            rule="unknown-model",
        )
    pricing = parse_pricing(spec.pricing, lines)
    budget = spec.max_jobs // spec.repeats + 1
    base = given.resolve().parent
    matrix = compile_matrix(spec.matrix, lines=lines, base=base, budget=budget)
    check_excludes(matrix, lines)
    models = manifest_models(spec.model, matrix, lines)
    _check_templating(spec, models, lines)
    defaults = _check_defaults(spec, models, lines)
    templates = _compile_templates(spec, _templating(models), defaults, lines)
    check_output_extension(templates.output, models, shown)
    _check_unused(matrix, templates, union_fields(models, request_fields), lines)
    base_url = spec.inputs.base_url
    if base_url is not None and not base_url.endswith("/"):
        base_url += "/"
    sources = ((shown, before), *((path, signature(path)) for path in value_files(matrix)))
    return Manifest(
        name=spec.name,
        model=spec.model,
        models=models,
        defaults=defaults,
        prompt=spec.prompt,
        multi_prompt=tuple(spec.multi_prompt) if spec.multi_prompt is not None else None,
        matrix=matrix,
        repeats=spec.repeats,
        output=spec.output,
        limits=spec.limits,
        salt=spec.salt,
        pricing=pricing.single,
        model_pricing=pricing.per_model,
        inputs=InputFiles(base, base_url),
        max_jobs=spec.max_jobs,
        in_doubt=spec.in_doubt,
        retries=spec.retries,
        path=given.resolve(),
        file_digest=digest(raw, matrix),
        display_path=shown,
        lines=lines,
        templates=templates,
        sources=sources,
    )
