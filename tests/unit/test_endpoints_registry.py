"""A newly registered endpoint is planned through its own spec: fields, templating, price, errors.

The endpoint here is a stand-in registered for the test (a text-to-video tier without
``multi_prompt`` and with its own price), the way one module + one registration adds one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import ConfigDict, Field

from runner import endpoints
from runner.endpoints import JsonEndpoint, Templating, api
from runner.endpoints.kling_t2v import PRO_T2V, KlingV3ProT2V
from runner.errors import ManifestError
from runner.manifest import expand, load_manifest
from runner.pricing import Price

SLUG = "test-v1-std-t2v"


class StdT2V(KlingV3ProT2V):
    """Pro T2V without multi_prompt (prompt required)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=2500)  # type: ignore[assignment]
    multi_prompt: None = Field(default=None, exclude=True)  # type: ignore[assignment]


@pytest.fixture
def std(monkeypatch: pytest.MonkeyPatch) -> JsonEndpoint:
    spec = dataclasses.replace(
        PRO_T2V,
        slug=SLUG,
        request_model=StdT2V,
        templating=Templating(prompt="prompt", texts=("negative_prompt",)),
        default_price=Price(per_second=0.084, per_second_sound=0.126),
    )
    monkeypatch.setitem(api._SPECS, SLUG, spec)
    return spec


def plan(tmp_path: Path, text: str) -> list[Any]:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return list(expand(load_manifest(path)))


def test_a_registered_endpoint_is_planned_with_its_price_and_its_own_keys(tmp_path: Path, std: JsonEndpoint) -> None:
    text = 'name: t\nmodel: {model}\nprompt: "a {{animal}}"\ndefaults: {{negative_prompt: "no {{animal}}"}}\n' \
           "matrix: {{animal: [owl], sound: [false, true]}}\n"
    jobs = plan(tmp_path, text.format(model=SLUG))
    assert [job.estimated_usd for job in jobs] == [pytest.approx(0.42), pytest.approx(0.63)]
    assert jobs[0].request["negative_prompt"] == "no owl"
    pro = plan(tmp_path, text.format(model=PRO_T2V.slug))
    assert [job.request for job in jobs] == [job.request for job in pro]
    assert not {job.key for job in jobs} & {job.key for job in pro}, "the endpoint is part of the key"


def test_a_template_the_endpoint_does_not_take_is_refused_at_load(tmp_path: Path, std: JsonEndpoint) -> None:
    with pytest.raises(ManifestError) as info:
        plan(tmp_path, f"name: t\nmodel: {SLUG}\nmulti_prompt:\n  - {{prompt: a, duration: 5}}\n")
    assert f"{SLUG} takes no multi_prompt" in str(info.value)
    assert info.value.line == 3


def test_an_endpoint_without_a_price_is_planned_unpriced_unless_the_manifest_prices_it(
    tmp_path: Path, std: JsonEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: a model without a known price plans (estimate 0, said to be unpriced); pricing: prices it."""
    monkeypatch.setitem(api._SPECS, SLUG, dataclasses.replace(std, default_price=None))
    (job,) = plan(tmp_path, f"name: t\nmodel: {SLUG}\nprompt: a\n")
    assert job.estimated_usd == 0.0
    assert load_manifest(tmp_path / "m.yaml").unpriced_models() == (SLUG,)
    (job,) = plan(tmp_path, f"name: t\nmodel: {SLUG}\nprompt: a\npricing: {{per_second: 1}}\n")
    assert job.estimated_usd == pytest.approx(5.0)
    assert load_manifest(tmp_path / "m.yaml").unpriced_models() == ()


def test_an_unknown_model_names_every_registered_one(tmp_path: Path, std: JsonEndpoint) -> None:
    with pytest.raises(ManifestError) as info:
        plan(tmp_path, "name: t\nmodel: test-v1-std-t2w\nprompt: a\n")
    message = str(info.value)
    assert f"did you mean '{SLUG}'" in message
    for slug in endpoints.slugs():
        assert slug in message
