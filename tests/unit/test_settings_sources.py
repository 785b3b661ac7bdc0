"""One table of run settings: the manifest, the flags, the engine, the help and the docs agree with it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml as pyyaml
from click.testing import CliRunner

import runner.config
from runner.cli import main
from runner.config import (
    DEFAULTS,
    SETTINGS,
    RunSettings,
    default_text,
    liftable,
    resolve_settings,
)
from runner.engine import EngineConfig
from runner.errors import ManifestError, UsageError
from runner.ledger.factory import IN_DOUBT_HOLD_ENV, LEASE_TTL_ENV, LEDGER_URL_ENV
from runner.manifest import Limits, load_manifest
from runner.manifest.schema import ManifestSpec
from runner.service import settings_for as run_settings
from runner.service.live_review import REVIEW_SAVE_ENV
from runner.service.reboot_warning import SCRATCH_ENV

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = "name: tiny\nprompt: a red fox\n"
IN_MANIFEST = [s for s in SETTINGS if s.manifest_key is not None]
LIMITS = [s.name for s in IN_MANIFEST if s.manifest_key and s.manifest_key.startswith("limits.")]
LIFTABLE_LIMITS = [name for name in LIMITS if liftable(name)]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def manifest_saying(tmp_path: Path, name: str, value: str) -> Path:
    """A manifest whose only run setting is ``name: value`` (YAML text), at line 4 for a limit."""
    if name == "in_doubt":
        return write(tmp_path, MINIMAL + f"in_doubt: {value}\n")
    return write(tmp_path, MINIMAL + f"limits:\n  {name}: {value}\n")


# --- the defaults live once --------------------------------------------------------------------------------


def test_engine_config_defaults_are_the_run_settings_defaults() -> None:
    """EngineConfig built with no values has every run setting's default from RunSettings."""
    config = EngineConfig(manifest=None)
    shared = {f.name for f in dataclasses.fields(EngineConfig)} & {f.name for f in dataclasses.fields(RunSettings)}
    assert shared >= {"concurrency", "rpm", "poll_rpm", "poll_interval", "downloads", "budget_usd", "max_runtime"}
    for name in shared:
        assert getattr(config, name) == getattr(DEFAULTS, name), name


def test_manifest_defaults_are_the_run_settings_defaults() -> None:
    """The manifest model's limits and in_doubt default to RunSettings' values."""
    for name in LIMITS:
        assert getattr(Limits(), name) == getattr(DEFAULTS, name), name
    assert ManifestSpec.model_fields["in_doubt"].default == DEFAULTS.in_doubt


def test_engine_config_from_settings_copies_every_setting_the_engine_reads() -> None:
    """from_settings carries each resolved value (not a default) into the engine's config."""
    settings = RunSettings(concurrency=9, rpm=None, poll_rpm=None, poll_interval=0.25, downloads=7, budget_usd=3.5,
                           max_runtime=42.0)
    config = EngineConfig.from_settings(settings, manifest="m", retries=2, submit=False, collect=True)
    assert (config.concurrency, config.rpm, config.poll_rpm, config.poll_interval, config.downloads,
            config.budget_usd, config.max_runtime) == (9, None, None, 0.25, 7, 3.5, 42.0)
    assert (config.manifest, config.retries, config.submit, config.collect) == ("m", 2, False, True)


# --- the manifest accepts what the flag and the variable accept ---------------------------------------------


@pytest.mark.parametrize("text", ["null", "none", "None", "off", "unlimited", "~"])
@pytest.mark.parametrize("name", LIFTABLE_LIMITS)
def test_manifest_can_lift_every_liftable_limit(tmp_path: Path, name: str, text: str) -> None:
    """`limits: {poll_rpm: null}` (or `rpm: none`) lifts the limit, as `--poll-rpm none` and RUNNER_POLL_RPM=none do."""
    manifest = load_manifest(manifest_saying(tmp_path, name, text))
    assert getattr(manifest.limits, name) is None
    assert getattr(run_settings(manifest, {}, {}), name) is None
    flag = resolve_settings(flags={name: text if text not in ("null", "~") else "none"}, environ={}, manifest={})
    assert getattr(flag, name) is None


