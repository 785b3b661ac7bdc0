"""SimConfig knobs and the ManualClock."""

from __future__ import annotations

import pydantic
import pytest

from runner.simulator import ManualClock, SimConfig

FAULT_KNOBS = [
    "p_rate_limit",
    "p_rate_limit_no_retry_after",
    "p_create_failed",
    "p_gateway",
    "p_drop",
    "p_slow",
    "p_malformed",
    "p_task_failed",
    "p_poll_error",
    "p_truncated",
    "p_expired_url",
    "p_long_task_id",
    "p_status_unknown",
]


def test_defaults_are_a_well_behaved_provider() -> None:
    """By default there are no faults, no rate limit and one-hour URLs."""
    config = SimConfig()
    assert all(getattr(config, knob) == 0.0 for knob in FAULT_KNOBS)
    assert config.rpm is None
    assert config.api_key is None
    assert config.video_url_ttl == 3600
    assert config.task_seconds == 3.0
    # as Novita's docs describe the provider: no Retry-After, key errors 400/403, results with extra
    assert (config.retry_after_header, config.auth_401, config.extra_in_results) == (False, False, True)


@pytest.mark.parametrize("knob", FAULT_KNOBS)
def test_fault_knobs_are_documented_probabilities(knob: str) -> None:
    """Every fault knob has a description and refuses values outside [0, 1]."""
    assert SimConfig.model_fields[knob].description
    SimConfig.model_validate({knob: 1.0})
    for bad in (-0.01, 1.01):
        with pytest.raises(pydantic.ValidationError):
            SimConfig.model_validate({knob: bad})


def test_unknown_knobs_are_refused() -> None:
    """A typo in a knob name fails loudly instead of silently doing nothing."""
    with pytest.raises(pydantic.ValidationError, match="p_dorp"):
        SimConfig.model_validate({"p_dorp": 1.0})


def test_api_key_stays_out_of_reprs() -> None:
    """The configured key never shows in repr() or the public view of the config."""
    config = SimConfig(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config.public_dict())


def test_manual_clock_moves_only_when_told() -> None:
    """ManualClock reads the same until advanced, and refuses to go backwards."""
    clock = ManualClock(10.0)
    assert clock() == clock() == 10.0
    clock.advance(2.5)
    assert clock() == 12.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_a_setting_given_as_null_on_the_command_line_is_none() -> None:
    """`runner simulate --fault balance_usd=null` (docs/provider.md: both balance routes then answer 404) was refused
    as "not a valid number"; a probability given as null is still refused."""
    from runner.cli.sim import _parse_faults

    assert SimConfig.model_validate(_parse_faults(("balance_usd=null",))).balance_usd is None
    assert SimConfig.model_validate(_parse_faults(("balance_usd=12.5",))).balance_usd == 12.5
    with pytest.raises(pydantic.ValidationError):
        SimConfig.model_validate(_parse_faults(("p_drop=null",)))
