"""Issue 11, done-when (items 2-5): model axes and local image inputs, end to end.

`runner` runs as a subprocess against a simulator on loopback, which validates every body against
its endpoint's wire model (a refused body would fail its job): a model axis over the three
text-to-video tiers and an image-to-video batch over a folder of local images run to completion;
renaming the folder pays nothing, editing one image pays once; a bad image stops `plan` (exit 2)
before anything is sent; `plan --json` prices Std and Pro from the table and says 4K has none.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.testing import make_png

from test_cli_support import (
    ProviderFactory,
    counts,
    finish_cli,
    provider,
    run_args,
    run_cli,
    start_cli,
    wait_for,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

STD, PRO, FOURK = "kling-v3.0-std-t2v", "kling-v3.0-pro-t2v", "kling-v3.0-4k-t2v"

TIERS = f"""\
name: tiers
prompt: "a {{subject}} at dawn"
defaults: {{duration: 3}}
matrix:
  model: [{STD}, {PRO}, {FOURK}]
  subject: [fox, owl]
output: "{{model}}/{{subject}}.mp4"
"""

ANIMATE = """\
name: animate
model: kling-v3.0-std-i2v
prompt: "the camera slowly pushes in"
defaults: {duration: 3}
matrix:
  image: {glob: "@DIR@/*.png"}
"""


def animate(folder: str) -> str:
    return ANIMATE.replace("@DIR@", folder)


def frames(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"frame-{n}.png").write_bytes(make_png(480, 320, seed=n))


def test_a_model_axis_over_the_three_text_to_video_tiers_runs_to_completion(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, TIERS, "tiers.yaml")
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert counts(state, "tiers") == {"done": 6}
    assert sim.accepted() == 6  # every body valid for its endpoint: the simulator refuses any other
    for model in (STD, PRO, FOURK):
        assert sorted(p.name for p in (state / "outputs" / "tiers" / model).iterdir()) == ["fox.mp4", "owl.mp4"]


def test_plan_json_prices_std_and_pro_from_the_table_and_says_4k_has_no_price(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, TIERS, "tiers.yaml")
    result = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), "--json", cwd=tmp_path)
    assert result.code == 0, str(result)
    plan = json.loads(result.stdout)
    assert plan["models"][STD] == {"jobs": 2, "price_per_second": {"silent": 0.084, "sound": 0.126}}
    assert plan["models"][PRO] == {"jobs": 2, "price_per_second": {"silent": 0.112, "sound": 0.168}}
    assert plan["models"][FOURK] == {"jobs": 2, "price_per_second": None}
    assert plan["unpriced_to_submit"] == {FOURK: 2} and plan["no_known_price"] == [FOURK]
    assert plan["estimated_usd_to_submit"] == round(2 * 3 * 0.084 + 2 * 3 * 0.112, 4)
    text = run_cli("plan", str(manifest), "--state", str(tmp_path / "state"), cwd=tmp_path).stdout
    assert f"2 job(s) of {FOURK}: no known price" in text

    one = write_manifest(tmp_path, TIERS.replace(f"[{STD}, {PRO}, {FOURK}]", f"[{FOURK}]"), "one.yaml")
    headline = run_cli("plan", str(one), "--state", str(tmp_path / "one"), cwd=tmp_path).stdout.splitlines()[0]
    assert headline == f"tiers: 2 job(s) of {FOURK}", headline  # its jobs' model, not the top-level default (Pro)


MOTION_BY_URL = """\
name: moves
model: kling-v3.0-motion-control
prompt: "{who} dancing"
defaults: {model_name: kling-v3-0-std, image: "https://example.com/a.png", video: "https://example.com/salsa.mp4"}
matrix:
  who: [a robot, a knight]
  character_orientation: [image, video]
output: "{who}-{character_orientation}.mp4"
pricing:
  kling-v3.0-motion-control: {per_second: 0.126}
