"""Job identity, duplicate detection, the size guard and streaming expansion."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import endpoints
from runner.errors import ManifestError
from runner.jobs import JobSpec
from runner.manifest import count_jobs, expand, load_manifest

BASE = """\
name: cities
defaults: {{duration: 5, aspect_ratio: "16:9"}}
prompt: "A {{style}} timelapse of {{city}}"
matrix:
  city: [{cities}]
  style: [{styles}]
repeats: 2
output: "{{city}}/{{style}}-{{repeat}}.mp4"
"""


def write(directory: Path, text: str, name: str = "m.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def keys_by_vars(path: Path) -> dict[tuple[tuple[str, object], ...], str]:
    return {(*sorted(job.vars.items()), ("repeat", job.repeat)): job.key for job in expand(load_manifest(path))}


def test_key_is_the_hash_of_model_body_repeat_and_salt(tmp_path: Path) -> None:
    """Each job equals JobSpec.build of its model, canonical body, repeat, salt and estimate."""
    path = write(tmp_path, BASE.format(cities="Tokyo", styles="cinematic") + "salt: s1\n")
    for job in expand(load_manifest(path)):
        assert job == JobSpec.build(
            model="kling-v3.0-pro-t2v",
            request=job.request,
            vars=job.vars,
            repeat=job.repeat,
            output=job.output,
            salt="s1",
            estimated_usd=endpoints.get("kling-v3.0-pro-t2v").price().estimate(job.request),
        )
        assert job.request == {
            "prompt": "A cinematic timelapse of Tokyo", "duration": 5, "cfg_scale": 0.5,
            "aspect_ratio": "16:9", "sound": False,
        }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(["Tokyo", "Lagos", "Lima", "Oslo"]), st.permutations(["cinematic", "35mm film", "noir"]))
def test_reordering_axis_values_keeps_every_key(tmp_path: Path, cities: list[str], styles: list[str]) -> None:
    """Permuting axis values reorders jobs but leaves each job's key unchanged."""
    original = keys_by_vars(write(tmp_path / "a", BASE.format(cities="Tokyo, Lagos, Lima, Oslo", styles="cinematic, 35mm film, noir")))
    permuted = keys_by_vars(write(tmp_path / "b", BASE.format(cities=", ".join(cities), styles=", ".join(f"'{s}'" for s in styles))))
    assert permuted == original


def test_renaming_commenting_and_unrelated_keys_keep_every_key(tmp_path: Path) -> None:
    """File name, comments, name:, limits, max_jobs and output do not change keys."""
    text = BASE.format(cities="Tokyo, Lima", styles="cinematic")
    original = keys_by_vars(write(tmp_path, text))
    edited = (
        "# a comment at the top\n"
        + text.replace("name: cities", "name: renamed   # comment")
        .replace('output: "{city}/{style}-{repeat}.mp4"', 'output: "v2/{key}.mp4"')
        + "limits: {concurrency: 9, budget_usd: 3}\nmax_jobs: 50\nretries: 2\nin_doubt: resubmit\n"
    )
    assert keys_by_vars(write(tmp_path, edited, name="other-name.yaml")) == original


def test_adding_jobs_keeps_existing_keys(tmp_path: Path) -> None:
    """A new axis value or more repeats add jobs without touching the old ones' keys."""
    original = keys_by_vars(write(tmp_path, BASE.format(cities="Tokyo, Lima", styles="cinematic")))
    grown = keys_by_vars(
        write(tmp_path, BASE.format(cities="Tokyo, Lima, Oslo", styles="cinematic, noir").replace("repeats: 2", "repeats: 3"))
    )
    assert len(grown) == 3 * 2 * 3 and original.items() <= grown.items()


def test_two_manifests_asking_for_the_same_video_share_a_key(tmp_path: Path) -> None:
    """The same request written differently (axis vs defaults vs literal) has one key."""
    first = write(tmp_path, BASE.format(cities="Tokyo", styles="cinematic"), name="a.yaml")
    second = write(
        tmp_path,
        "name: other\nprompt: A cinematic timelapse of Tokyo\nmatrix:\n  duration: ['5']\n  cfg_scale: [0.5]\n"
        "repeats: 2\n",
        name="b.yaml",
    )
    assert {j.key for j in expand(load_manifest(first))} == {j.key for j in expand(load_manifest(second))}


def test_salt_changes_every_key(tmp_path: Path) -> None:
    """A salt asks for fresh samples of the same requests."""
    text = BASE.format(cities="Tokyo, Lima", styles="cinematic")
    plain = set(keys_by_vars(write(tmp_path, text)).values())
    salted = set(keys_by_vars(write(tmp_path, text + "salt: take-2\n")).values())
    assert len(salted) == len(plain) == 4 and not plain & salted


