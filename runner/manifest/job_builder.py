"""One job built from one matrix combination and repeat (steps 1-5 of :mod:`runner.manifest.expand`): the request
fields, the rendered templates, local input files made references, the body the endpoint's request model validates,
the key and the output name; and the errors naming the file, the line, the job and the rule of a job refused there.
Everything per manifest (and per model) is prepared once, when the builder is made."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic_core import ValidationError  # pydantic.ValidationError, without importing pydantic

from runner.errors import ManifestError
from runner.jobs import JobSpec, job_key_of_json, nfc, planned_job
from runner.manifest.bodies import Bodies, Known
from runner.manifest.checks import blank_prompt
from runner.manifest.inputs import InputProblem, data_uri_refused, is_data_uri, is_url
from runner.manifest.manifest import Manifest, Templates, request_fields
from runner.manifest.models import MODEL_VAR, JobEndpoint, check_model, union_fields
from runner.manifest.paths import PathRejected, clean_value, finish_path
from runner.manifest.templates import Template
from runner.manifest.values import describe_job, did_you_mean, shown

__all__ = ["JobBuilder"]


class JobBuilder:
    """Builds jobs from combinations; everything per-manifest (and per model) is prepared once."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.templates: Templates = manifest.templates
        self.fields = union_fields(manifest.models, request_fields)
        self.endpoints: dict[str, JobEndpoint] = {}
        self.bodies: dict[str, Bodies] = {}  # validated bodies by shape, per model
        self.default = self._endpoint(manifest.model)
        templated = {name for name, _ in self.templates.texts}
        self.base = nfc({
            name: value
            for name, value in manifest.defaults.items()
            if value != "" and name not in templated
        })
        self.default_vars = {MODEL_VAR: manifest.model, **self.base}

    def _endpoint(self, slug: str) -> JobEndpoint:
        found = self.endpoints.get(slug)
        if found is None:
            found = self.endpoints[slug] = JobEndpoint.of(slug, request_fields(slug), self.manifest.price_for(slug))
        return found

    def _model_of(self, variables: dict[str, Any], repeat: int) -> JobEndpoint:
        value = variables.get(MODEL_VAR, "")
        if value == "":
            return self.default
        found = self.endpoints.get(value) if isinstance(value, str) else None
        if found is not None:
            return found
        origin = self.manifest.matrix.origin_of(MODEL_VAR, variables) or (self.manifest.display_path, None)
        slug = check_model(value, path=origin[0], line=origin[1], job=describe_job(variables, repeat))
        return self._endpoint(slug)

    # ------------------------------------------------------------ the stream

    def jobs(self) -> Iterator[JobSpec]:
        manifest = self.manifest
        salt, matrix = manifest.salt, manifest.matrix
        fields, base, default_vars = self.fields, self.base, self.default_vars
        templates = self.templates
        prompt, texts, shots, output = templates.prompt, templates.texts, templates.shots, templates.output
        # Without includes every combination has the same variables: look only
        # at those that are request fields.
        static_fields = None if matrix.includes else tuple(name for name in matrix.names if name in fields)
        # Templates that use neither {repeat} nor a default (nor the top-level model) can read the combination itself.
        merge = bool(templates.request_fields_used() & {*default_vars, "repeat"})
        key_only = output.text == "{key}.mp4"  # the default name needs no checks: hex is safe
        # Without includes or shots, a request is the defaults, the values of the matrix's request fields and
        # the rendered texts: its sig (model, those values and their types) may stand for its shape (.bodies).
        same_shape = static_fields is not None and shots is None
        for repeat in range(1, manifest.repeats + 1):
            for variables in matrix.combos(normal=True):
                endpoint = self._model_of(variables, repeat)
                model = endpoint.slug
                request = dict(base)
                for name in static_fields if static_fields is not None else variables:
                    value = variables[name]
                    if value != "" and name in fields:
                        request[name] = value
                values = {**default_vars, **variables, "repeat": repeat, MODEL_VAR: model} if merge else variables
                if prompt is not None:
                    request[endpoint.prompt_field] = said = self._render(prompt, values, variables, repeat)
                    if not said or said.isspace():
                        raise blank_prompt(manifest, prompt, values, variables, repeat)
                for name, text in texts:
                    if name not in request:
                        request[name] = self._render(text, values, variables, repeat)
                if shots is not None:
                    request[endpoint.shots_field] = [
                        self._shot(shot.prompt, shot.duration, shot.index, values, variables, repeat) for shot in shots
                    ]
                if endpoint.media:
                    self._local_inputs(endpoint, request, variables, repeat)
                sig = None if not same_shape else model if not static_fields else (  # 1, 1.0, True: equal keys
                    model, *(vals := [variables[name] for name in static_fields]), *map(type, vals))
                body, body_json, estimate, plain = self._body(endpoint, request, variables, repeat, sig)
                key = job_key_of_json(model, body_json, repeat, salt)
                name = key + ".mp4" if key_only else self._output(key, model, body, variables, repeat)
                yield planned_job(key, model, body, variables, repeat, name, estimate, body_json if plain else None)

    def _body(self, endpoint: JobEndpoint, request: dict[str, Any], variables: dict[str, Any], repeat: int,
              sig: Any = None) -> Known:
        """The stored request, the canonical JSON of its identity body, its estimate (:mod:`.bodies`)."""
        bodies = self.bodies.get(endpoint.slug)
        if bodies is None:
            bodies = self.bodies[endpoint.slug] = Bodies(endpoint.spec, endpoint.price, endpoint.media)
            templated = {name for name, _ in self.templates.texts} | (
                {endpoint.prompt_field} if self.templates.prompt is not None else set())
            bodies.use_sigs(templated, self.manifest.matrix.names)
        known = bodies.known(request, sig)
        if known is not None:
            return known
        try:
            body = endpoint.spec.request_body(request)
        except ValidationError as exc:
            raise self._invalid(exc, endpoint, variables, repeat) from exc
        return bodies.learn(request, body)

    def _local_inputs(self, endpoint: JobEndpoint, request: dict[str, Any], variables: dict[str, Any],
                      repeat: int) -> None:
        """Replace each local file named in a media field by its checked reference (path, sha256, size…)."""
        for name, kind in endpoint.media.items():
            value = request.get(name)
            if not isinstance(value, str) or not value or (is_url(value) and not is_data_uri(value)):
                continue
            try:
                if is_data_uri(value):
                    raise InputProblem(data_uri_refused(value))
                if name in endpoint.spec.url_only and self.manifest.inputs.base_url is None:
                    raise InputProblem(f"input {value} is a local file, but {endpoint.slug} takes {name} only as an"
                                       " https:// URL: host it and set inputs: {base_url: https://…/}, or give its URL")
                request[name] = self.manifest.inputs.reference(value, kind)
            except InputProblem as exc:
                path, line = self._origin((name,), variables)
                raise ManifestError(
                    f"{name}: {exc} — {endpoint.slug} cannot take it",
                    path=path,
                    line=line,
                    job=describe_job(variables, repeat),
                    rule="input-file",
                ) from exc

    def _output(self, key: str, model: str, body: dict[str, Any], variables: dict[str, Any], repeat: int) -> str:
        """The job's file name: the output template with cleaned values, checked."""
        output, fields = self.templates.output, self.fields
        names: dict[str, Any] = {}
        for name in output.fields:
            if name == "key":
                names[name] = key
            elif name == "repeat":
                names[name] = repeat
            elif name == MODEL_VAR:
                names[name] = clean_value(model)
            elif name in fields and name in body and not isinstance(body[name], dict):
                names[name] = clean_value(body[name])
            elif name in variables:
                names[name] = clean_value(variables[name])
            elif name in body:
                names[name] = clean_value(body[name])
            else:
                raise self._missing(output, name, {**variables, **body}, variables, repeat)
        try:
            return finish_path(output.render(names))
        except PathRejected as exc:
            raise ManifestError(
                f"output {shown(output.text, 120)} gives an unusable file name: {exc}",  # (a 5 KB template, shortened)
                path=self.manifest.display_path,
                line=output.line,
                job=describe_job(variables, repeat),
                rule="output-path",
            ) from exc

    def _render(
        self, template: Template, values: Mapping[str, Any], variables: dict[str, Any], repeat: int
    ) -> str:
        try:
            text: str = nfc(template.render(values))
        except KeyError as exc:
            raise self._missing(template, str(exc.args[0]), values, variables, repeat) from exc
        return text

    def _shot(
        self,
        prompt: Template,
        duration: Template | int,
        index: int | None,
        values: Mapping[str, Any],
        variables: dict[str, Any],
        repeat: int,
    ) -> dict[str, Any]:
        text = self._render(prompt, values, variables, repeat)
        if not text or text.isspace():
            raise blank_prompt(self.manifest, prompt, values, variables, repeat)
        shot: dict[str, Any] = {
            "prompt": text,
            "duration": self._render(duration, values, variables, repeat)
            if isinstance(duration, Template)
            else duration,
        }
        if index is not None:
            shot["index"] = index
        return shot

    # ---------------------------------------------------------------- errors

    def _missing(
        self, template: Template, name: str, available: Mapping[str, Any], variables: dict[str, Any], repeat: int
    ) -> ManifestError:
        known = set(available) | {"repeat"} | ({"key"} if template.where == "output" else set())
        return ManifestError(
            f"{template.where}: {{{name}}} is not a variable of this job{did_you_mean(name, known)} "
            f"(it has: {', '.join(sorted(known))})",
            path=self.manifest.display_path,
            line=template.line,
            job=describe_job(variables, repeat),
            rule="missing-variable",
        )

    def _invalid(
        self, exc: ValidationError, endpoint: JobEndpoint, variables: dict[str, Any], repeat: int
    ) -> ManifestError:
        error = exc.errors(include_url=False)[0]
        loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(loc))
        value = error.get("input")
        got = f" (got {shown(value)})" if loc and not isinstance(value, (dict, list)) else ""
        if loc and error["type"] == "extra_forbidden" and len(loc) == 1:
            text = f"{where}: {endpoint.slug} has no such field (its fields: {', '.join(sorted(endpoint.fields))})"
            rule = "request:extra_forbidden"
        elif loc:
            text = f"{where}: {message}{got}"
            rule = f"request:{error['type']}"
        else:
            text = message
            rule = "shot-durations" if "sum to" in message else (
                "prompt-xor-multi_prompt" if "multi_prompt" in message else f"request:{error['type']}"
            )
        path, line = self._origin(loc, variables, endpoint)
        return ManifestError(
            f"{text} — the request model of {endpoint.slug} refuses this job",
            path=path,
            line=line,
            job=describe_job(variables, repeat),
            rule=rule,
        )

    def _origin(
        self, loc: tuple[str | int, ...], variables: dict[str, Any], endpoint: JobEndpoint | None = None
    ) -> tuple[str, int | None]:
        """The file and line of the YAML node (or data row) that gave the failing field."""
        manifest = self.manifest
        shown = manifest.display_path
        field = loc[0] if loc else None
        if field is None:
            key = "multi_prompt" if manifest.multi_prompt is not None else "prompt"
            return shown, manifest.line_of(key) if manifest.lines.has(key) else manifest.line_of()
        if field in (endpoint or self.default).spec.templating.top_level:
            return shown, manifest.line_of(*loc[:2])
        if isinstance(field, str) and variables.get(field, "") != "":
            found = manifest.matrix.origin_of(field, variables)
            if found is not None:
                return found
        if isinstance(field, str) and manifest.lines.has("defaults", field):
            return shown, manifest.line_of("defaults", field)
        return shown, manifest.line_of()