@pytest.mark.parametrize(
    ("name", "yaml", "expected"),
    [
        ("concurrency", "4.0", 4),
        ("downloads", "'3'", 3),
        ("rpm", "'12.5'", 12.5),
        ("budget_usd", "0", 0.0),
        ("in_doubt", "RESUBMIT", "resubmit"),
    ],
)
def test_manifest_reads_a_value_as_the_variable_does(tmp_path: Path, name: str, yaml: str, expected: Any) -> None:
    """Whole floats for integers, numbers as text, a zero budget, case-insensitive policy: as RUNNER_* reads them."""
    manifest = load_manifest(manifest_saying(tmp_path, name, yaml))
    value = getattr(run_settings(manifest, {}, {}), name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "yaml"),
    [
        ("concurrency", "0"),
        ("concurrency", "2.5"),
        ("concurrency", "null"),
        ("concurrency", "true"),
        ("rpm", "-1"),
        ("rpm", ".inf"),
        ("rpm", "fast"),
        ("poll_rpm", "0"),
        ("poll_interval", "none"),
        ("downloads", "many"),
        ("budget_usd", "-3"),
        ("in_doubt", "maybe"),
    ],
)
def test_a_bad_manifest_value_is_worded_as_for_the_flag_with_file_and_line(tmp_path: Path, name: str,
                                                                           yaml: str) -> None:
    """The manifest's message is the flag's message, naming `manifest limits.<key>`, plus the file and line."""
    path = manifest_saying(tmp_path, name, yaml)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    key = next(s.manifest_key for s in SETTINGS if s.name == name)
    line = 3 if name == "in_doubt" else 4
    assert caught.value.line == line
    raw = pyyaml.safe_load(yaml)
    with pytest.raises(UsageError) as same:
        runner.config.convert(name, raw, f"manifest {key}")
    assert str(caught.value).endswith(f":{line}: {same.value}"), str(caught.value)
    assert f"manifest {key}: " in str(caught.value)


# --- precedence through the CLI's own resolution, from a real manifest file ---------------------------------

# Three distinct valid values per setting said by a manifest: flag text, environment text, manifest YAML.
VALUES: dict[str, tuple[str, str, str, Any, Any, Any]] = {
    "concurrency": ("7", "6", "5", 7, 6, 5),
    "rpm": ("33", "22", "none", 33.0, 22.0, None),
    "poll_rpm": ("none", "66", "55", None, 66.0, 55.0),
    "poll_interval": ("0.7", "0.6", "0.5", 0.7, 0.6, 0.5),
    "downloads": ("5", "3", "2", 5, 3, 2),
    "budget_usd": ("7.5", "none", "5.5", 7.5, None, 5.5),
    "in_doubt": ("resubmit", "hold", "resubmit", "resubmit", "hold", "resubmit"),
}


def test_the_precedence_table_covers_every_manifest_setting() -> None:
    assert sorted(VALUES) == sorted(s.name for s in IN_MANIFEST)


@pytest.mark.parametrize("winner", ["flag", "env", "manifest", "default"])
@pytest.mark.parametrize("name", sorted(VALUES))
def test_precedence_flag_env_manifest_default_from_a_manifest_file(tmp_path: Path, name: str, winner: str) -> None:
    """For each setting a manifest may say: flag > RUNNER_* > the manifest's key > RunSettings' default."""
    flag, env, said, from_flag, from_env, from_manifest = VALUES[name]
    setting = next(s for s in SETTINGS if s.name == name)
    order = ["flag", "env", "manifest", "default"]
    present = order[order.index(winner):]
    path = manifest_saying(tmp_path, name, said) if "manifest" in present else write(tmp_path, MINIMAL)
    opts = {name: flag} if "flag" in present else {}
    environ = {str(setting.env): env} if "env" in present else {}
    expected = {"flag": from_flag, "env": from_env, "manifest": from_manifest, "default": getattr(DEFAULTS, name)}
    assert getattr(run_settings(load_manifest(path), opts, environ), name) == expected[winner]


@pytest.mark.parametrize("command", ["run", "submit"])
@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.flag is not None], ids=lambda s: s.name)
def test_every_flag_accepts_what_its_variable_accepts(tmp_path: Path, command: str,
                                                     setting: runner.config.Setting) -> None:
    """`runner run m.yaml --budget none` parses: click does not refuse a value before the setting's own reader."""
    text = "none" if liftable(setting.name) else ("hold" if setting.name == "in_doubt" else "2")
    group = main
    assert isinstance(group, click.Group)
    cmd = group.get_command(click.Context(group), command)  # commands load on first use
    assert cmd is not None
    ctx = cmd.make_context(command, [str(write(tmp_path, MINIMAL)), str(setting.flag), text])
    from_flag = run_settings(None, ctx.params, {})
    from_env = resolve_settings(flags={}, environ={str(setting.env): text}, manifest={})
    assert getattr(from_flag, setting.name) == getattr(from_env, setting.name)


# --- the help, the docs and the table do not disagree -----------------------------------------------------------


