"""Manifest keys: required, typed, no unknown ones, sensible defaults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import Limits, Manifest, expand, load_manifest
from runner.pricing import Price


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, text))
    return caught.value


MINIMAL = "name: tiny\nprompt: a red fox\n"


def test_minimal_manifest_has_documented_defaults(tmp_path: Path) -> None:
    """Only name and prompt are needed; every other key has its documented default."""
    path = write(tmp_path, MINIMAL)
    manifest = load_manifest(path)
    assert isinstance(manifest, Manifest)
    assert manifest.name == "tiny" and manifest.model == "kling-v3.0-pro-t2v"
    assert manifest.repeats == 1 and manifest.output == "{key}.mp4" and manifest.salt is None
    assert manifest.max_jobs == 100_000 and manifest.in_doubt == "hold" and manifest.retries == 0
    assert manifest.pricing is None and manifest.price == Price(0.112, 0.168)
    assert manifest.limits == Limits(
        concurrency=4, rpm=20, poll_rpm=None, poll_interval=3.0, budget_usd=None, downloads=None
    )
    assert manifest.path == path.resolve()
    assert manifest.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_all_top_level_keys_are_read(tmp_path: Path) -> None:
    """salt, pricing, max_jobs, in_doubt, retries and every limit are taken from the file."""
    manifest = load_manifest(
        write(
            tmp_path,
            MINIMAL
            + "salt: take-2\npricing: {per_second: 0.1}\nmax_jobs: 10\nin_doubt: resubmit\nretries: 2\n"
            "limits: {concurrency: 8, rpm: null, poll_rpm: 30, poll_interval: 5, budget_usd: 9.5, downloads: 2}\n",
        )
    )
    assert manifest.salt == "take-2" and manifest.max_jobs == 10
    assert manifest.in_doubt == "resubmit" and manifest.retries == 2
    assert manifest.pricing == Price(per_second=0.1, per_second_sound=pytest.approx(0.15))
    assert manifest.limits == Limits(
        concurrency=8, rpm=None, poll_rpm=30, poll_interval=5, budget_usd=9.5, downloads=2
    )


def test_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    """A typo in a key is refused with its line and a did-you-mean."""
    error = load_error(tmp_path, MINIMAL + "repeat: 3\n")
    assert (error.line, error.rule) == (3, "unknown-key")
    assert "'repeat'" in str(error) and "did you mean 'repeats'?" in str(error)


def test_unknown_limits_key_suggests_the_closest(tmp_path: Path) -> None:
    """A typo inside limits names the nested key and its line."""
    error = load_error(tmp_path, MINIMAL + "limits:\n  concurrency: 2\n  rmp: 10\n")
    assert error.line == 5 and error.rule == "unknown-key"
    assert "in limits" in str(error) and "did you mean 'rpm'?" in str(error)


def test_missing_name_is_refused(tmp_path: Path) -> None:
    """name is required."""
    error = load_error(tmp_path, "prompt: x\n")
    assert error.rule == "required-key" and "name is required" in str(error)


@pytest.mark.parametrize("name", ["..", ".hidden", "-rf", "a/b", "a b", ""])
def test_name_cannot_escape_or_hide_the_outputs_folder(tmp_path: Path, name: str) -> None:
    """name becomes a folder, so it is restricted to [A-Za-z0-9._-] and cannot start with . or -."""
    error = load_error(tmp_path, f"name: '{name}'\nprompt: x\n")
    assert error.line == 1 and error.rule.startswith("schema:")


@pytest.mark.parametrize(
    ("extra", "line", "fragment"),
    [
        ("repeats: 0\n", 3, "repeats"),
        ("limits: {concurrency: 0}\n", 3, "limits.concurrency"),
        ("limits: {rpm: -1}\n", 3, "limits.rpm"),
        ("in_doubt: retry\n", 3, "in_doubt"),
        ("retries: -1\n", 3, "retries"),
        ("max_jobs: 0\n", 3, "max_jobs"),
    ],
)
def test_out_of_range_settings_are_refused_with_their_line(
    tmp_path: Path, extra: str, line: int, fragment: str
) -> None:
    """Bad values of manifest settings name the key and its line."""
    error = load_error(tmp_path, MINIMAL + extra)
    assert error.line == line and fragment in str(error)


def test_unknown_model_suggests_the_closest(tmp_path: Path) -> None:
    """model must be a known endpoint."""
    error = load_error(tmp_path, MINIMAL + "model: kling-v3.0-pro-t2V\n")
    assert error.rule == "unknown-model" and error.line == 3
    assert "did you mean 'kling-v3.0-pro-t2v'?" in str(error)


def test_defaults_must_be_request_fields(tmp_path: Path) -> None:
    """An unknown field in defaults is refused with a did-you-mean and the list of fields."""
    error = load_error(tmp_path, MINIMAL + "defaults:\n  duration: 5\n  aspect: '16:9'\n")
    assert error.line == 5 and error.rule == "unknown-field"
    assert "did you mean 'aspect_ratio'?" in str(error)


def test_prompt_belongs_at_top_level(tmp_path: Path) -> None:
    """prompt inside defaults is refused with a pointer to the top level."""
    error = load_error(tmp_path, "name: x\ndefaults: {prompt: a fox}\n")
    assert error.rule == "unknown-field" and "top level" in str(error)


def test_unknown_shot_key_is_refused(tmp_path: Path) -> None:
    """multi_prompt items take prompt, duration and index only."""
    error = load_error(tmp_path, "name: x\nmulti_prompt:\n  - prompt: a\n    duraton: 5\n")
    assert error.rule == "unknown-key" and error.line == 4 and "did you mean 'duration'?" in str(error)


@pytest.mark.parametrize("max_jobs", [10_000_001, 10**13])
def test_max_jobs_past_the_ceiling_reads_as_the_ceiling(tmp_path: Path, max_jobs: int) -> None:
    """Runner 95d41b3 planned a manifest of any max_jobs (a high one is a cap, not a batch: ``max_jobs:
    1000000000`` over two jobs); refused at its line after an upgrade, a nightly batch stopped (exit 2) and was told
    to split a batch of two. Past the ceiling it is the ceiling: the batch plans, a matrix past it is refused."""
    text = f"name: tiny\nprompt: a red fox {{x}}\nmax_jobs: {max_jobs}\nmatrix: {{x: [1, 2]}}\n"
    manifest = load_manifest(write(tmp_path, text))
    assert manifest.max_jobs == 10_000_000 and len(list(expand(manifest))) == 2
    values = ", ".join(str(i) for i in range(3163))
    text = f"name: x\nmax_jobs: {max_jobs}\nprompt: '{{a}} {{b}}'\nmatrix:\n  a: [{values}]\n  b: [{values}]\n"
    with pytest.raises(ManifestError) as caught:
        expand(load_manifest(write(tmp_path, text, "big.yaml")))
    assert caught.value.line == 2 and "10,004,569 jobs" in str(caught.value), str(caught.value)
    assert "split the batch into several manifests" in str(caught.value) and "raise" not in str(caught.value)


def test_max_jobs_at_the_ceiling_is_taken(tmp_path: Path) -> None:
    assert load_manifest(write(tmp_path, MINIMAL + "max_jobs: 10000000\n")).max_jobs == 10_000_000


@pytest.mark.parametrize("name", ["_orphans", "_Orphans", "_ORPHANS", "_rejected", "_Rejected"])
def test_name_of_a_folder_the_runner_keeps_is_refused(tmp_path: Path, name: str) -> None:
    """A name the runner gives its own folders under outputs/ (in any case) is refused at its line, saying why."""
    error = load_error(tmp_path, f"prompt: x\nname: {name}\n")
    assert error.line == 2 and error.rule == "reserved-name" and error.path == str(tmp_path / "m.yaml")
    assert f"name {name!r} is reserved" in str(error) and "another name" in str(error)
    assert ("case-insensitive" in str(error)) == (name not in ("_orphans", "_rejected"))
    assert load_error(tmp_path, f"name: {name}\nprompt: x\nrepeats: '2'\n").rule == "reserved-name"  # the models read it


@pytest.mark.parametrize("name", ["_orphans2", "orphans", "_orphan", "my_rejected"])
def test_name_near_a_kept_folder_is_taken(tmp_path: Path, name: str) -> None:
    """Only the reserved names themselves are refused."""
    assert load_manifest(write(tmp_path, f"name: {name}\nprompt: x\n")).name == name
