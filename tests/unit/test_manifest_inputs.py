"""Issue 11 items 3 and 4: inputs from files and URLs; a job's identity follows the content."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fifo_swap import no_block, swap_before_open
from stub_family import I2V, family  # noqa: F401 - the fixture

from runner.endpoints.media import InputChanged, LocalFile
from runner.errors import ManifestError
from runner.manifest import expand, files, load_manifest
from runner.manifest.inputs import InputResolver
from runner.testing import make_jpeg, make_mp4, make_png

_FOLDER = """\
name: animate
model: @MODEL@
prompt: "slow zoom"
matrix:
  image: {glob: "@DIR@/*.png"}
output: "{image}.mp4"
"""


class _Folder:
    @staticmethod
    def format(folder: str) -> str:
        return _FOLDER.replace("@MODEL@", I2V).replace("@DIR@", folder)


FOLDER = _Folder()

pytestmark = pytest.mark.usefixtures("family")


def frames(folder: Path, count: int = 3) -> list[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [make_png(640, 360, seed=n) for n in range(count)]
    for n, data in enumerate(images):
        (folder / f"f{n}.png").write_bytes(data)
    return images


def plan(tmp_path: Path, text: str) -> list[Any]:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return list(expand(load_manifest(path)))


def refused(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        plan(tmp_path, text)
    return info.value


def test_a_folder_is_an_axis_of_references_keyed_by_content(tmp_path: Path) -> None:
    images = frames(tmp_path / "frames")
    (tmp_path / "frames" / "notes.txt").write_text("not matched")
    jobs = plan(tmp_path, FOLDER.format(folder="frames"))
    assert [job.vars["image"] for job in jobs] == ["frames/f0.png", "frames/f1.png", "frames/f2.png"]
    ref = jobs[0].request["image"]
    assert ref == {"file": "frames/f0.png", "sha256": hashlib.sha256(images[0]).hexdigest(), "size": len(images[0]),
                   "kind": "image", "mime": "image/png"}
    assert "base64" not in str(jobs[0].request)  # the ledger stores the reference, never the bytes
    assert jobs[0].output == "frames_f0.png.mp4"


def test_renaming_the_folder_keeps_every_key_and_editing_one_image_changes_exactly_one(tmp_path: Path) -> None:
    frames(tmp_path / "frames")
    before = plan(tmp_path, FOLDER.format(folder="frames"))
    (tmp_path / "frames").rename(tmp_path / "shots")
    moved = plan(tmp_path, FOLDER.format(folder="shots"))
    assert [job.key for job in moved] == [job.key for job in before]
    assert moved[1].request["image"]["file"] == "shots/f1.png"
    (tmp_path / "shots" / "f1.png").write_bytes(make_png(640, 360, seed=99))
    edited = plan(tmp_path, FOLDER.format(folder="shots"))
    assert [a.key == b.key for a, b in zip(before, edited, strict=True)] == [True, False, True]


def test_an_empty_glob_names_the_pattern(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    assert error.rule == "empty-axis" and "'frames/*.png'" in str(error) and error.line == 5


@pytest.mark.timeout(20)
@pytest.mark.parametrize("links", [{"again": "."}, {"again": ".", "more": "."}, {"sub/up": ".."}],
                         ids=["one-link-to-itself", "two-links-to-itself", "a-link-up"])
def test_a_recursive_glob_over_a_link_back_up_is_refused_naming_the_link(tmp_path: Path, links: dict[str, str]) -> None:
    """`**` follows links to folders: one link from frames/ to itself listed frames/x.png as frames/again/x.png,
    frames/again/again/x.png… (40 deep, refused as 40 jobs "asking for the same video"), and two such links made
    2^40 paths: `plan` walked them until killed. A folder the pattern would walk twice is refused, naming the link."""
    frames(tmp_path / "frames", 2)
    for link, target in links.items():
        (tmp_path / "frames" / link).parent.mkdir(exist_ok=True)
        (tmp_path / "frames" / link).symlink_to(target, target_is_directory=True)
    started = time.monotonic()
    error = refused(tmp_path, FOLDER.format(folder="frames/**"))
    assert time.monotonic() - started < 5
    assert error.rule == "matrix-source" and error.line == 5 and error.path == str(tmp_path / "m.yaml"), str(error)
    link = "frames/sub/up" if "sub/up" in links else "frames/again"
    assert f"'frames/**/*.png' would walk the folder frames again through {link}" in str(error), str(error)
    # without `**` nothing is walked: the same folder's own files are the axis
    assert [job.request["image"]["file"] for job in plan(tmp_path, FOLDER.format(folder="frames"))] == [
        "frames/f0.png", "frames/f1.png"]


def test_a_recursive_glob_walks_hidden_folders_and_links_elsewhere_as_before(tmp_path: Path) -> None:
    """What `**` did before is kept: sub-folders and a link to a folder outside are walked, hidden ones are not (a
    loop inside a hidden folder, which `**` never enters, refuses nothing)."""
    frames(tmp_path / "frames" / "a", 1)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.png").write_bytes(make_png(640, 360, seed=9))
    (tmp_path / "frames" / "b").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "frames" / ".cache").mkdir()
    (tmp_path / "frames" / ".cache" / "loop").symlink_to("..", target_is_directory=True)
    jobs = plan(tmp_path, FOLDER.format(folder="frames/**"))
    assert [job.request["image"]["file"] for job in jobs] == ["frames/a/f0.png", "frames/b/e.png"]


@pytest.mark.parametrize(("data", "rule"), [
    (make_png(200, 200), "both sides must be at least 300 px"),
    (make_png(1000, 300), "aspect ratio 1000:300"),
    (b"GIF89a not an image we take", "a GIF image, a format the provider does not take"),
    (b"not an image at all", "not a PNG, JPEG, MP4 or MOV"),
    (make_mp4(), "takes an image"),
])
def test_a_bad_local_image_stops_the_plan_naming_the_file_and_the_rule(tmp_path: Path, data: bytes, rule: str) -> None:
    frames(tmp_path / "frames", 2)
    (tmp_path / "frames" / "f1.png").write_bytes(data)
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    assert error.rule == "input-file" and "frames/f1.png" in str(error) and rule in str(error)
    assert "\n" not in str(error)


def test_urls_are_sent_as_is_and_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(make_jpeg(400, 400))
    text = f"""\
