"""A planned batch whose jobs are made done (with their videos) or failed straight in its SQLite ledger, for tests of
what reads a big batch (report, export, verify, ledger copy) without running it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from runner.ledger import open_ledger
from runner.manifest import expand, load_manifest
from runner.simulator.media import Video

__all__ = ["stored_batch"]


def stored_batch(tmp_path: Path, name: str, things: list[str], per_thing: int, *,
                 failed_every: int | None = None) -> tuple[Path, Path, set[str]]:
    """``len(things) × per_thing`` jobs of manifest ``name``, every other one done with its video (job ids odd), one in
    ``failed_every`` of the others failed; (manifest, state directory, the done ones' output names)."""
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(f'name: {name}\nprompt: "a {{thing}} at {{n}}"\nmatrix:\n  thing: [{", ".join(things)}]\n'
                        "  n: [" + ", ".join(str(i) for i in range(per_thing)) + ']\noutput: "{thing}-{n}.mp4"\n')
    spec = load_manifest(manifest)
    state = tmp_path / "state"
    with open_ledger(state) as ledger:
        ledger.register(spec.name, spec.digest, expand(spec))
    (state / "outputs" / name).mkdir(parents=True)
    done = set()
    db = sqlite3.connect(state / "ledger.db")
    with db:
        for job_id, output in db.execute("SELECT j.id, t.output FROM jobs j JOIN targets t ON t.job_id = j.id").fetchall():
            if job_id % 2:
                data = Video(f"t-{job_id}").read()
                (state / "outputs" / name / output).write_bytes(data)
                db.execute("UPDATE jobs SET state = 'done', path = ?, sha256 = ?, bytes = ? WHERE id = ?",
                           (f"outputs/{name}/{output}", hashlib.sha256(data).hexdigest(), len(data), job_id))
                done.add(output)
            elif failed_every is not None and job_id % failed_every == 0:
                db.execute("UPDATE jobs SET state = 'failed', error = 'moderation' WHERE id = ?", (job_id,))
    db.close()
    return manifest, state, done
