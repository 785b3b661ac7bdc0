"""Bodies validated once per shape (issue 14): the same jobs and the same errors as validating every job.

:mod:`runner.manifest.bodies` lets a job whose request differs from an earlier one only in its free
texts (``prompt``, ``negative_prompt``) skip the request model. These tests expand each manifest twice —
as it is, and with that fast path switched off (every job through the model, as before) — and want
the same jobs, field for field, or the same error, word for word, at the same line, job and rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.endpoints.api import JsonEndpoint
from runner.endpoints.plain import PlainSpec
from runner.errors import ManifestError
from runner.jobs import canonical_json
from runner.manifest import bodies, expand, load_manifest

LONG = "x" * 2490  # the prompt template adds more than 10 characters: past 2,500 once rendered

MANIFESTS = {
    "texts": """\
name: texts
defaults: {aspect_ratio: "9:16", negative_prompt: "no {animal}s"}
prompt: "A {animal} at {place}"
matrix:
  animal: [fox, owl, "cre\u0300me", "\u00e9clair", heron]
  place: [dawn, dusk, "caf\u00e9"]
  duration: [5, 10]
  model: [kling-v3.0-std-t2v, kling-v3.0-pro-t2v, kling-v3.0-4k-t2v]
pricing: {per_second: 0.1}
repeats: 2
""",
    "prompt-axis": """\
name: prompt-axis
prompt: "{prompt}"
matrix:
  prompt: ["a", "b", "", "d"]
  sound: [false, true]
""",
    "too-long-late": f"""\
name: too-long-late
prompt: "A slow shot of {{subject}}"
matrix:
  subject: [fox, owl, heron, {LONG}, crane]
""",
    "bad-duration-late": """\
name: bad-duration-late
prompt: "A slow shot of {subject}"
matrix:
  subject: [fox, owl]
  duration: [5, 10, 20]
""",
    "negative-too-long-late": f"""\
name: negative-too-long-late
prompt: "a {{subject}}"
matrix:
  subject: [fox, owl]
  negative_prompt: [blur, {LONG}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]
""",
    "negative-int-late": """\
name: negative-int-late
prompt: "a {subject}"
matrix:
  subject: [fox, owl]
  negative_prompt: [blur, 5]
""",
    "sig-types": """\
name: sig-types
prompt: "a {thing}, sound {sound}"
matrix:
  thing: [fox, owl, heron]
  sound: [false, 0, true, 1]
  duration: [5, 10, 10.0]
""",
    "sig-negative-template": """\
name: sig-negative-template
defaults: {negative_prompt: "no {thing}s"}
prompt: "a {thing}"
matrix:
  thing: [fox, owl, heron]
  duration: [5, 10]
""",
    "shots": """\
name: shots
defaults: {duration: 10}
multi_prompt:
  - {prompt: "wide shot of {place}", duration: 4}
  - {prompt: "close-up of {place}", duration: 6}
matrix:
  place: [harbour, market, "caf\u00e9"]
""",
}


def _expand(path: Path) -> tuple[list[tuple[object, ...]], str | None]:
    jobs: list[tuple[object, ...]] = []
    try:
        for job in expand(load_manifest(path)):
            assert job.request_json in (None, canonical_json(job.request))
            jobs.append((job.key, job.model, job.request, list(job.request), job.vars, job.repeat, job.output,
                         job.estimated_usd, job.line))
    except ManifestError as exc:
        return jobs, f"{exc} | {exc.path}:{exc.line} | {exc.job} | {exc.rule}"
    return jobs, None


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_same_jobs_and_same_errors_as_validating_every_job(tmp_path: Path, name: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(MANIFESTS[name], encoding="utf-8")
    fast = _expand(path)
    monkeypatch.setattr(bodies.Bodies, "known", lambda self, request, sig=None: None)
    slow = _expand(path)
    assert fast == slow
    if name.endswith("-late"):
        assert fast[1] is not None and fast[0], "the error comes after jobs of a known shape"


def test_the_request_model_runs_once_per_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 jobs, two durations × sound or not: four validations, not 300."""
    calls: list[int] = []

    def counting(cls: type[Any]) -> None:  # a plain spec (runner.endpoints.plain) or a full one: either is the model
        original = cls.request_body

        def counted(self: Any, fields: dict[str, object]) -> dict[str, object]:
            calls.append(1)
            return original(self, fields)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "request_body", counted)

    counting(JsonEndpoint)
    counting(PlainSpec)
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nprompt: 'a {thing}'\nmatrix:\n  thing: {file: things.txt}\n  duration: [5, 10]\n"
                    "  sound: [false, true]\n")
    (tmp_path / "things.txt").write_text("".join(f"thing {i}\n" for i in range(75)))
    assert sum(1 for _ in expand(load_manifest(path))) == 300
    assert len(calls) == 4


def test_the_shape_is_worked_out_once_per_model_and_matrix_values(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """1,200 jobs whose requests differ in their prompt and in two matrix fields of 2 values: 4 shapes worked out,
    not 1,200 (issue 14 item 5: a million-job plan did it per job); the jobs are those of the per-job way."""
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nprompt: 'a {thing}'\nmatrix:\n  thing: {file: things.txt}\n  duration: [5, 10]\n"
                    "  sound: [false, true]\n")
    (tmp_path / "things.txt").write_text("".join(f"thing {i}\n" for i in range(300)))
    calls: list[int] = []
    original = bodies.Bodies.shape_of

    def counted(self: bodies.Bodies, request: dict[str, object]) -> tuple[object, ...]:
        calls.append(1)
        return original(self, request)

    monkeypatch.setattr(bodies.Bodies, "shape_of", counted)
    fast = _expand(path)
    assert len(fast[0]) == 1200 and fast[1] is None
    assert len(calls) == 4 + 4  # each shape: found by its first request's sig, and kept (Bodies.learn)
    monkeypatch.setattr(bodies.Bodies, "known", lambda self, request, sig=None: None)
    assert _expand(path) == fast