name: mixed
model: {I2V}
prompt: "p {{n}}"
defaults: {{end_image: "https://cdn.example.com/last.png"}}
matrix:
  rows:
    - {{n: 1, image: "https://cdn.example.com/first.png"}}
    - {{n: 2, image: "./in/../in/a.jpg"}}
"""
    jobs = plan(tmp_path, text)
    assert jobs[0].request["image"] == "https://cdn.example.com/first.png"
    assert jobs[0].request["end_image"] == "https://cdn.example.com/last.png"
    assert jobs[1].request["image"]["file"] == "in/a.jpg" and jobs[1].request["image"]["mime"] == "image/jpeg"


def test_a_csv_column_of_paths_and_a_missing_file_named_with_its_row(tmp_path: Path) -> None:
    frames(tmp_path / "frames", 2)
    (tmp_path / "rows.csv").write_text("image,prompt_text\nframes/f0.png,a\nframes/f9.png,b\n")
    error = refused(tmp_path, f"name: c\nmodel: {I2V}\nprompt: '{{prompt_text}}'\nmatrix: {{rows: {{file: rows.csv}}}}\n")
    assert error.rule == "input-file" and "frames/f9.png: no such file" in str(error)
    assert str(error.path).endswith("rows.csv") and error.line == 3


def test_the_digest_follows_the_input_files(tmp_path: Path) -> None:
    frames(tmp_path / "frames", 2)
    (tmp_path / "m.yaml").write_text(FOLDER.format(folder="frames"))
    before = load_manifest(tmp_path / "m.yaml").digest
    assert load_manifest(tmp_path / "m.yaml").digest == before
    (tmp_path / "frames" / "f1.png").write_bytes(make_png(640, 360, seed=7))
    assert load_manifest(tmp_path / "m.yaml").digest != before


def test_the_resolver_inlines_or_links_and_refuses_a_changed_or_missing_file(tmp_path: Path) -> None:
    images = frames(tmp_path / "frames", 1)
    (tmp_path / "m.yaml").write_text(FOLDER.format(folder="frames"))
    manifest = load_manifest(tmp_path / "m.yaml")
    (job,) = list(expand(manifest))
    ref = LocalFile.model_validate(job.request["image"])
    inline = manifest.input_resolver()
    assert inline.wire_value(ref) == "data:image/png;base64," + base64.b64encode(images[0]).decode()
    spec_body = {"prompt": "slow zoom", "image": inline.wire_value(ref)}
    assert spec_body["image"].startswith("data:image/png;base64,")
    hosted = InputResolver(tmp_path, "https://cdn.example.com/in/")
    assert hosted.wire_value(ref) == "https://cdn.example.com/in/frames/f0.png"
    (tmp_path / "frames" / "f0.png").write_bytes(make_png(640, 360, seed=5))
    with pytest.raises(InputChanged, match=r"frames/f0\.png changed after it was planned"):
        inline.wire_value(ref)
    (tmp_path / "frames" / "f0.png").unlink()
    with pytest.raises(InputChanged, match=r"frames/f0\.png planned for this job cannot be read"):
        hosted.wire_value(ref)


def test_base_url_sends_the_path_and_refuses_files_outside_the_folder(tmp_path: Path) -> None:
    frames(tmp_path / "frames", 1)
    text = FOLDER.format(folder="frames") + "inputs: {base_url: 'https://cdn.example.com/in'}\n"
    (tmp_path / "m.yaml").write_text(text)
    manifest = load_manifest(tmp_path / "m.yaml")
    assert manifest.input_resolver().base_url == "https://cdn.example.com/in/"
    outside = tmp_path / "sub"
    outside.mkdir()
    (outside / "m.yaml").write_text(text.replace('"frames/*.png"', '"../frames/*.png"'))
    with pytest.raises(ManifestError, match="inside the manifest's folder"):
        list(expand(load_manifest(outside / "m.yaml")))
    error = refused(tmp_path, FOLDER.format(folder="frames") + "inputs: {base_url: 'ftp://x/'}\n")
    assert error.rule.startswith("schema:")


MOTION = """\
name: dance
model: kling-v3.0-motion-control
defaults: {model_name: kling-v3-0-std, character_orientation: video}
matrix:
  image: ["https://cdn.example.com/dancer.png"]
  video: [moves/salsa.mp4]
