"""Pinned expansions: every job of fixed manifests, byte for byte, as the code before the scale work made them.

A job's key is what makes a video paid for once, and the stored request is what is sent: a faster
expansion (issue 14: validating a body shape once, one canonical JSON per job) must give the same
key, request (same field order), variables, output and estimate for every job, or every existing
ledger would plan its batch again. The digests below were computed on commit 88a3417, before the
expansion was optimised; do not "update the expected values".
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from bench.gen_manifest import write_axes, write_rows
from runner.manifest import expand, load_manifest

FRAMES = Path(__file__).resolve().parents[2] / "manifests" / "frames"

MANIFESTS = {
    # the demo: includes that extend a combination and add one, a templated output, sound
    "demo": """\
name: demo-timelapses
model: kling-v3.0-pro-t2v
defaults: {duration: 5, aspect_ratio: "16:9", negative_prompt: "blurry, watermark, text"}
prompt: "A cinematic timelapse of {city} at {time}, clouds racing over the skyline"
matrix:
  city: [Tokyo, Lagos, Lima, "Zu\u0308rich"]
  time: [dawn, night]
  include:
    - {city: Lima, time: night, cfg_scale: 0.3}
    - {city: Reykjavik, time: night, sound: true}
output: "{city}/{time}-{repeat}.mp4"
repeats: 2
""",
    # two models on one axis, a templated negative prompt from defaults, a salt
    "models": """\
name: models
defaults: {duration: 5, aspect_ratio: "16:9", negative_prompt: "no {subject}s"}
prompt: "A {subject}, golden hour, café {n}"
matrix:
  model: [kling-v3.0-std-t2v, kling-v3.0-pro-t2v]
  subject: [red fox in tall grass, lighthouse in a storm, "cre\u0300me brûlée"]
  n: [1, 2]
  duration: [5, 10]
output: "{subject}/{model}-{duration}-{n}.mp4"
salt: v2
""",
    # multi-prompt shots with a templated duration
    "shots": """\
name: shots
defaults: {duration: 10, cfg_scale: 0.7, aspect_ratio: "9:16"}
multi_prompt:
  - {prompt: "wide shot of {place}", duration: 4}
  - {prompt: "close-up of {place}", duration: "{rest}", index: 1}
matrix:
  place: [harbour, "café", market]
  rest: ["6"]
""",
    # image-to-video with local files (references) and URLs; first and last frame
    "frames": """\
name: frames
model: kling-v3.0-pro-i2v
prompt: "{scene}, {motion}"
defaults: {duration: 5}
matrix:
  rows:
    - {scene: "Mist lifts off the harbour", image: frames/harbour.png, end_image: frames/meadow.png}
    - {scene: "The lamp flickers on", image: frames/lighthouse.png, end_image: "https://example.com/n.png"}
  motion: [slow, fast]
""",
    # motion control (another family), a manifest price
    "motion": """\
name: motion-control
model: kling-v3.0-motion-control
prompt: "{character} dancing on a rooftop at sunset, {motion}"
defaults:
  model_name: kling-v3-0-std
  character_orientation: image
  video: "https://example.com/moves/salsa.mp4"
matrix:
  rows:
    - {character: a tin robot, image: "https://example.com/characters/robot.png"}
    - {character: a knight in armour, image: "https://example.com/characters/knight.png"}
  motion: [slowly, wildly]
pricing:
  kling-v3.0-motion-control: {per_second: 0.126}
""",
}

# name -> (jobs, sha256 of every job's fields in order), computed on commit 88a3417.
PINNED = {
    "bench-axes": (600, "4b2559d804cf3c449cf63368"),
    "bench-rows": (300, "1828b6938f15710830d09863"),
    "demo": (18, "cca0c7d63f44b32efed33fd4"),
    "frames": (4, "78f405cfbd910925230100e3"),
    "models": (24, "f55d5a488d867d4f9bf3d225"),
    "motion": (4, "6a4fae85c3790933e8da77df"),
    "shots": (3, "3f29b70fc80d0166dbd78a13"),
}


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for job in expand(load_manifest(path)):
        fields = [job.key, job.model, job.request, list(job.request), job.vars, list(job.vars), job.repeat,
                  job.output, job.estimated_usd]
        digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
        count += 1
    return count, digest.hexdigest()[:24]


def _write(name: str, where: Path) -> Path:
    if name == "bench-axes":
        return write_axes(600, where)
    if name == "bench-rows":
        return write_rows(300, where)
    shutil.copytree(FRAMES, where / "frames")
    path = where / f"{name}.yaml"
    path.write_text(MANIFESTS[name], encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_job_is_byte_identical_to_the_pinned_expansion(tmp_path: Path, name: str) -> None:
    assert _digest(_write(name, tmp_path)) == PINNED[name]
