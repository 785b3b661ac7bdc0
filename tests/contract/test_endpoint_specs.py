"""The contract every endpoint spec must keep; parametrized over every registered spec.

A new endpoint (one module + its registration in ``runner/endpoints/__init__.py``) runs through
this suite with nothing added here: the bodies come from the spec's own ``examples`` and from
mutations of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from runner import endpoints
from runner.endpoints import EndpointSpec, PriceUnknown, UnknownEndpoint
from runner.jobs import canonical_json, job_key
from runner.pricing import Price
from runner.simulator import SimConfig, Simulator, sim_transport
from runner.simulator.media import base_video

SPECS = endpoints.all_specs()
FALLBACK_PRICE = Price(per_second=0.1, per_second_sound=0.15)  # for specs without a known price


@pytest.fixture(params=SPECS, ids=[spec.slug for spec in SPECS])
def spec(request: pytest.FixtureRequest) -> EndpointSpec:
    found: EndpointSpec = request.param
    return found


def accepts(spec: EndpointSpec, fields: Mapping[str, Any]) -> bool:
    try:
        spec.request_body(fields)
    except ValidationError:
        return False
    return True


def reordered(value: Any) -> Any:
    """``value`` with every mapping's keys in reverse order (same content)."""
    if isinstance(value, Mapping):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``list[Shot] | None`` → ``[Shot]``), nested ones too."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return nested_models(annotation)
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(model for model in models_in(arg) if model not in found)
    return found


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every pydantic model its fields hold."""
    found: list[type[BaseModel]] = [model]
    for info in model.model_fields.values():
        found.extend(inner for inner in models_in(info.annotation) if inner not in found)
    return found


# ------------------------------------------------------------------ registry


def test_registry_returns_each_spec_by_its_slug(spec: EndpointSpec) -> None:
    assert endpoints.get(spec.slug) is spec
    assert endpoints.slugs().count(spec.slug) == 1


def test_unknown_slug_is_refused_naming_every_known_slug() -> None:
    with pytest.raises(UnknownEndpoint) as info:
        endpoints.get("kling-v9-ultra")
    message = str(info.value)
    assert "'kling-v9-ultra'" in message
    for slug in endpoints.slugs():
        assert slug in message


def test_unknown_slug_close_to_a_known_one_suggests_it(spec: EndpointSpec) -> None:
    with pytest.raises(UnknownEndpoint, match="did you mean"):
        endpoints.get(spec.slug + "x")


def test_a_slug_cannot_be_registered_twice(spec: EndpointSpec) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        endpoints.register(spec)


# ------------------------------------------------------------------ request


def test_examples_cover_both_verdicts_and_are_judged_as_documented(spec: EndpointSpec) -> None:
    assert spec.examples.valid and spec.examples.invalid
    for fields in spec.examples.valid:
        assert accepts(spec, fields), fields
    for fields in spec.examples.invalid:
        assert not accepts(spec, fields), fields


def test_templated_fields_are_request_fields_of_the_documented_shape(spec: EndpointSpec) -> None:
    fields = spec.request_model.model_fields
    templating = spec.templating
    for name in (templating.prompt, *templating.texts):
        if name is not None:
            assert name in fields, name
    assert not set(templating.texts) & templating.top_level
    if templating.shots is not None:
        assert templating.shots in fields
        items = models_in(fields[templating.shots].annotation)
        assert items and {"prompt", "duration"} <= set(items[0].model_fields), (
            f"{templating.shots} items must take prompt and duration"
        )


def test_request_models_forbid_unknown_fields_at_every_level(spec: EndpointSpec) -> None:
    for model in {*nested_models(spec.request_model), *nested_models(spec.wire_model)}:
        assert model.model_config.get("extra") == "forbid", model.__name__
    for fields in spec.examples.valid:
        assert not accepts(spec, {**fields, "no_such_field": 1})


def test_defaults_are_filled(spec: EndpointSpec) -> None:
    defaults = {
        name: info.default
        for name, info in spec.request_model.model_fields.items()
        if not info.is_required() and info.default is not None
    }
    for fields in spec.examples.valid:
        request = spec.request_body(fields)
        for name, default in defaults.items():
            assert name in request, name
            if name not in fields:
                assert request[name] == default, name
        # dropping a field that has a default gives that default (when still valid)
        for name, default in defaults.items():
            trimmed = {key: value for key, value in fields.items() if key != name}
            if accepts(spec, trimmed):
                assert spec.request_body(trimmed)[name] == default


def test_stored_request_revalidates_to_itself(spec: EndpointSpec) -> None:
    """The ledger keeps the stored request; read back it must be the same valid request."""
    for fields in spec.examples.valid:
        request = spec.request_body(fields)
        stored = json.loads(canonical_json(request))
        assert spec.request_body(stored) == request


# ------------------------------------------------------------------ identity and wire


def test_identity_body_is_stable_under_key_order(spec: EndpointSpec) -> None:
    for fields in spec.examples.valid:
        forward = spec.identity_body(spec.request_body(fields))
        backward = spec.identity_body(spec.request_body(reordered(fields)))
        assert canonical_json(forward) == canonical_json(backward)
        assert job_key(spec.slug, forward, 1) == job_key(spec.slug, backward, 1)
        # and under the order of the stored request itself
        assert canonical_json(spec.identity_body(reordered(spec.request_body(fields)))) == canonical_json(forward)


def test_identity_body_is_plain_json_without_nulls(spec: EndpointSpec) -> None:
    def no_null(value: Any) -> bool:
        if isinstance(value, Mapping):
            return all(item is not None and no_null(item) for item in value.values())
        if isinstance(value, list):
            return all(no_null(item) for item in value)
        return True

    for fields in spec.examples.valid:
        identity = spec.identity_body(spec.request_body(fields))
        assert json.loads(canonical_json(identity)) == identity
        assert no_null(identity)


def test_wire_body_carries_every_identity_field_and_passes_the_wire_check(spec: EndpointSpec) -> None:
    for fields in spec.examples.valid:
        request = spec.request_body(fields)
        before = canonical_json(request)
        identity = spec.identity_body(request)
        wire = spec.wire_body(request)
        assert set(identity) <= set(wire)
        spec.check_wire(wire)
        assert json.loads(json.dumps(wire)) == wire
        assert spec.wire_body(request) == wire, "the wire body is deterministic"
        assert canonical_json(request) == before, "building bodies does not change the stored request"


# ------------------------------------------------------------------ price


def test_price_is_the_override_or_the_default(spec: EndpointSpec) -> None:
    override = Price(per_second=1.0, per_second_sound=2.0)
    assert spec.price(override) == override
    if spec.default_price is None:
        with pytest.raises(PriceUnknown, match="pricing:"):
            spec.price()
    else:
        assert spec.price() == spec.default_price


def test_price_is_positive_and_monotone_in_duration(spec: EndpointSpec) -> None:
    price = spec.default_price or FALLBACK_PRICE
    for fields in spec.examples.valid:
        assert spec.estimate_usd(spec.request_body(fields), price) > 0
        if "duration" not in spec.request_model.model_fields or "duration" not in spec.request_body(fields):
            continue
        estimates = []
        for seconds in range(61):
            candidate = {**fields, "duration": seconds}
            if accepts(spec, candidate):
                estimates.append(spec.estimate_usd(spec.request_body(candidate), price))
        assert all(usd > 0 for usd in estimates)
        assert estimates == sorted(estimates)


def test_sound_costs_at_least_silence(spec: EndpointSpec) -> None:
    if "sound" not in spec.request_model.model_fields:
        pytest.skip("no sound tier")
    price = spec.default_price or FALLBACK_PRICE
    for fields in spec.examples.valid:
        silent, loud = {**fields, "sound": False}, {**fields, "sound": True}
        if accepts(spec, silent) and accepts(spec, loud):
            assert spec.estimate_usd(spec.request_body(loud), price) >= spec.estimate_usd(
                spec.request_body(silent), price
            )


# ------------------------------------------------------------------ media


def test_media_check_accepts_the_simulators_video_and_refuses_a_page(spec: EndpointSpec) -> None:
    assert spec.check_media(base_video()[:64]) is None
    problem = spec.check_media(b"<html><body>AccessDenied</body></html>")
    assert problem and "<html" in problem


# ------------------------------------------------------------------ the simulator agrees

# Values a field may be set to: boundaries, wrong types and every value the examples use.
_POOL: list[Any] = [
    None, True, False, -1, 0, 1, 2, 3, 5, 15, 16, 0.5, 1.01, 5.5, "", "x", "5", "x" * 2501,
    "16:9", "4:3", [], {}, {"a": 1}, [{"prompt": "a", "duration": 5}], [{"prompt": "a", "duration": 2}] * 2,
]


def _pool(spec: EndpointSpec) -> list[Any]:
    seen = list(_POOL)
    for fields in (*spec.examples.valid, *spec.examples.invalid):
        seen.extend(value for value in fields.values() if value not in seen)
    return seen


def _documented(spec: EndpointSpec, name: str) -> list[Any]:
    """The values the valid examples give ``name`` (plausible ones)."""
    return [fields[name] for fields in spec.examples.valid if name in fields]


def mutations(spec: EndpointSpec, seed: int, count: int) -> list[dict[str, Any]]:
    """Bodies one or two edits away from the spec's examples (set, drop or add a field)."""
    rng = random.Random(seed)
    names = [*spec.request_model.model_fields, "no_such_field"]
    pool = _pool(spec)
    bodies = []
    for _ in range(count):
        starts = spec.examples.valid if rng.random() < 0.8 else spec.examples.invalid
        body = dict(rng.choice(starts))
        for _ in range(rng.randint(1, 2)):
            name = rng.choice(names)
            plausible = _documented(spec, name)
            if name in body and rng.random() < 0.3:
                del body[name]
            elif plausible and rng.random() < 0.5:
                body[name] = rng.choice(plausible)
            else:
                body[name] = rng.choice(pool)
        bodies.append(body)
    return bodies


