"""The job stream: a loaded manifest expanded into validated :class:`JobSpec`\\ s.

For each repeat (1-based; every combination's first sample comes before any
second sample) and each matrix combination, a job is built in a fixed way:

1. request fields = ``defaults`` < combination variables named like a request
   field (an empty value leaves the field alone);
2. the fields the endpoint templates (:class:`runner.endpoints.Templating`:
   for Kling ``prompt``, ``multi_prompt`` shot prompts and a
   ``defaults.negative_prompt``) are rendered with the combination's
   variables, the ``defaults`` and ``{repeat}``. Every text (variables,
   defaults, rendered templates) is put in Unicode NFC
   (:func:`runner.jobs.nfc`): NFC and NFD spellings are one job; a local input file
   becomes its reference (a ``data:`` URI is refused: :mod:`runner.manifest.inputs`);
3. the fields are validated by the endpoint's request model, which fills in the documented
   defaults: the stored request (:meth:`runner.endpoints.EndpointSpec.request_body`);
4. key = :func:`runner.jobs.job_key` of model, identity body (the spec's, never the wire body), repeat, salt;
5. ``output`` is rendered (``{key}`` is available here) and made safe.

(:class:`~runner.manifest.job_builder.JobBuilder` builds each job; this module streams them and checks the batch.)

The stream holds no list of jobs: only two compact sets of 64-bit hashes (job
keys and output names) grow with the batch, to refuse two jobs that would pay
for the same video or write the same file. The first bad job stops the stream
with a :class:`ManifestError` naming the file, the line, the job and the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from runner.errors import ManifestError
from runner.jobs import JobSpec
from runner.manifest.checks import duplicate_output
from runner.manifest.inputs import media_values
from runner.manifest.intset import IntSet
from runner.manifest.job_builder import JobBuilder
from runner.manifest.manifest import Manifest, media_fields
from runner.manifest.paths import collision_key
from runner.manifest.schema import MAX_JOBS_CEILING
from runner.manifest.values import describe_job

__all__ = ["count_jobs", "expand"]

#: The duplicate sets are sized for up to this many jobs at once (16 MB each)
#: and grow past it only if the stream really gets that long.
_PREALLOCATE = 1 << 20


def count_jobs(manifest: Manifest) -> int:
    """How many jobs :func:`expand` yields, computed without expanding.

    Exact, except when the matrix has so many distinct exclude/include values (over a million classes)
    that it cannot be counted cheaply *and* it is larger than ``max_jobs`` anyway: an upper bound then.
    """
    return manifest.matrix.combinations * manifest.repeats


def expand(manifest: Manifest) -> Iterator[JobSpec]:
    """Validated jobs in a stable order; raises ManifestError on the first bad job.

    A manifest that would expand past ``max_jobs`` is refused here, before any
    job is built. Later problems (a job the request model refuses, two jobs
    with one key or one file) raise while iterating, after the jobs before the
    bad one were yielded: plan inside a transaction and plan nothing then.
    """
    total = count_jobs(manifest)
    if total > manifest.max_jobs:
        matrix, about = manifest.matrix, "" if manifest.matrix.exact else "up to "
        raise ManifestError(
            f"the manifest expands to {about}{total:,} jobs ({matrix.combinations:,} combinations × "
            f"{manifest.repeats} repeats), more than max_jobs ({manifest.max_jobs:,}); "
            + ("raise max_jobs: if you mean it, or split the batch" if manifest.max_jobs < MAX_JOBS_CEILING else
               f"{MAX_JOBS_CEILING:,} is the most a manifest plans: split the batch into several manifests"),
            path=manifest.display_path,
            line=manifest.line_of("max_jobs") if manifest.lines.has("max_jobs") else manifest.line_of("matrix"),
            rule="max-jobs",
        )
    _check_inputs(manifest)
    return _checked(manifest, total)


def _check_inputs(manifest: Manifest) -> None:
    """Refuse several bad local input files at once, one line each (a single one is reported with its job)."""
    media = media_fields(manifest.models)
    refused = manifest.inputs.refusals(media_values(dict(manifest.defaults), manifest.matrix, media)) if media else []
    if len(refused) > 1:
        more = [f"  … and {len(refused) - 20} more"] if len(refused) > 20 else []
        raise ManifestError(f"{len(refused)} input files are refused; nothing was planned:\n"
                            + "\n".join(refused[:20] + more), path=manifest.display_path, rule="input-file")


def _checked(manifest: Manifest, total: int) -> Iterator[JobSpec]:
    expected = min(total, _PREALLOCATE)
    keys = IntSet(expected)
    # Distinct keys give distinct names when the name contains the key (a
    # fixed-length lowercase hex string), so only other templates need a check.
    outputs = None if "key" in manifest.templates.output.fields else IntSet(expected)
    for position, job in enumerate(JobBuilder(manifest).jobs()):
        if not keys.add(hash(job.key)):  # a collision of two keys is told from a duplicate below
            key = job.key
            first = _find(manifest, position, lambda other: other.key == key)  # noqa: B023 - called before the loop moves on
            if first is not None:
                raise _duplicate_key(manifest, first, job)
        if outputs is None:
            yield job
            continue
        place = collision_key(job.output)
        if not outputs.add(hash(place)):
            first = _find(manifest, position, lambda other: collision_key(other.output) == place)  # noqa: B023 - called at once
            if first is not None:
                raise duplicate_output(manifest, first, job)
        yield job


def _find(manifest: Manifest, before: int, match: Callable[[JobSpec], bool]) -> JobSpec | None:
    """The first job before position ``before`` that ``match``\\ es (error path only)."""
    for position, job in enumerate(JobBuilder(manifest).jobs()):
        if position >= before:
            return None
        if match(job):
            return job
    return None  # pragma: no cover - the stream is deterministic


def _duplicate_key(manifest: Manifest, first: JobSpec, second: JobSpec) -> ManifestError:
    names = sorted(
        name
        for name in {*first.vars, *second.vars}
        if first.vars.get(name) != second.vars.get(name)
    )
    axis = next((manifest.matrix.axis_of(name) for name in names if manifest.matrix.axis_of(name)), None)
    line = manifest.matrix.axes[axis[0]].line if axis else manifest.line_of("matrix")
    if names:
        verb = "differs but changes" if len(names) == 1 else "differ but change"
        fix = f"{', '.join(names)} {verb} nothing in the request; use it in the prompt"
    else:
        fix = "they are the same combination (a value listed twice?); remove the duplicate"
    return ManifestError(
        f"jobs {describe_job(first.vars, first.repeat)} and {describe_job(second.vars, second.repeat)} ask for the "
        f"same video (same request and repeat, key {second.key}): {fix}, use repeats: for more samples of one "
        "request, or set a salt:",
        path=manifest.display_path,
        line=line,
        job=describe_job(second.vars, second.repeat),
        rule="duplicate-key",
    )