def test_combinations_with_the_same_request_are_refused_naming_both(tmp_path: Path) -> None:
    """Two combinations giving one key (a variable only in output) name both jobs and the fixes."""
    path = write(
        tmp_path,
        "name: x\nprompt: 'A {city}'\nmatrix:\n  city: [Tokyo]\n  take: [a, b]\noutput: '{city}-{take}'\n",
    )
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    error = caught.value
    assert error.rule == "duplicate-key" and error.line == 5
    assert "{city: Tokyo, take: a, repeat: 1}" in str(error) and "{city: Tokyo, take: b, repeat: 1}" in str(error)
    assert "take differs but changes nothing" in str(error) and "repeats" in str(error) and "salt" in str(error)


def test_duplicate_axis_values_are_refused(tmp_path: Path) -> None:
    """The same value twice in an axis would pay twice for one video."""
    path = write(tmp_path, "name: x\nprompt: 'A {city}'\nmatrix:\n  city: [Tokyo, Lima, Tokyo]\n")
    with pytest.raises(ManifestError) as caught:
        list(expand(load_manifest(path)))
    assert caught.value.rule == "duplicate-key" and "same combination" in str(caught.value)


@pytest.mark.timeout(60)  # building even a fraction of the 10^12 jobs would take hours: a hang, not a slow pass
def test_oversized_matrix_is_refused_with_its_count_before_expanding(tmp_path: Path) -> None:
    """10^12 combinations are refused at once, with the count, before any job is built."""
    values = ", ".join(str(i) for i in range(10_000))
    path = write(
        tmp_path,
        f"name: x\nprompt: '{{a}} {{b}} {{c}}'\nmatrix:\n  a: [{values}]\n  b: [{values}]\n  c: [{values}]\n"
        "  exclude:\n    - {a: 1, b: 2}\n",
    )
    manifest = load_manifest(path)
    assert count_jobs(manifest) == 10_000**3 - 10_000
    with pytest.raises(ManifestError) as caught:
        expand(manifest)
    assert caught.value.rule == "max-jobs" and "999,999,990,000 jobs" in str(caught.value)
    assert "100,000" in str(caught.value)


def test_max_jobs_counts_repeats_and_can_be_raised(tmp_path: Path) -> None:
    """The guard counts combinations x repeats against max_jobs."""
    text = "name: x\nprompt: '{a}'\nmatrix:\n  a: [1, 2, 3]\nrepeats: 4\nmax_jobs: 11\noutput: '{a}-{repeat}'\n"
    with pytest.raises(ManifestError) as caught:
        expand(load_manifest(write(tmp_path, text)))
    assert caught.value.line == 6 and "12 jobs" in str(caught.value)
    assert len(list(expand(load_manifest(write(tmp_path, text.replace("11", "12")))))) == 12


@pytest.mark.timeout(20)  # a hang guard: the refusal/stream is proven by what it returns, not by a stopwatch
def test_expansion_streams(tmp_path: Path) -> None:
    """A million-job matrix (the most max_jobs allows) yields its first jobs at once: nothing is expanded ahead."""
    values = ", ".join(str(i) for i in range(1_000))
    path = write(
        tmp_path,
        f"name: x\nmax_jobs: 1000000\nprompt: '{{a}} {{b}}'\nmatrix:\n  a: [{values}]\n  b: [{values}]\n",
    )
    manifest = load_manifest(path)
    first = list(itertools.islice(expand(manifest), 10))
    assert [job.request["prompt"] for job in first[:2]] == ["0 0", "0 1"]


def test_expansion_memory_does_not_grow_with_the_batch(tmp_path: Path) -> None:
    """Expanding 10,000 jobs keeps only compact hash sets, not the jobs."""
    (tmp_path / "a.txt").write_text("".join(f"subject {i}\n" for i in range(100)))
    (tmp_path / "b.txt").write_text("".join(f"place {i}\n" for i in range(100)))
    path = write(
        tmp_path,
        "name: x\nprompt: 'A {a} at {b}'\nmatrix:\n  a: {file: a.txt}\n  b: {file: b.txt}\noutput: '{a}/{b}'\n",
    )
    manifest = load_manifest(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in expand(manifest))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 2_000_000  # a list of 10,000 jobs alone would take ~20 MB


def test_a_matrix_past_max_jobs_at_the_ceiling_says_to_split_it(tmp_path: Path) -> None:
    """max_jobs at its ceiling cannot be raised: the refusal says to split the batch, not to raise it."""
    values = ", ".join(str(i) for i in range(3163))
    text = f"name: x\nmax_jobs: 10000000\nprompt: '{{a}} {{b}}'\nmatrix:\n  a: [{values}]\n  b: [{values}]\n"
    with pytest.raises(ManifestError) as caught:
        expand(load_manifest(write(tmp_path, text)))
    assert caught.value.line == 2 and "10,004,569 jobs" in str(caught.value), str(caught.value)
    assert "split the batch into several manifests" in str(caught.value) and "raise" not in str(caught.value)