pricing: {per_second: 0.1}
"""


def test_motion_control_takes_a_local_video_only_through_base_url_and_prices_its_length(tmp_path: Path) -> None:
    (tmp_path / "moves").mkdir()
    (tmp_path / "moves" / "salsa.mp4").write_bytes(make_mp4(640, 360, seconds=7.5))
    error = refused(tmp_path, MOTION)
    assert error.rule == "input-file" and "moves/salsa.mp4 is a local file" in str(error) and "base_url" in str(error)
    (job,) = plan(tmp_path, MOTION + "inputs: {base_url: 'https://cdn.example.com/clips/'}\n")
    assert job.request["video"]["file"] == "moves/salsa.mp4" and job.request["video"]["duration"] == 7.5
    assert job.estimated_usd == pytest.approx(0.8)  # 8 s (rounded up) x 0.1
    (tmp_path / "moves" / "salsa.mp4").write_bytes(make_mp4(640, 360, seconds=45))
    error = refused(tmp_path, MOTION + "inputs: {base_url: 'https://cdn.example.com/clips/'}\n")
    assert "lasts 45.00 s" in str(error)


def test_several_bad_images_are_all_named_one_line_each_before_anything_is_planned(tmp_path: Path) -> None:
    frames(tmp_path / "frames", 4)
    (tmp_path / "frames" / "f1.png").write_bytes(make_png(100, 100))
    (tmp_path / "frames" / "f3.png").write_bytes(make_png(2000, 300))
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    lines = str(error).splitlines()
    assert error.rule == "input-file" and lines[0].endswith("2 input files are refused; nothing was planned:")
    assert "frames/f1.png" in lines[1] and "at least 300 px" in lines[1]
    assert "frames/f3.png" in lines[2] and "aspect ratio" in lines[2] and len(lines) == 3


ONE_IMAGE = f"name: one\nmodel: {I2V}\nprompt: 'slow zoom'\ndefaults: {{image: img/x.png}}\n"


def _not_a_file(folder: Path, what: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "x.png"
    if what == "fifo":
        os.mkfifo(path)  # open() would wait for a writer forever
    else:
        path.symlink_to("/dev/zero")  # endless: it was hashed at full CPU, forever
    return path


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("what", "shown"), [("fifo", "a named pipe (FIFO)"), ("zero", "a device (/dev/zero)")])
def test_an_input_that_is_a_fifo_or_a_device_is_refused_at_once_with_its_line(
    tmp_path: Path, what: str, shown: str
) -> None:
    _not_a_file(tmp_path / "img", what)
    started = time.monotonic()
    error = refused(tmp_path, ONE_IMAGE)
    assert time.monotonic() - started < 5
    assert error.rule == "input-file" and error.line == 4 and error.path == str(tmp_path / "m.yaml")
    assert f"input img/x.png is {shown}, not a regular file" in str(error)
    (tmp_path / "rows.csv").write_text("image,prompt_text\nframes/f0.png,a\nimg/x.png,b\n")
    frames(tmp_path / "frames", 1)
    error = refused(tmp_path, f"name: c\nmodel: {I2V}\nprompt: '{{prompt_text}}'\nmatrix: {{rows: {{file: rows.csv}}}}\n")
    assert error.rule == "input-file" and error.path == str(tmp_path / "rows.csv") and error.line == 3
    assert f"input img/x.png is {shown}, not a regular file" in str(error)


@pytest.mark.timeout(10)
def test_an_input_far_over_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    with (tmp_path / "img" / "x.png").open("wb") as handle:
        handle.truncate(4 << 30)  # sparse: 4 GB that were all hashed before the size was looked at
    started = time.monotonic()
    error = refused(tmp_path, ONE_IMAGE)
    assert time.monotonic() - started < 2
    assert error.rule == "input-file" and "input img/x.png is 4,294,967,296 bytes; the limit is 10 MiB (10,485,760 bytes)" in str(error)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("what", ["fifo", "zero"])
def test_a_planned_input_replaced_by_a_fifo_or_a_device_is_refused_at_submit_without_blocking(
    tmp_path: Path, what: str
) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "x.png").write_bytes(make_png(640, 360))
    (tmp_path / "m.yaml").write_text(ONE_IMAGE)
    manifest = load_manifest(tmp_path / "m.yaml")
    (job,) = list(expand(manifest))
    (tmp_path / "img" / "x.png").unlink()
    _not_a_file(tmp_path / "img", what)
    with pytest.raises(InputChanged, match=r"input img/x\.png planned for this job cannot be read now \(it is a"):
        manifest.input_resolver().wire_value(LocalFile.model_validate(job.request["image"]))


@pytest.mark.timeout(10)
def test_a_fifo_put_in_place_after_the_stat_neither_blocks_the_open_nor_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(tmp_path / "x.png")
    monkeypatch.setattr(files, "regular", lambda path: None)  # the stat saw a regular file there
    with pytest.raises(files.NotAFile, match=r"it is a named pipe \(FIFO\), not a regular file"):
        files.read_regular(tmp_path / "x.png", 100)


@pytest.mark.parametrize("when", ["plan", "submit"])
def test_an_input_swapped_for_a_fifo_after_its_check_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A FIFO put in place between the check of an input (a stat) and the open that reads it: refused at plan
    time with the manifest's line, and at submit time as an input that changed, never waited on."""
    image = tmp_path / "img" / "x.png"
    image.parent.mkdir()
    image.write_bytes(make_png(640, 360))
    if when == "plan":
        swapped = swap_before_open(monkeypatch, image)
        error = no_block(lambda: plan(tmp_path, ONE_IMAGE), image)
        assert isinstance(error, ManifestError), repr(error)
        assert error.rule == "input-file" and error.line == 4 and error.path == str(tmp_path / "m.yaml")
    else:
        (job,) = plan(tmp_path, ONE_IMAGE)
        swapped = swap_before_open(monkeypatch, image)
        ref = LocalFile.model_validate(job.request["image"])
        error = no_block(lambda: InputResolver(tmp_path).wire_value(ref), image)
        assert isinstance(error, InputChanged), repr(error)
    assert swapped, "the input was never opened"
    assert "input img/x.png" in str(error) and "a named pipe (FIFO), not a regular file" in str(error), str(error)