"""


def test_plan_says_which_estimates_are_the_most_a_job_may_cost(tmp_path: Path) -> None:
    """Motion control following a reference video given by URL is estimated at its longest output, 30 s (6x the
    5 s of `character_orientation: image`): plan said nothing, and the estimate read as a price."""
    manifest = write_manifest(tmp_path, MOTION_BY_URL, "moves.yaml")
    state = str(tmp_path / "state")
    plan = json.loads(run_cli("plan", str(manifest), "--state", state, "--json", cwd=tmp_path).stdout)
    assert plan["estimated_usd_to_submit"] == round(2 * 5 * 0.126 + 2 * 30 * 0.126, 4)
    assert list(plan["estimated_at_most_to_submit"]) == ["kling-v3.0-motion-control"]
    assert plan["estimated_at_most_to_submit"]["kling-v3.0-motion-control"]["jobs"] == 2
    text = run_cli("plan", str(manifest), "--state", state, cwd=tmp_path).stdout
    assert "2 job(s) of kling-v3.0-motion-control priced at 30 s, the longest output" in text, text
    tiers = write_manifest(tmp_path, TIERS, "tiers.yaml")
    assert json.loads(run_cli("plan", str(tiers), "--state", state, "--json", cwd=tmp_path).stdout)[
        "estimated_at_most_to_submit"] == {}


def test_a_budget_refuses_models_without_a_price_unless_the_manifest_prices_them(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, TIERS, "tiers.yaml")
    refused = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "50")), cwd=tmp_path)
    assert refused.code == 2, str(refused)
    assert FOURK in refused.stderr and "pricing:" in refused.stderr and "nothing was sent" in refused.stderr
    assert sim.accepted() == 0
    write_manifest(tmp_path, TIERS + f"pricing:\n  {FOURK}: {{per_second: 0.42, per_second_sound: 0.63}}\n",
                   "tiers.yaml")
    result = run_cli(*run_args("run", manifest, state, *sim.engine_args("--budget", "50")), cwd=tmp_path)
    assert result.code == 0, str(result)
    assert sim.accepted() == 6


def test_a_folder_of_images_runs_and_only_changed_content_is_paid_again(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "frames")
    manifest = write_manifest(tmp_path, animate("frames"), "animate.yaml")
    first = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert first.code == 0, str(first)
    assert counts(state, "animate") == {"done": 3} and sim.accepted() == 3
    # Renaming the folder (and the pattern) re-plans, and pays nothing: keys follow the content.
    (tmp_path / "frames").rename(tmp_path / "stills")
    write_manifest(tmp_path, animate("stills"), "animate.yaml")
    renamed = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert renamed.code == 0, str(renamed)
    assert sim.accepted() == 3
    listed = run_cli("plan", str(manifest), "--state", str(state), "--list", cwd=tmp_path).stdout
    assert all(json.loads(line)["request"]["image"]["file"].startswith("stills/") for line in listed.splitlines())
    # New pixels in one image: exactly that job is new.
    (tmp_path / "stills" / "frame-1.png").write_bytes(make_png(480, 320, seed=42))
    edited = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert edited.code == 0, str(edited)
    assert sim.accepted() == 4
    assert counts(state, "animate") == {"done": 3}


def test_an_invalid_local_image_stops_plan_and_run_before_anything_is_sent(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "frames", 2)
    (tmp_path / "frames" / "frame-1.png").write_bytes(make_png(200, 120))
    manifest = write_manifest(tmp_path, animate("frames"), "animate.yaml")
    plan = run_cli("plan", str(manifest), "--state", str(state), cwd=tmp_path)
    assert plan.code == 2, str(plan)
    assert "frames/frame-1.png" in plan.stderr and "at least 300 px" in plan.stderr
    run = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert run.code == 2, str(run)
    assert "frames/frame-1.png" in run.stderr
    assert sim.accepted() == 0


def test_report_and_hf_export_from_the_cli_carry_the_conditioning_images(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The CLI hands the manifest's folder to the report and the export, so local images are copied."""
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    frames(tmp_path / "frames", count=2)
    manifest = write_manifest(tmp_path, animate("frames"), "animate.yaml")
    assert run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path).code == 0
    elsewhere = tmp_path / "elsewhere"  # the commands run from another directory
    elsewhere.mkdir()
    hf = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(tmp_path / "hf"),
                 cwd=elsewhere)
    assert hf.code == 0, str(hf)
    copied = sorted(p.name for p in (tmp_path / "hf").rglob("*.image.png"))
    assert len(copied) == 2, copied
    report = run_cli("report", str(manifest), "--state", str(state), "--to", str(tmp_path / "page"), cwd=elsewhere)
    assert report.code == 0, str(report)
    page = next((tmp_path / "page").rglob("*.html")).read_text()
    pngs = [p for p in (tmp_path / "page").rglob("*.png")]
    assert len(pngs) == 2 and all(p.name in page or p.parent.name in page for p in pngs), (pngs, page[:500])
    assert "without their input image" not in hf.stderr, str(hf)
    # An input edited after its run, another deleted: the export says so instead of leaving the column empty quietly
    # (the image-input sweep: exit 0 and the usual line, two rows with no image).
    (tmp_path / "frames" / "frame-0.png").write_bytes(make_png(480, 320, seed=99))
    (tmp_path / "frames" / "frame-1.png").unlink()
    again = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(tmp_path / "hf2"),
                    cwd=elsewhere)
    assert again.code == 0 and "2 row(s) without their input image" in again.stderr, str(again)


