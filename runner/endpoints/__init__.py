"""The endpoints runner speaks, one module per endpoint family, behind one registry.

``get(slug)`` returns an :class:`EndpointSpec` (request model, templating, price rule, identity
and wire bodies, media check, the simulator's validation); ``all_specs()`` lists them. To add an
endpoint, write its module and name its spec in ``FAMILIES`` below (built on first use); the contract suite
(``tests/contract/test_endpoint_specs.py``) runs on every registered spec.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from runner.endpoints.api import (
    EndpointSpec,
    JsonEndpoint,
    PriceUnknown,
    Templating,
    UnknownEndpoint,
    all_specs,
    get,
    register,
    register_lazy,
    slugs,
)

__all__ = [
    "EndpointSpec",
    "JsonEndpoint",
    "PriceUnknown",
    "Templating",
    "UnknownEndpoint",
    "all_specs",
    "get",
    "register",
    "register_lazy",
    "slugs",
]

#: slug -> (module of runner.endpoints, name of its spec): a module is imported, and its pydantic
#: models built, only when a manifest (or the simulator) names one of its endpoints. The text-to-video
#: endpoints are plain specs (:mod:`runner.endpoints.plain`): planning and running their usual requests
#: builds no pydantic model at all; their full specs (``kling_t2v``) are built when a request needs the model.
FAMILIES = {
    "kling-v3.0-std-t2v": ("kling_plain", "STD_T2V"),
    "kling-v3.0-pro-t2v": ("kling_plain", "PRO_T2V"),
    "kling-v3.0-4k-t2v": ("kling_plain", "FOURK_T2V"),
    "kling-v3.0-std-i2v": ("kling_i2v", "STD_I2V"),
    "kling-v3.0-pro-i2v": ("kling_i2v", "PRO_I2V"),
    "kling-v3.0-4k-i2v": ("kling_i2v", "FOURK_I2V"),
    "kling-v3.0-motion-control": ("kling_motion", "MOTION_CONTROL"),
}


def _loader(module: str, name: str) -> Callable[[], EndpointSpec]:
    def load() -> EndpointSpec:
        spec: EndpointSpec = getattr(importlib.import_module(f"runner.endpoints.{module}"), name)
        return spec

    return load


for _slug, (_module, _name) in FAMILIES.items():
    register_lazy(_slug, _loader(_module, _name))