def _help(command: str) -> dict[str, str]:
    """Each option's line of `runner COMMAND --help`, by its flag (one line each on a wide terminal)."""
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=10_000)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("--")]
    return {line.split()[0]: line for line in lines}


@pytest.mark.parametrize("command", ["run", "submit", "collect"])
def test_help_shows_each_flag_with_its_variable_and_the_table_default(command: str) -> None:
    """`runner run --help` names, per setting, its variable and RunSettings' default."""
    options = _help(command)
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        match = re.search(r"\(env (\S+); default ([^)]+)\)", options[setting.flag])
        assert match is not None, options[setting.flag]
        assert match.group(1) == setting.env
        assert match.group(2) == default_text(setting.name)


def _doc_value(cell: str) -> Any:
    cell = cell.strip().strip("`")
    if cell in ("none", "null"):
        return None
    if cell.endswith("GiB"):
        return float(cell.split()[0]) * 1024**3
    if cell.endswith("MiB"):
        return float(cell.split()[0]) * 1024**2
    try:
        return float(cell)
    except ValueError:
        return cell


def test_config_docstring_table_matches_the_settings_table() -> None:
    """The table in runner/config.py's docstring: same flags, variables, manifest keys and defaults."""
    rows = [line.split("|")[1:-1] for line in (runner.config.__doc__ or "").splitlines()
            if line.startswith("| ") and not line.startswith("| setting")]
    documented = {cells[0].strip(): [c.strip() for c in cells] for cells in rows}
    assert sorted(documented) == sorted(s.name for s in SETTINGS)
    for setting in SETTINGS:
        _, flag, env, key, default = documented[setting.name]
        assert (flag if flag != "—" else None) == setting.flag, setting.name
        assert env == setting.env
        assert (key if key != "—" else None) == setting.manifest_key, setting.name
        assert _doc_value(default) == getattr(DEFAULTS, setting.name), setting.name


def test_manifest_docs_limits_table_matches_the_defaults() -> None:
    """docs/manifest.md's `limits` table shows RunSettings' defaults, and each liftable limit says `null`."""
    text = (ROOT / "docs" / "manifest.md").read_text(encoding="utf-8")
    section = text[text.index("### `limits`"):]
    section = section[:section.index("\n## ")]
    for name in LIMITS:
        match = re.search(rf"^\| `{name}` \| `([^`]+)` \| (.*) \|$", section, re.MULTILINE)
        assert match is not None, name
        assert _doc_value(match.group(1)) == getattr(DEFAULTS, name), name
        assert ("`null`" in match.group(2)) == (liftable(name) and getattr(DEFAULTS, name) is not None), name
    in_doubt = re.search(r"^\| `in_doubt` \| `([^`]+)` \|", text, re.MULTILINE)
    assert in_doubt is not None and in_doubt.group(1) == DEFAULTS.in_doubt


def test_readme_mentions_only_real_settings_with_their_defaults() -> None:
    """README's flags and RUNNER_* variables exist, and the defaults it quotes are the table's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    flags = {s.flag for s in SETTINGS if s.flag}
    envs = {s.env for s in SETTINGS if s.env}
    mentioned = set(re.findall(r"`(--[a-z-]+)", readme))
    assert flags <= mentioned, f"README does not list {sorted(flags - mentioned)}"
    others = {"RUNNER_STATE_DIR", "RUNNER_PROGRESS_SECONDS", LEDGER_URL_ENV, LEASE_TTL_ENV, IN_DOUBT_HOLD_ENV,
              REVIEW_SAVE_ENV, SCRATCH_ENV}
    for env in set(re.findall(r"RUNNER_[A-Z_]+", readme)):
        assert env in envs | others, env
    assert f"max({default_text('download_timeout')} s" in readme
    gib = DEFAULTS.download_max_bytes / 1024**3
    assert f"({gib:g} GiB" in readme


def test_the_in_doubt_flag_offers_exactly_the_policies_the_settings_accept() -> None:
    """`--in-doubt`'s choices are runner.config's policies (one list), and each is read back as itself."""
    group = main
    assert isinstance(group, click.Group)
    for command in ("run", "submit", "collect"):
        loaded = group.get_command(click.Context(group), command)
        assert loaded is not None
        option = next(p for p in loaded.params if p.name == "in_doubt")
        assert isinstance(option.type, click.Choice)
        assert tuple(option.type.choices) == runner.config.IN_DOUBT_POLICIES == ("hold", "resubmit")
    for policy in runner.config.IN_DOUBT_POLICIES:
        assert runner.config.convert("in_doubt", policy.upper(), "--in-doubt") == policy