def test_a_globbed_file_whose_name_is_not_utf8_is_refused_at_the_glob(tmp_path: Path) -> None:
    frames(tmp_path / "frames", 1)
    odd = tmp_path / "frames" / os.fsdecode(b"f\xff.png")  # a name of bytes that are not UTF-8
    try:
        odd.write_bytes(make_png(640, 360, seed=1))
    except OSError:
        pytest.skip("this file system takes only UTF-8 names")
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    assert error.rule == "axis-value" and error.line == 5 and error.path == str(tmp_path / "m.yaml")
    assert "frames/f\\udcff.png" in str(error)
    assert "is not valid UTF-8: rename it" in str(error)


@pytest.mark.parametrize("odd", ["f\x1b[2J.png", "f\x07.png", "f\x7f.png"], ids=["esc", "bell", "del"])
def test_a_globbed_file_whose_name_holds_a_control_character_is_refused_at_the_glob(tmp_path: Path, odd: str) -> None:
    """A value typed in the manifest or a value file with an ESC or a NUL in it is refused (a terminal obeys an ESC);
    a file name the glob found with one went into the jobs' variables and output names, and each message naming the
    file sent the terminal its escape. It is refused at the glob, as a name that is not UTF-8 is."""
    frames(tmp_path / "frames", 1)
    (tmp_path / "frames" / odd).write_bytes(make_png(640, 360, seed=1))
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    assert error.rule == "axis-value" and error.line == 5 and error.path == str(tmp_path / "m.yaml"), str(error)
    assert f"the file name {('frames/' + odd)!r} holds a control character" in str(error), str(error)
    assert "rename it" in str(error) and "\x1b" not in str(error) and "\x07" not in str(error), str(error)


