"""The Kling v3.0 family: each endpoint's own rules, prices and media inputs, enforced before any spend.

The contract suite (tests/contract/test_endpoint_specs.py) runs every spec's documented examples;
these tests pin the per-endpoint differences issue 11 names and the decisions of docs/provider.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from runner import endpoints
from runner.endpoints import PriceUnknown
from runner.endpoints.kling import data_uri
from runner.endpoints.kling_motion import MODEL_TIERS, output_seconds
from runner.endpoints.media import InputNeedsUrl, LocalFile
from runner.pricing import Price
from runner.testing import make_jpeg, make_mp4, make_png

URL = "https://example.com/a.png"
VIDEO_URL = "https://example.com/moves.mp4"
T2V = ("kling-v3.0-std-t2v", "kling-v3.0-pro-t2v", "kling-v3.0-4k-t2v")
I2V = ("kling-v3.0-std-i2v", "kling-v3.0-pro-i2v", "kling-v3.0-4k-i2v")
MOTION = "kling-v3.0-motion-control"


def _ref(data: bytes, file: str = "in/a.png", kind: str = "image", mime: str = "image/png", **extra: Any) -> dict[str, Any]:
    return {"file": file, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": kind, "mime": mime,
            **extra}


def refused(slug: str, fields: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        endpoints.get(slug).request_body(fields)
    return str(info.value)


class _Resolver:
    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url

    def wire_value(self, ref: LocalFile) -> str:
        if self.base_url is not None:
            return self.base_url + ref.file
        return f"data:{ref.mime};base64,QUJD"


def test_every_family_member_is_registered() -> None:
    assert set(endpoints.slugs()) == {*T2V, *I2V, MOTION}


@pytest.mark.parametrize(
    ("slug", "price"),
    [
        ("kling-v3.0-std-t2v", Price(0.084, 0.126)),
        ("kling-v3.0-std-i2v", Price(0.084, 0.126)),
        ("kling-v3.0-pro-t2v", Price(0.112, 0.168)),
        ("kling-v3.0-pro-i2v", Price(0.112, 0.168)),
    ],
)
def test_std_and_pro_are_priced_from_the_published_table(slug: str, price: Price) -> None:
    spec = endpoints.get(slug)
    assert spec.price() == price
    fields: dict[str, Any] = {"prompt": "p", "duration": 10}
    if slug.endswith("i2v"):
        fields["image"] = URL
    assert spec.estimate_usd(spec.request_body(fields), spec.price()) == pytest.approx(10 * price.per_second)
    loud = spec.request_body({**fields, "sound": True})
    assert spec.estimate_usd(loud, spec.price()) == pytest.approx(10 * price.per_second_sound)


@pytest.mark.parametrize("slug", ["kling-v3.0-4k-t2v", "kling-v3.0-4k-i2v", MOTION])
def test_4k_and_motion_control_have_no_known_price(slug: str) -> None:
    with pytest.raises(PriceUnknown, match=f"no price known for model '{slug}'"):
        endpoints.get(slug).price()


@pytest.mark.parametrize("slug", ["kling-v3.0-std-t2v", "kling-v3.0-4k-t2v"])
def test_std_and_4k_text_to_video_take_no_multi_prompt(slug: str) -> None:
    assert "multi_prompt" in refused(slug, {"multi_prompt": [{"prompt": "a", "duration": 5}]})
    assert endpoints.get(slug).templating.shots is None


def test_4k_fills_no_cfg_scale_default_but_takes_one() -> None:
    for slug in ("kling-v3.0-4k-t2v", "kling-v3.0-4k-i2v"):
        fields: dict[str, Any] = {"prompt": "p"} | ({"image": URL} if "i2v" in slug else {})
        assert "cfg_scale" not in endpoints.get(slug).request_body(fields)
        assert endpoints.get(slug).request_body({**fields, "cfg_scale": 0.3})["cfg_scale"] == 0.3
    assert endpoints.get("kling-v3.0-std-t2v").request_body({"prompt": "p"})["cfg_scale"] == 0.5


@pytest.mark.parametrize("slug", I2V)
def test_image_to_video_refuses_aspect_ratio_and_needs_an_image(slug: str) -> None:
    assert "aspect_ratio" in refused(slug, {"image": URL, "prompt": "p", "aspect_ratio": "16:9"})
    assert "image" in refused(slug, {"prompt": "p"})


@pytest.mark.parametrize("slug", I2V)
def test_end_image_excludes_multi_prompt(slug: str) -> None:
    message = refused(slug, {"image": URL, "end_image": URL, "multi_prompt": [{"prompt": "a", "duration": 5}]})
    assert "end_image and multi_prompt are mutually exclusive" in message
    assert endpoints.get(slug).request_body({"image": URL, "end_image": URL, "prompt": "p"})["end_image"] == URL


@pytest.mark.parametrize("slug", I2V)
def test_image_shots_add_up_to_duration_and_last_three_seconds_at_least(slug: str) -> None:
    assert "sum to 5 s but duration is 7 s" in refused(
        slug, {"image": URL, "duration": 7, "multi_prompt": [{"prompt": "a", "duration": 5}]}
    )
    assert "greater than or equal to 3" in refused(
        slug, {"image": URL, "duration": 5, "multi_prompt": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 3}]}
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("http://example.com/a.png", "plain http:// is refused"),
        ("ftp://example.com/a.png", "an image input must be an https:// URL or a data:image"),
        (data_uri(make_png(299, 300), "image/png"), "both sides must be at least 300 px"),
        (data_uri(make_png(300, 751), "image/png"), "between 1:2.5 and 2.5:1"),
        (data_uri(make_jpeg(640, 360), "image/png"), "says image/png but holds a jpeg"),
        (data_uri(make_mp4(), "video/mp4"), "takes image/jpeg, image/jpg, image/png"),
        ("data:image/png;base64,!!", "not a base64 data: URI"),
    ],
)
def test_an_image_string_is_an_https_url_or_a_checked_data_uri(value: str, words: str) -> None:
    assert words in refused("kling-v3.0-std-i2v", {"image": value, "prompt": "p"})


def test_a_local_image_is_kept_by_reference_and_keyed_by_content() -> None:
    spec = endpoints.get("kling-v3.0-pro-i2v")
    png = make_png(640, 360)
    stored = spec.request_body({"image": _ref(png), "prompt": "p"})
    assert stored["image"]["file"] == "in/a.png"
    moved = spec.request_body({"image": _ref(png, file="elsewhere/b.png"), "prompt": "p"})
    assert spec.identity_body(stored) == spec.identity_body(moved)
    assert spec.identity_body(stored)["image"] == {"sha256": hashlib.sha256(png).hexdigest()}
    assert spec.wire_body(stored, _Resolver())["image"] == "data:image/png;base64,QUJD"
    spec.check_wire(spec.wire_body(stored, _Resolver("https://cdn.example.com/")))


def test_a_local_file_of_the_wrong_kind_is_refused() -> None:
    video = _ref(make_mp4(), file="clip.mp4", kind="video", mime="video/mp4")
    assert "clip.mp4 is a video file; this input takes an image" in refused(
        "kling-v3.0-std-i2v", {"image": video, "prompt": "p"}
    )


def test_the_wire_takes_no_local_reference() -> None:
    with pytest.raises(ValidationError):
        endpoints.get("kling-v3.0-std-i2v").check_wire({"image": _ref(make_png()), "prompt": "p"})


def test_motion_control_needs_image_video_and_model_name() -> None:
    for missing in ("image", "video", "model_name"):
        fields = {"image": URL, "video": VIDEO_URL, "model_name": "kling-v3-0-std"}
        del fields[missing]
        assert missing in refused(MOTION, fields)
    for field in ("duration", "cfg_scale", "sound", "multi_prompt", "aspect_ratio"):
        assert field in refused(MOTION, {"image": URL, "video": VIDEO_URL, "model_name": "kling-v3-0-std", field: 5})


def test_motion_control_takes_its_video_as_a_url_only() -> None:
    video = make_mp4(640, 360, 12.3)
    assert "takes an https:// URL only" in refused(
        MOTION, {"image": URL, "video": data_uri(video, "video/mp4"), "model_name": "kling-v3-0-std"}
    )
    spec = endpoints.get(MOTION)
    ref = _ref(video, file="moves/salsa.mp4", kind="video", mime="video/mp4", duration=12.3)
    stored = spec.request_body({"image": URL, "video": ref, "model_name": "kling-v3-0-std"})
    with pytest.raises(InputNeedsUrl, match=r"moves/salsa\.mp4 would be sent inline; .*inputs: base_url"):
        spec.wire_body(stored, _Resolver())
    wire = spec.wire_body(stored, _Resolver("https://cdn.example.com/"))
    assert wire["video"] == "https://cdn.example.com/moves/salsa.mp4"
    spec.check_wire(wire)


def test_motion_control_estimates_its_output_length_and_tier() -> None:
    spec = endpoints.get(MOTION)
    price = Price(per_second=0.126, per_second_sound=0.2)
    base = {"image": URL, "model_name": "kling-v3-0-std"}
    local = _ref(make_mp4(seconds=12.3), file="m.mp4", kind="video", mime="video/mp4", duration=12.3)
    cases = [
        ({**base, "video": VIDEO_URL, "character_orientation": "image"}, 5),
        ({**base, "video": VIDEO_URL, "character_orientation": "video"}, 30),  # a URL: the safe maximum
        ({**base, "video": VIDEO_URL}, 30),  # orientation unset: the longer output
        ({**base, "video": local, "character_orientation": "video"}, 13),
        ({**base, "video": {**local, "duration": None}}, 30),
    ]
    for fields, seconds in cases:
        request = spec.request_body(fields)
        assert output_seconds(request) == seconds, fields
        assert spec.estimate_usd(request, price) == pytest.approx(seconds * 0.126)
    pro = spec.request_body({**base, "model_name": "kling-v3-0-pro", "video": VIDEO_URL, "character_orientation": "image"})
    assert spec.estimate_usd(pro, price) == pytest.approx(5 * 0.126 * MODEL_TIERS["kling-v3-0-pro"])
    assert spec.estimate_usd(pro, price) == pytest.approx(5 * 0.168)
