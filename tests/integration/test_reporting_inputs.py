"""Results that show their inputs (issue 11, item 7): the HTML report and the exports of image-to-video jobs.

The ledger holds the jobs as planned (an image by URL, inline, or as a local file by reference) and
done (a video stored); the report shows each clip's model and input image, the Hugging Face export
copies the conditioning image beside the video as a column, and the jsonl/csv record carries the
input references and hashes. A local image is shown or copied only while its bytes still match.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from runner import endpoints
from runner.endpoints.kling import data_uri
from runner.jobs import JobSpec
from runner.ledger import SqliteLedger, open_ledger
from runner.reporting.dataset import METADATA_FILE, export_hf
from runner.reporting.gallery import write_gallery
from runner.reporting.records import job_row
from runner.simulator.media import Video
from runner.storage.local import LocalStore
from runner.testing import make_jpeg, make_png

URL = "https://cdn.example.com/frames/harbour.png"


def _ref(root: Path, rel: str, data: bytes, mime: str) -> dict[str, Any]:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    return {"file": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "image", "mime": mime}


def _job(model: str, fields: dict[str, Any], name: str) -> JobSpec:
    request = endpoints.get(model).request_body(fields)
    return JobSpec.build(model=model, request=request, vars={"shot": name}, repeat=1, output=f"{name}.mp4",
                         estimated_usd=0.42)


@pytest.fixture
def done(tmp_path: Path) -> tuple[SqliteLedger, Path, dict[str, bytes]]:
    """A ledger whose five jobs are done: four image-to-video (local, local gone, URL, inline), one text."""
    root = tmp_path / "project"
    png, jpeg = make_png(640, 360, seed=1), make_jpeg(400, 800)
    gone = _ref(root, "frames/gone.png", make_png(500, 500, seed=2), "image/png")
    (root / gone["file"]).unlink()
    jobs = [
        _job("kling-v3.0-std-i2v", {"image": _ref(root, "frames/a.png", png, "image/png"),
                                    "end_image": _ref(root, "frames/b.jpg", jpeg, "image/jpeg"), "prompt": "a"}, "local"),
        _job("kling-v3.0-pro-i2v", {"image": gone, "prompt": "b"}, "gone"),
        _job("kling-v3.0-pro-i2v", {"image": URL, "prompt": "c"}, "url"),
        _job("kling-v3.0-std-i2v", {"image": data_uri(png, "image/png"), "prompt": "d"}, "inline"),
        _job("kling-v3.0-pro-t2v", {"prompt": "e"}, "text"),
    ]
    ledger = open_ledger(tmp_path / "state")
    ledger.register("m", "digest", jobs)
    for job in jobs:
        video = Video(job.key).read()
        path = f"outputs/m/{job.output}"
        (tmp_path / "state" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "state" / path).write_bytes(video)
        attempt = ledger.mark_submitting(job.key)
        assert attempt is not None
        assert ledger.mark_running(job.key, attempt, task_id=f"t-{job.key}", http_status=200)
        assert ledger.mark_succeeded(job.key, video_url="https://x/v.mp4", url_expires_at=None, debug={})
        assert ledger.mark_done(job.key, path=path, sha256=hashlib.sha256(video).hexdigest(), bytes=len(video))
    return ledger, root, {"png": png, "jpeg": jpeg}


def test_the_report_shows_each_clips_model_and_input_image(
    done: tuple[SqliteLedger, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    ledger, root, files = done
    result = write_gallery(ledger, "m", tmp_path / "report", inputs_root=root)
    page = result.index.read_text(encoding="utf-8")
    for model in ("kling-v3.0-std-i2v", "kling-v3.0-pro-i2v", "kling-v3.0-pro-t2v"):
        assert f'<span class="model">{model}</span>' in page
    png_copy = f"inputs/{hashlib.sha256(files['png']).hexdigest()[:24]}.png"
    jpeg_copy = f"inputs/{hashlib.sha256(files['jpeg']).hexdigest()[:24]}.jpg"
    assert (tmp_path / "report" / png_copy).read_bytes() == files["png"]  # local and inline: one copy
    assert (tmp_path / "report" / jpeg_copy).read_bytes() == files["jpeg"]
    assert page.count(f'<img src="{png_copy}"') == 2 and f'<img src="{jpeg_copy}"' in page
    assert f'<img src="{URL}"' in page
    assert "image: frames/gone.png (not found)" in page
    assert page.count("<img ") == 4, "the text-to-video card has no input"


def test_without_the_manifest_folder_local_inputs_are_named_not_shown(
    done: tuple[SqliteLedger, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    ledger, _, _ = done
    page = write_gallery(ledger, "m", tmp_path / "report").index.read_text(encoding="utf-8")
    assert "image: frames/a.png (not found)" in page
    assert not (tmp_path / "report" / "inputs" / "x").exists()


def test_a_changed_local_image_is_not_shown_as_the_input(
    done: tuple[SqliteLedger, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    ledger, root, _ = done
    (root / "frames" / "a.png").write_bytes(make_png(640, 360, seed=9))
    page = write_gallery(ledger, "m", tmp_path / "report", inputs_root=root).index.read_text(encoding="utf-8")
    assert "image: frames/a.png (not found)" in page


def test_the_hf_export_copies_the_conditioning_image_beside_the_video(
    done: tuple[SqliteLedger, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    ledger, root, files = done
    result = export_hf(ledger, "m", tmp_path / "hf", LocalStore(ledger.state_dir), inputs_root=root)
    assert result.rows == 5
    rows = {row["file_name"]: row for row in map(json.loads, (tmp_path / "hf" / METADATA_FILE).read_text().splitlines())}
    assert all(set(row) == set(rows["local.mp4"]) for row in rows.values()), "one schema for every row"
    local = rows["local.mp4"]
    assert local["model"] == "kling-v3.0-std-i2v"
    assert (local["image_file_name"], local["end_image_file_name"]) == ("local.image.png", "local.end_image.jpg")
    assert (tmp_path / "hf" / "local.image.png").read_bytes() == files["png"]
    assert (tmp_path / "hf" / "local.end_image.jpg").read_bytes() == files["jpeg"]
    assert local["image_sha256"] == hashlib.sha256(files["png"]).hexdigest()
    assert local["image_source"] == "frames/a.png" and "image" not in local, "the file column's name stays free"
    assert rows["inline.mp4"]["image_file_name"] == "inline.image.png"
    assert rows["inline.mp4"]["image_source"] == "inline", "no base64 in the row"
    assert rows["url.mp4"]["image_file_name"] is None and rows["url.mp4"]["image_source"] == URL
    assert rows["gone.mp4"]["image_file_name"] is None
    assert rows["text.mp4"]["image_file_name"] is None and rows["text.mp4"]["model"] == "kling-v3.0-pro-t2v"


def test_the_jsonl_and_csv_record_carries_input_references_and_hashes(
    done: tuple[SqliteLedger, Path, dict[str, bytes]]
) -> None:
    ledger, _, files = done
    store = LocalStore(ledger.state_dir)
    rows = {row["output"]: row for row in (job_row(job, store) for job in ledger.iter_jobs("m"))}
    image = rows["local.mp4"]["request"]["image"]
    assert image == {"file": "frames/a.png", "sha256": hashlib.sha256(files["png"]).hexdigest(),
                     "size": len(files["png"]), "kind": "image", "mime": "image/png"}
    assert rows["url.mp4"]["request"]["image"] == URL
    assert json.loads(json.dumps(rows["local.mp4"]))["request"]["end_image"]["sha256"]
