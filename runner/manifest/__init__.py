"""The manifest language: YAML batches that expand into validated jobs.

``load_manifest(path)`` parses and checks a manifest file without building a
job; ``count_jobs(manifest)`` says how many jobs it holds (arithmetic, no
expansion); ``expand(manifest)`` streams the validated :class:`JobSpec` s.
The language is documented in ``docs/manifest.md``.

Modules, bottom-up: ``values`` (scalars, names, messages), ``loader`` (safe
YAML with lines), ``schema`` (the keys), ``templates``, ``paths`` (safe output
names), ``files`` (reading a named file: never a FIFO or a device, never past a
limit), ``sources`` (inline lists, value files, rows), ``matrix`` (GitHub
Actions' product/exclude/include), ``intset`` (compact duplicate detection),
``checks`` (typos: unmatched excludes, output extensions, blank prompts, collision hints),
``manifest`` (loading), ``job_builder`` (one job from one combination), ``expand`` (the job stream).
"""

from __future__ import annotations

from runner.manifest.expand import count_jobs, expand
from runner.manifest.manifest import Manifest, load_manifest, request_fields
from runner.manifest.schema import Limits

__all__ = ["Limits", "Manifest", "count_jobs", "expand", "load_manifest", "request_fields"]
