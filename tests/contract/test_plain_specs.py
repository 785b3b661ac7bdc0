"""Each plain spec (runner.endpoints.plain, issue 14: start-up) is its full spec, told without pydantic.

Its light parts equal the full spec's, and whatever body its plain rules give for a request is the request
model's body for it, field for field, type for type and in the same order (the stored request, and so the
job key, cannot change); what the plain rules do not vouch for goes to the model, which words the error.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from pydantic import ValidationError

from runner import endpoints
from runner.endpoints import JsonEndpoint
from runner.endpoints.plain import PlainSpec, field_names
from runner.manifest.bodies import _free_texts

SLUGS = [slug for slug in endpoints.slugs() if slug.endswith("-t2v")]

VALUES: dict[str, list[Any]] = {
    "prompt": ["a fox", "", " ", "x" * 2500, "x" * 2501, "caf\u00e9", "\ud800", None, 5, b"a"],
    "negative_prompt": ["blur", "", "x" * 2501, None, 1.5],
    "multi_prompt": [None, [{"prompt": "a", "duration": 5}], [], "a"],
    "duration": [5, 3, 15, 2, 16, 10.0, 5.5, True, None, -1, 10**30,
                 "5", "10", "15", "16", "2", "05", " 5", "5 ", "+5", "5.0", "1_0", "", "\u0665", "0", "1e1"],
    "cfg_scale": [0.5, 0, 1, 1.0, 0.0, 1.01, -0.1, True, None, float("nan"), float("inf"), 10**400,
                  "0.5", "0.3", "1", "0", "1.0", "1.01", ".5", "0.50", "1e-1", " 0.5", "0,5", "0.333333333", "-0"],
    "aspect_ratio": ["16:9", "9:16", "1:1", "4:3", " 16:9", None, 1],
    "sound": [True, False, 1, 0, None, "true", "false", "True", "TRUE", "1", "yes", "off", ""],
    "seed": [1],
}


def _model_body(spec: Any, fields: dict[str, Any]) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = spec.request_body(fields)
    except ValidationError:
        return None
    return body


def _requests(slug: str) -> list[dict[str, Any]]:
    rng = random.Random(slug)
    names = list(VALUES)
    out: list[dict[str, Any]] = [dict(example) for example in
                                 (*endpoints.get(slug).examples.valid, *endpoints.get(slug).examples.invalid)]
    out += [{"prompt": "p", name: value} for name in names for value in VALUES[name]]
    for _ in range(3000):
        chosen = rng.sample(names, rng.randint(0, len(names)))
        out.append({name: rng.choice(VALUES[name]) for name in chosen})
    return out


@pytest.mark.parametrize("slug", SLUGS)
def test_the_light_parts_are_the_full_specs(slug: str) -> None:
    plain = endpoints.get(slug)
    assert isinstance(plain, PlainSpec)
    full = plain.full
    assert isinstance(full, JsonEndpoint) and plain is not full
    assert (plain.slug, plain.templating, plain.default_price, plain.output_extension) == (
        full.slug, full.templating, full.default_price, full.output_extension)
    assert dict(plain.media_fields) == dict(full.media_fields) == {} and plain.url_only == full.url_only
    assert field_names(plain) == field_names(full) == tuple(full.request_model.model_fields)
    assert plain.text_alone == full.request_model.TEXT_ALONE  # type: ignore[attr-defined]
    assert _free_texts(plain) == _free_texts(full)
    # what the plain spec does itself, the full spec does not override
    for name in ("identity_body", "estimate_usd", "price", "request_body", "wire_body", "check_media"):
        assert getattr(type(full), name) is getattr(JsonEndpoint, name), name
    assert plain.request_model is full.request_model and plain.examples is full.examples
    request = full.request_body({"prompt": "a fox", "sound": True})
    assert plain.wire_body(request) == full.wire_body(request) and plain.wire_body(request) is not request
    assert plain.identity_body(request) == full.identity_body(request)
    for head in (b"\0\0\0\x18ftypmp42", b"<html><body>", b""):
        assert plain.check_media(head) == full.check_media(head)


@pytest.mark.parametrize("slug", SLUGS)
def test_a_plain_body_is_the_models_body(slug: str) -> None:
    plain = endpoints.get(slug)
    assert isinstance(plain, PlainSpec)
    full = plain.full
    assert isinstance(plain, PlainSpec)
    vouched = 0
    for fields in _requests(slug):
        body = plain.plain_body(fields)
        model = _model_body(full, fields)
        if body is None:
            # the plain spec passes the request on: the model's body or the model's error
            assert _model_body(plain, fields) == model if model is not None else _model_body(plain, fields) is None
            continue
        vouched += 1
        assert model is not None, fields
        assert list(body.items()) == list(model.items()), fields
        assert [type(v) for v in body.values()] == [type(v) for v in model.values()], fields
    assert vouched > 20  # the plain rules do vouch for requests (of random ones, few are valid)


@pytest.mark.parametrize("slug", SLUGS)
def test_the_usual_requests_are_vouched_for(slug: str) -> None:
    plain = endpoints.get(slug)
    assert isinstance(plain, PlainSpec)
    for fields in itertools.product(["a fox"], [5, 10], [0.5, 0.3, 1], ["16:9", "1:1"], [False, True]):
        request = dict(zip(("prompt", "duration", "cfg_scale", "aspect_ratio", "sound"), fields, strict=True))
        assert plain.plain_body({**request, "negative_prompt": "blur"}) is not None, request
    # as a CSV cell gives them (bench/gen_manifest.py's rows: duration "10")
    assert plain.plain_body({"prompt": "a", "duration": "10", "cfg_scale": "0.5", "sound": "true"}) == {
        "prompt": "a", "duration": 10, **({"cfg_scale": 0.5}), "aspect_ratio": "16:9", "sound": True}
