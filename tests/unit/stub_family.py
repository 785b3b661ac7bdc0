"""Stand-ins for Kling v3.0 family endpoints, registered only by the tests that use them.

The manifest side of issue 11 (model as a variable, local inputs, per-model prices) is tested
against these, so it does not depend on the real endpoint modules: a Std text-to-video tier with
its own price, a 4K tier without one, and an image-to-video endpoint with ``image``/``end_image``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runner.endpoints import JsonEndpoint, Templating, api
from runner.endpoints.api import Examples
from runner.endpoints.kling_t2v import PRO_T2V, KlingV3ProT2V
from runner.endpoints.media import LocalFile
from runner.pricing import Price

STD, FOURK, I2V = "test-std-t2v", "test-4k-t2v", "test-pro-i2v"


class StdT2V(KlingV3ProT2V):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=2500)  # type: ignore[assignment]
    multi_prompt: None = Field(default=None, exclude=True)  # type: ignore[assignment]


class ProI2V(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, max_length=2500)
    negative_prompt: str | None = Field(default=None, max_length=2500)
    image: str | LocalFile
    end_image: str | LocalFile | None = None
    duration: int = Field(default=5, ge=3, le=15)
    cfg_scale: float = Field(default=0.5, ge=0, le=1)
    sound: bool = False


TEXT = Templating(prompt="prompt", texts=("negative_prompt",))

SPECS = {
    STD: dataclasses.replace(PRO_T2V, slug=STD, request_model=StdT2V, templating=TEXT,
                             default_price=Price(per_second=0.084, per_second_sound=0.126)),
    FOURK: dataclasses.replace(PRO_T2V, slug=FOURK, request_model=StdT2V, templating=TEXT, default_price=None),
    I2V: JsonEndpoint(slug=I2V, request_model=ProI2V, templating=TEXT,
                      default_price=Price(per_second=0.112, per_second_sound=0.168),
                      examples=Examples(valid=({"image": "https://x/a.png"},), invalid=({},)),
                      media_fields={"image": "image", "end_image": "image"}),
}


@pytest.fixture
def family(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, JsonEndpoint]]:
    """Register the stand-ins for one test."""
    for slug, spec in SPECS.items():
        monkeypatch.setitem(api._SPECS, slug, spec)
    yield SPECS
