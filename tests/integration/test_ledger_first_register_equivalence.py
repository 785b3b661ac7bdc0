"""The first registration's rows are the rows of the one-row-at-a-time path, byte for byte.

A first registration into a ledger with no job (``runner/ledger/sqlite/first.py``) passes each chunk's
values to SQLite as one JSON text and builds the jobs beside the writes in a worker thread. Here the
same jobs go through it and through the path of a ledger that already has jobs (``_upsert``, a bound
row per job), and both are compared, column by column, with the values the jobs themselves give:
generated manifests (matrices, repeats, includes and excludes, several models and estimates, named
outputs, salts, odd text), chunks of a few jobs, and jobs no manifest would make (NUL characters,
-0.0, integer estimates, keys and names of any text).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.errors import ManifestError
from runner.jobs import JobSpec, canonical_json
from runner.ledger import open_ledger
from runner.ledger.sqlite import first
from runner.ledger.sqlite.first import vars_json
from runner.manifest import expand, load_manifest

TEXTS = ["fox", "Zoë", "Zoe\u0308", "a \"quoted\" word", "back\\slash", "two\nlines", "tab\there", "100%", "{}",
         "emoji 🦊", "\u2028sep", "cr\rx", "nbsp\xa0x", "日本語", "", "  ", "x" * 40]


def _manifest(rng: random.Random, out: Path) -> Path:
    axes: dict[str, Any] = {
        "subject": rng.sample([t for t in TEXTS if t.strip()], rng.randint(1, 5)),
        "place": [f"place {i} {rng.choice(TEXTS)}" for i in range(rng.randint(1, 4))],
    }
    if rng.random() < 0.5:
        axes["model"] = ["kling-v3.0-std-t2v", "kling-v3.0-pro-t2v"]
    if rng.random() < 0.5:
        axes["sound"] = [True, False]
    if rng.random() < 0.4:
        axes["cfg_scale"] = [0.25, 0.5, 0.3]
    if rng.random() < 0.4:
        axes["duration"] = [5, 10]
    named = rng.random() < 0.5
    doc: dict[str, Any] = {
        "name": f"gen-{rng.randint(0, 10**6)}",
        "defaults": {"duration": 5, "aspect_ratio": rng.choice(["16:9", "1:1"])},
        "prompt": "A shot of {subject} at {place}" + rng.choice(["", " take {repeat}", " \u00e9"]),
        "matrix": dict(axes),
        "repeats": rng.randint(1, 3),
        "max_jobs": 100_000,
    }
    if rng.random() < 0.3:
        doc["defaults"]["negative_prompt"] = rng.choice(["blurry", "flou, très flou"])
    if rng.random() < 0.3:
        doc["salt"] = rng.choice(["s1", "sel é"])
    if rng.random() < 0.4:
        doc["matrix"]["include"] = [{"subject": "extra one", "place": "somewhere"}]
    if rng.random() < 0.4 and len(axes["subject"]) > 1:
        doc["matrix"]["exclude"] = [{"subject": axes["subject"][0]}]
    if named:
        doc["output"] = "{subject}/" + "".join(f"{{{name}}}-" for name in axes if name != "subject") + "{repeat}.mp4"
    path = out / "m.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _expected(specs: list[JobSpec]) -> list[tuple[Any, ...]]:
    return [(s.key, s.model, s.request_json or canonical_json(s.request), vars_json(s.vars), s.repeat,
             float(s.estimated_usd), s.output) for s in specs]


def _stored(state: Path, name: str) -> dict[str, Any]:
    db = sqlite3.connect(state / "ledger.db")
    try:
        jobs = db.execute(
            "SELECT j.key, j.model, j.request_json, j.vars_json, j.repeat, j.estimated_usd, t.output FROM targets t"
            " JOIN jobs j ON j.id = t.job_id WHERE t.manifest = ? ORDER BY j.id", (name,)).fetchall()
        columns = db.execute(
            "SELECT typeof(j.request_json), typeof(j.vars_json), typeof(j.estimated_usd), j.state, j.attempts,"
            " j.spent_usd, j.created_at = m.registered_at AND j.updated_at = m.registered_at, t.gen = m.gen"
            " FROM targets t JOIN jobs j ON j.id = t.job_id JOIN manifests m ON m.name = t.manifest"
            " WHERE t.manifest = ? GROUP BY 1, 2, 3, 4, 5, 6, 7, 8", (name,)).fetchall()
        targeted = db.execute(
            "SELECT j.key, e.output, e.first_at = m.registered_at, e.dropped_at FROM targeted e JOIN jobs j"
            " ON j.id = e.job_id JOIN manifests m ON m.name = e.manifest WHERE e.manifest = ? ORDER BY j.id",
            (name,)).fetchall()
        signs = db.execute("SELECT j.key, cast(j.estimated_usd AS TEXT) FROM jobs j ORDER BY j.id").fetchall()
        check = db.execute("PRAGMA foreign_key_check").fetchall()
        manifest = db.execute("SELECT jobs, gen FROM manifests WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return {"jobs": jobs, "columns": columns, "targeted": targeted, "signs": dict(signs), "fk": check,
            "manifest": manifest}


def _register(state: Path, name: str, specs: list[JobSpec], *, seeded: bool, batch: int = 2000) -> dict[str, Any]:
    with open_ledger(state) as ledger:
        if seeded:  # a ledger that already has a job: the one-row-at-a-time path
            ledger.register("other", "d", [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": "unrelated"},
                                                         vars={}, repeat=1, output="unrelated.mp4")])
        assert ledger.register(name, "digest", iter(specs), batch=batch) == len(specs)
    return _stored(state, name)


def _both(tmp_path: Path, name: str, specs: list[JobSpec], monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(first, "FIRST_BATCH", chunk)
    new = _register(tmp_path / "first", name, specs, seeded=False, batch=1)
    old = _register(tmp_path / "upsert", name, specs, seeded=True, batch=3)
    expected = _expected(specs)
    assert new["jobs"] == expected  # keys, request and variables JSON, repeat, estimate, output; ids in job order
    assert old["jobs"] == expected
    assert new["columns"] == old["columns"] == [("text", "text", "real", "pending", 0, 0.0, 1, 1)]
    assert new["targeted"] == old["targeted"] == [(row[0], row[6], 1, None) for row in expected]
    assert {key: new["signs"][key] for key, *_ in expected} == {key: old["signs"][key] for key, *_ in expected}
    assert new["fk"] == old["fk"] == []
    assert new["manifest"] == old["manifest"] == (len(specs), 1)


@pytest.mark.parametrize("seed", range(16))
def test_generated_manifests_are_stored_alike_by_both_paths(tmp_path: Path, seed: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    tmp_path.joinpath("m").mkdir()
    path = _manifest(rng, tmp_path / "m")
    try:
        manifest = load_manifest(path)
        specs = list(expand(manifest))
    except ManifestError as exc:  # a generated manifest the language refuses (an empty prompt…): none of ours
        pytest.fail(f"seed {seed}: {exc}")
    assert specs
    _both(tmp_path, manifest.name, specs, monkeypatch, chunk=rng.choice([1, 2, 5, 64]))


def _odd() -> Iterator[JobSpec]:
    models = ["kling-v3.0-pro-t2v", "kling-v3.0-std-t2v"]
    for i in range(300):
        estimate: float = [0.56, 0.0, -0.0, 1, 0.1 + 0.2, 1e-300][i % 6 if i >= 150 else 0]
        model = models[(i // 7) % 2] if i < 100 else models[i % 2]  # runs of 7, then a new model every job
        prompt = ["nul \x00 inside", "plain", "quote \" and \\u0000 as text", "é\u0301", "\U0001f98a"][i % 5]
        if 50 <= i < 100:  # in the JSON of the variables: not JSON to SQLite, or only looking like it
            weight: Any = [float("nan"), float("inf"), -float("inf"), "NaN", ":Infinity", 2.5][i % 6]
            prompt = "plain"
        else:
            weight = 1
        yield JobSpec.build(model=model, request={"prompt": f"{prompt} {i}", "duration": 5},
                            vars={"i": i, "p": prompt, "w": weight},
                            repeat=1 + i % 2, output=["{k}.mp4", "out/{i}.mp4", "n\x00l {i}.mp4", "é {i}.mp4"][i % 4]
                            .replace("{i}", str(i)), estimated_usd=estimate)


@pytest.mark.parametrize("chunk", [1, 16, 1000])
def test_odd_jobs_are_stored_alike_by_both_paths(tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """NUL characters (which SQLite's JSON functions cut a string at), -0.0 beside 0.0, an integer estimate, a
    model that changes every job: such chunks are written row by row, the others in JSON; the same rows."""
    specs = [JobSpec(key=s.key, model=s.model, request=s.request, vars=s.vars, repeat=s.repeat,
                     output=s.output.replace("{k}", s.key), estimated_usd=s.estimated_usd) for s in _odd()]
    _both(tmp_path, "odd", specs, monkeypatch, chunk)


def test_default_names_in_json_chunks_are_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"p{i}"}, vars={"i": i}, repeat=1,
                           output="", estimated_usd=0.5) for i in range(50)]
    specs = [JobSpec(key=s.key, model=s.model, request=s.request, vars=s.vars, repeat=1, output=s.key + ".mp4",
                     estimated_usd=0.5) for s in specs]
    _both(tmp_path, "keyed", specs, monkeypatch, chunk=8)
