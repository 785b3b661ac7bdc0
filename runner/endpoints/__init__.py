"""The endpoints runner speaks, one module per endpoint family, behind one registry.

``get(slug)`` returns an :class:`EndpointSpec` (request model, templating, price rule, identity
and wire bodies, media check, the simulator's validation); ``all_specs()`` lists them. To add an
endpoint, write its module and register its spec below; the contract suite
(``tests/contract/test_endpoint_specs.py``) runs on every registered spec.
"""

from __future__ import annotations

from runner.endpoints import kling_i2v, kling_motion, kling_t2v
from runner.endpoints.api import (
    EndpointSpec,
    JsonEndpoint,
    PriceUnknown,
    Templating,
    UnknownEndpoint,
    all_specs,
    get,
    register,
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
    "slugs",
]

register(kling_t2v.STD_T2V)
register(kling_t2v.PRO_T2V)
register(kling_t2v.FOURK_T2V)
register(kling_i2v.STD_I2V)
register(kling_i2v.PRO_I2V)
register(kling_i2v.FOURK_I2V)
register(kling_motion.MOTION_CONTROL)