def test_two_globbed_files_whose_names_differ_only_in_unicode_form_are_refused_naming_both(tmp_path: Path) -> None:
    """\u00e9 and e\u0301 on disk: both planned as the NFC value, both opened as the NFC file — the NFD file's jobs
    were the other file's ("the same combination (a value listed twice?)"). The glob names the two spellings."""
    frames(tmp_path / "frames", 1)
    (tmp_path / "frames" / "caf\u00e9.png").write_bytes(make_png(640, 360, seed=2))
    (tmp_path / "frames" / "cafe\u0301.png").write_bytes(make_png(640, 360, seed=3))
    error = refused(tmp_path, FOLDER.format(folder="frames"))
    assert error.rule == "axis-value" and error.line == 5, str(error)
    assert "differ only in how their accents are encoded" in str(error), str(error)
    assert "'frames/caf\\xe9.png'" in str(error) and "'frames/cafe\\u0301.png'" in str(error), str(error)


def test_a_name_in_nfd_on_disk_is_found_by_its_nfc_form_relative_or_absolute(tmp_path: Path) -> None:
    """A file copied from macOS keeps its name in NFD; the plan's values are in NFC. Both a path relative to the
    manifest and an absolute one find it, and the spelling on disk is what every later read opens."""
    from runner.manifest.inputs import _on_disk

    folder = tmp_path / "caf\u00e9"  # an NFC folder holding an NFD file
    folder.mkdir()
    (folder / "e\u0301te\u0301.png").write_bytes(b"x")
    assert _on_disk(tmp_path, "caf\u00e9/\u00e9t\u00e9.png") == "caf\u00e9/e\u0301te\u0301.png"
    assert _on_disk(tmp_path, f"{tmp_path}/caf\u00e9/\u00e9t\u00e9.png") == f"{tmp_path}/caf\u00e9/e\u0301te\u0301.png"
    assert _on_disk(tmp_path, "caf\u00e9/missing-\u00e9.png") == "caf\u00e9/missing-\u00e9.png"  # not found: as given