def test_a_job_failed_unsent_for_a_moved_input_is_sent_once_the_file_is_back(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The image-input sweep: an input renamed away mid-run failed its job unsent, as it should (nothing paid); but
    once the file was back the job stayed failed, run after run (exit 1), until a `retry --failed`. Now each run
    puts such never-paid jobs back to pending, and the file is checked again before anything is sent."""
    sim = provider(task_seconds=0.5)
    state = tmp_path / "state"
    frames(tmp_path / "frames", 2)
    manifest = write_manifest(tmp_path, animate("frames") + "limits: {concurrency: 1}\n", "animate.yaml")
    moved, away = tmp_path / "frames" / "frame-1.png", tmp_path / "frame-1.png"
    proc = start_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    wait_for(lambda: sim.accepted() >= 1 or proc.poll() is not None, timeout=30, what="the first submit")
    moved.rename(away)  # away mid-run, before the second job is sent
    stderr = finish_cli(proc, timeout=60)
    assert proc.returncode == 1 and counts(state, "animate") == {"done": 1, "failed": 1}, stderr
    assert sim.accepted() == 1
    away.rename(moved)  # back
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and counts(state, "animate") == {"done": 2}, str(again)
    assert "planned again" in again.stderr, str(again)
    assert sim.accepted() == 2 and sim.max_per_body() == 1


def test_an_image_whose_name_is_in_nfd_as_macos_writes_it_is_planned_sent_and_exported(
    tmp_path: Path, provider: ProviderFactory
) -> None:
    """The image-input sweep: a file copied from macOS keeps its name in NFD (`cafe\\u0301.png`); values are planned
    in NFC, and on Linux the NFC spelling does not open it: `plan` said "no such file". The stored reference now
    keeps the spelling on disk."""
    sim = provider(task_seconds=0)
    state = tmp_path / "state"
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "cafe\u0301.png").write_bytes(make_png(480, 320, seed=7))
    manifest = write_manifest(tmp_path, animate("frames"), "animate.yaml")
    ran = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert ran.code == 0 and counts(state, "animate") == {"done": 1}, str(ran)
    again = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert again.code == 0 and sim.accepted() == 1, str(again)  # the same job: nothing paid twice
    hf = run_cli("export", str(manifest), "--state", str(state), "--format", "hf", "--to", str(tmp_path / "hf"),
                 cwd=tmp_path)
    assert hf.code == 0 and "without their input image" not in hf.stderr, str(hf)
    assert len(list((tmp_path / "hf").rglob("*.image.png"))) == 1