async def _simulator_verdicts(spec: EndpointSpec, bodies: list[Any]) -> list[int]:
    sim = Simulator(SimConfig(rpm=None, task_seconds=1.0))
    async with httpx.AsyncClient(
        transport=sim_transport(sim), base_url="http://sim.test", headers={"Authorization": "Bearer sk-test"}
    ) as http:
        statuses = []
        for body in bodies:
            response = await http.post(f"/v3/async/{spec.slug}", content=json.dumps(body).encode())
            if response.status_code not in (200, 400):
                raise AssertionError(f"{response.status_code} {response.text}")
            if response.status_code == 400:
                assert response.json()["reason"] == "INVALID_REQUEST_BODY"
            statuses.append(response.status_code)
        return statuses


def test_simulator_accepts_what_the_spec_accepts_and_refuses_what_it_refuses(spec: EndpointSpec) -> None:
    """Over the examples and a few hundred mutations of them: the wire body of every request the
    spec accepts is accepted by the simulator; every body the spec refuses is refused."""
    bodies = [*spec.examples.valid, *spec.examples.invalid, *mutations(spec, seed=10, count=300)]
    verdicts = [accepts(spec, body) for body in bodies]
    assert any(verdicts) and not all(verdicts), "the mutations must produce both verdicts"
    sent = [spec.wire_body(spec.request_body(body)) if ok else body for body, ok in zip(bodies, verdicts, strict=True)]
    statuses = anyio.run(_simulator_verdicts, spec, sent)
    disagreements = [
        (body, ok, status) for body, ok, status in zip(bodies, verdicts, statuses, strict=True) if ok != (status == 200)
    ]
    assert not disagreements, disagreements[:3]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wire_check_agrees_with_the_request_model_on_generated_bodies(spec: EndpointSpec, data: st.DataObject) -> None:
    """Generated bodies (any field from the pool): the provider's check refuses what the spec refuses,
    and accepts the wire body of what it accepts."""
    names = [*spec.request_model.model_fields, "no_such_field"]
    body = dict(data.draw(st.sampled_from([*spec.examples.valid, *spec.examples.invalid])))
    for name in data.draw(st.sets(st.sampled_from(names), max_size=2)):
        body.pop(name, None)
    body.update(data.draw(st.dictionaries(st.sampled_from(names), st.sampled_from(_pool(spec)), max_size=2)))
    if accepts(spec, body):
        spec.check_wire(spec.wire_body(spec.request_body(body)))
    else:
        with pytest.raises(ValidationError):
            spec.check_wire(body)
