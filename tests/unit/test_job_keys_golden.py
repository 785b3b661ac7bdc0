"""Golden job keys: the keys of fixed jobs, computed on the code before the endpoint-spec seam.

A job's key is what makes a video paid for once: a ledger keyed by the old code must keep
finding its jobs after any refactoring. If one of these changes, every existing ledger would
submit (and pay for) its whole batch again — do not "update the expected values".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.manifest import expand, load_manifest

MANIFESTS = {
    # a prompt template, a templated negative_prompt from defaults, NFC text, a sound axis, repeats
    "a": """\
name: golden-a
defaults: {duration: 5, aspect_ratio: "16:9", negative_prompt: "blurry {city}"}
prompt: "A {style} timelapse of {city}"
matrix:
  city: [Tokyo, "Zu\u0308rich"]
  style: [cinematic, noir]
  sound: [false, true]
repeats: 2
""",
    # multi_prompt shots (a templated duration, an index), non-default fields, a salt
    "b": """\
name: golden-b
defaults: {duration: 10, cfg_scale: 0.7, aspect_ratio: "9:16"}
multi_prompt:
  - {prompt: "wide shot of {place}", duration: 4}
  - {prompt: "close-up of {place}", duration: "{rest}", index: 1}
matrix:
  place: [harbour, "café"]
  rest: ["6"]
salt: take-2
""",
    # every default filled in by the request model
    "c": """\
name: golden-c
prompt: "a red fox in the snow"
""",
    # a manifest pricing: override (sound at 1.5 x)
    "d": """\
name: golden-d
prompt: "a {animal} at dawn"
defaults: {duration: 7}
matrix:
  animal: [heron, owl]
  sound: [false, true]
pricing: {per_second: 0.2}
""",
}

# (manifest, repeat, vars) -> (key, estimated_usd), as computed by the code of commit 3666380.
GOLDEN: dict[tuple[str, int, tuple[tuple[str, object], ...]], tuple[str, float]] = {
    ("a", 1, (("city", "Tokyo"), ("sound", False), ("style", "cinematic"))): ("e94611f04f2fbe719201", 0.56),
    ("a", 1, (("city", "Tokyo"), ("sound", True), ("style", "cinematic"))): ("a2899c94ed83362edeb5", 0.84),
    ("a", 1, (("city", "Tokyo"), ("sound", False), ("style", "noir"))): ("133ccf223d56c25dbf90", 0.56),
    ("a", 1, (("city", "Tokyo"), ("sound", True), ("style", "noir"))): ("6c99f697029a5ea1711c", 0.84),
    ("a", 1, (("city", "Zürich"), ("sound", False), ("style", "cinematic"))): ("eb9cca06d9ec0654bc79", 0.56),
    ("a", 1, (("city", "Zürich"), ("sound", True), ("style", "cinematic"))): ("dc2caa0a3ff35a9bf256", 0.84),
    ("a", 1, (("city", "Zürich"), ("sound", False), ("style", "noir"))): ("aba6e9b94340b0cfe586", 0.56),
    ("a", 1, (("city", "Zürich"), ("sound", True), ("style", "noir"))): ("a02aeb49b00ec8e89399", 0.84),
    ("a", 2, (("city", "Tokyo"), ("sound", False), ("style", "cinematic"))): ("3760345770ec018c9645", 0.56),
    ("a", 2, (("city", "Tokyo"), ("sound", True), ("style", "cinematic"))): ("6ae4770bb01f78c60e0b", 0.84),
    ("a", 2, (("city", "Tokyo"), ("sound", False), ("style", "noir"))): ("c43e9b274e65940164b1", 0.56),
    ("a", 2, (("city", "Tokyo"), ("sound", True), ("style", "noir"))): ("949e5e93e443bb41cdf1", 0.84),
    ("a", 2, (("city", "Zürich"), ("sound", False), ("style", "cinematic"))): ("9b3fd0582a9627251934", 0.56),
    ("a", 2, (("city", "Zürich"), ("sound", True), ("style", "cinematic"))): ("154ef672e5ed4b028072", 0.84),
    ("a", 2, (("city", "Zürich"), ("sound", False), ("style", "noir"))): ("c027afb22ae896fb0ffd", 0.56),
    ("a", 2, (("city", "Zürich"), ("sound", True), ("style", "noir"))): ("f9137faff316dba0dd41", 0.84),
    ("b", 1, (("place", "harbour"), ("rest", "6"))): ("a13465e1a6e25955a05a", 1.12),
    ("b", 1, (("place", "café"), ("rest", "6"))): ("e78aca146640b2fc8da8", 1.12),
    ("c", 1, ()): ("7b90eff0517459c1f08f", 0.56),
    ("d", 1, (("animal", "heron"), ("sound", False))): ("6151d9354bea2f591ac8", 1.4),
    ("d", 1, (("animal", "heron"), ("sound", True))): ("8d9949bd24d3e15e821a", 2.1),
    ("d", 1, (("animal", "owl"), ("sound", False))): ("bd1b4650a4bee55036f4", 1.4),
    ("d", 1, (("animal", "owl"), ("sound", True))): ("2f99cc1c3bba944216da", 2.1),
}

REQUESTS = {
    "b": {
        "harbour": {
            "multi_prompt": [
                {"prompt": "wide shot of harbour", "duration": 4},
                {"prompt": "close-up of harbour", "duration": 6, "index": 1},
            ],
            "duration": 10, "cfg_scale": 0.7, "aspect_ratio": "9:16", "sound": False,
        },
    },
    "c": {
        "": {"prompt": "a red fox in the snow", "duration": 5, "cfg_scale": 0.5, "aspect_ratio": "16:9",
             "sound": False},
    },
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_job_keys_and_estimates_are_those_of_the_code_before_the_seam(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(MANIFESTS[name], encoding="utf-8")
    got = {
        (name, job.repeat, tuple(sorted(job.vars.items()))): (job.key, job.estimated_usd)
        for job in expand(load_manifest(path))
    }
    want = {spec: value for spec, value in GOLDEN.items() if spec[0] == name}
    assert got == want


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_stored_requests_are_those_of_the_code_before_the_seam(tmp_path: Path, name: str) -> None:
    """The ledger stores the same request (identity) body as before, defaults filled, in order."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(MANIFESTS[name], encoding="utf-8")
    for job in expand(load_manifest(path)):
        label = str(job.vars.get("place", ""))
        if label in REQUESTS[name]:
            assert job.request == REQUESTS[name][label]
            assert list(job.request) == list(REQUESTS[name][label])
