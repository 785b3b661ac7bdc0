"""The manifest's keys read in plain Python (issue 14: start-up) are what the pydantic models read.

:func:`runner.manifest.schema.parse_spec` reads a plain manifest without pydantic and gives anything else
to :mod:`runner.manifest.spec_models`. For many generated manifests, whatever the plain reading accepts
must be, value for value and type for type, what the models give; the rest gets the models' answer.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from runner.errors import ManifestError
from runner.manifest import schema
from runner.manifest.loader import LineMap
from runner.manifest.models import _plain_price, _price
from runner.manifest.spec_models import PricingSpec, validate_spec

LINES = LineMap("m.yaml")

VALUES: dict[str, list[Any]] = {
    "name": ["demo", "a.b-c_1", ".x", "-x", "x" * 100, "x" * 101, "d\u00e9mo", "x\n", 5, None],
    "model": ["kling-v3.0-std-t2v", "nope", 1, None],
    "defaults": [{}, {"duration": 5}, {1: 2}, [], None],
    "prompt": ["a {x}", "", None, 3, "\ud800"],
    "multi_prompt": [None, [{"prompt": "a", "duration": 5}], [{"prompt": "a", "duration": "{d}", "index": 0}],
                     [{"prompt": "a"}], [{"prompt": "a", "duration": 5.0}], [{"prompt": "a", "duration": True}],
                     [{"prompt": "a", "duration": 5, "extra": 1}], "a", []],
    "matrix": [None, {"x": [1, 2]}, {1: [1]}, []],
    "repeats": [1, 3, 0, -1, 2.0, "2", True],
    "output": ["{key}.mp4", "", 5, None],
    "limits": [{}, {"concurrency": 8}, {"rpm": None}, {"rpm": "none"}, {"poll_rpm": 30}, {"poll_interval": 5},
               {"budget_usd": 9.5}, {"budget_usd": 0}, {"downloads": 2}, {"downloads": "off"}, {"concurrency": 0},
               {"concurrency": 2.5}, {"concurrency": "4"}, {"concurrency": True}, {"rpm": float("inf")},
               {"nope": 1}, None, [], {"concurrency": None}],
    "salt": ["s", None, 1],
    "pricing": [None, {"per_second": 0.1}, {1: 2}, []],
    "inputs": [{}, {"base_url": "https://cdn.example.com/x/"}, {"base_url": "http://x"},
               {"base_url": "https://a b"}, {"base_url": None}, {"nope": 1}, None],
    "max_jobs": [1, 10, 0, 10.0, 10_000_000, 10_000_001],
    "in_doubt": ["hold", "resubmit", " Resubmit ", "maybe", None, 1],
    "retries": [0, 2, -1, "1"],
    "nope": [1],
}


def _models(data: dict[str, Any]) -> tuple[Any, ...] | str:
    try:
        spec = schema._from_model(validate_spec(data, LINES))
    except ManifestError as exc:
        return str(exc)
    return _values(spec)


def _values(spec: schema.Spec) -> tuple[Any, ...]:
    flat = tuple(spec)
    shots = None if spec.multi_prompt is None else [(type(s.duration), type(s.index)) for s in spec.multi_prompt]
    return (flat, [type(v) for v in flat], spec.limits.given, spec.limits.said(), repr(spec.limits), shots)


def test_what_the_plain_reading_accepts_is_what_the_models_read() -> None:
    rng = random.Random(14)
    names = list(VALUES)
    vouched = 0
    for index in range(4000):
        chosen = {"name"} | set(rng.sample(names, rng.randint(0, len(names))))
        data = {name: rng.choice(VALUES[name]) for name in chosen}
        if index % 2:  # half of them valid but for one key
            data = {"name": "demo", **{k: v for k, v in data.items() if k in ("limits", "in_doubt", "inputs")}}
        plain = schema._plain(data)
        if plain is None:
            continue
        vouched += 1
        assert _values(plain) == _models(data), data
    assert vouched > 200


@pytest.mark.parametrize("name", schema.Spec._fields)
def test_each_key_of_a_plain_manifest_is_read_in_plain(name: str) -> None:
    """Every key has a usual value that the plain reading vouches for (pydantic is not needed for it)."""
    usual = {name: VALUES[name][0 if name != "multi_prompt" else 1]}
    data = {"name": "demo", **usual}
    plain = schema._plain(data)
    assert plain is not None and _values(plain) == _models(data)


def test_a_price_read_in_plain_is_the_models() -> None:
    for raw in ({"per_second": 0.1}, {"per_second": 1}, {"per_second": 0, "per_second_sound": 2},
                {"per_second": 0.1, "per_second_sound": None}, {"per_second": -1}, {"per_second": "1"},
                {"per_second": True}, {"per_second_sound": 1}, {"per_second": 1, "x": 2}, {"per_second": float("nan")},
                {"per_second": float("inf")}):
        plain = _plain_price(raw)
        try:
            spec = PricingSpec.model_validate(raw)
        except ValidationError:
            assert plain is None, raw
            continue
        if plain is not None:
            sound = spec.per_second * 1.5 if spec.per_second_sound is None else spec.per_second_sound
            assert (plain.per_second, plain.per_second_sound) == (spec.per_second, sound), raw
            assert (type(plain.per_second), type(plain.per_second_sound)) == (type(spec.per_second), type(sound))
            assert _price(raw, "pricing", LINES, "pricing") == plain