def test_a_folder_of_nfd_names_is_listed_once_per_plan_not_once_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file whose NFC spelling did not open listed its whole folder again: a folder of 5,000 images copied from
    macOS (names in NFD) and a CSV naming them in NFC took 20 s to plan, 100,000 would take hours (each listing
    normalised again). A folder is listed once per plan; each file is still found by its own name."""
    import unicodedata

    (tmp_path / "frames").mkdir()
    rows = ["image,prompt_text"]
    for n in range(40):
        (tmp_path / "frames" / unicodedata.normalize("NFD", f"caf\u00e9-{n}.png")).write_bytes(make_png(640, 360, seed=n))
        rows.append(f"frames/caf\u00e9-{n}.png,a")
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(str(path)) or real(path))
    jobs = plan(tmp_path, f"name: c\nmodel: {I2V}\nprompt: '{{prompt_text}}'\nmatrix: {{rows: {{file: rows.csv}}}}\n")
    assert sorted(job.request["image"]["file"] for job in jobs) == sorted(
        unicodedata.normalize("NFD", f"frames/caf\u00e9-{n}.png") for n in range(40))
    assert listed.count(str(tmp_path / "frames")) == 1, listed


@pytest.mark.parametrize("where", ["defaults", "include", "rows"])
def test_a_data_uri_in_a_manifest_is_refused_for_a_file_that_sends_the_same(tmp_path: Path, where: str) -> None:
    """A ``data:`` URI typed in a manifest would be stored whole in every job's ledger row (a 10 MB image: 13 MB a
    row, twice with its variable) and sent outside the inline-memory cap: refused at its line, saying to name a
    file — which is sent as that same URI, read at submit time (docs/manifest.md, "Inputs")."""
    image = make_png(640, 360, seed=3)
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    entry = f'{{image: "{uri}", scene: a}}'
    text = {
        "defaults": f'name: u\nmodel: {I2V}\nprompt: "slow zoom"\ndefaults: {{image: "{uri}"}}\n',
        "include": f'name: u\nmodel: {I2V}\nprompt: "{{scene}}"\nmatrix:\n  include:\n    - {entry}\noutput: "{{scene}}.mp4"\n',
        "rows": f'name: u\nmodel: {I2V}\nprompt: "{{scene}}"\nmatrix:\n  rows:\n    - {entry}\noutput: "{{scene}}.mp4"\n',
    }[where]
    error = refused(tmp_path, text)
    assert error.rule == "input-file", str(error)
    assert "image: a data: URI" in str(error) and "Write the image to a file next to the manifest" in str(error)
    assert error.line is not None and uri not in str(error)  # said in a line, not 470 KB of base64
    # What the message asks for sends the very same string, built from the file at submit time.
    (tmp_path / "a.png").write_bytes(image)
    (job,) = plan(tmp_path, text.replace(uri, "a.png"))
    assert "base64" not in str(job.request)
    ref = LocalFile.model_validate(job.request["image"])
    assert load_manifest(tmp_path / "m.yaml").input_resolver().wire_value(ref) == uri
