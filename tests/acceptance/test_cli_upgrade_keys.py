"""A ledger planned under an older key derivation keeps its jobs after the upgrade (runner.ledger.twins).

Text in NFC (commit c1397a3):
Before c1397a3 a job's key hashed the manifest's text as typed: a ``salt`` or a prompt spelled with
combining accents (NFD: macOS, some editors) was hashed in NFD. Now both are hashed in NFC, so the
same manifest yields other keys. The first runner of each test keys its jobs as that old code did
(:data:`_OLD_KEYS`: ``runner.jobs.nfc`` made the identity before anything imports it, so neither the
bodies nor the salt are normalised), against a simulator on loopback; the second is today's runner
after an edit of the manifest (a re-plan). The simulator's books say what was paid for.

A data: URI typed in a manifest (refused now): :data:`_DATA_URIS` is the runner that still took one; the
manifest then names a file of the same bytes, as the refusal says.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import unicodedata
from pathlib import Path

from runner.testing import make_png

from test_cli_support import (
    KEY,
    THREE_JOBS,
    ProviderFactory,
    Result,
    clean_env,
    counts,
    provider,
    run_args,
    run_cli,
    write_manifest,
)

__all__ = ["provider"]  # the fixture, imported for pytest

# The runner as it keyed jobs before c1397a3: text (bodies and salt) hashed and sent as typed.
_OLD_KEYS = (
    "import runpy, sys\n"
    "import runner.jobs\n"
    "runner.jobs.nfc = lambda value: value\n"
    "sys.argv = ['runner', *sys.argv[1:]]\n"
    "runpy.run_module('runner', run_name='__main__', alter_sys=True)\n"
)


# The runner as it took a data: URI in a manifest: sent as typed, its key hashing the string.
_DATA_URIS = (
    "import runpy, sys\n"
    "import runner.manifest.job_builder\n"
    "sys.modules['runner.manifest.job_builder'].is_data_uri = lambda value: False\n"
    "sys.argv = ['runner', *sys.argv[1:]]\n"
    "runpy.run_module('runner', run_name='__main__', alter_sys=True)\n"
)


def _old_runner(*args: str, cwd: Path, code: str = _OLD_KEYS) -> Result:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd,
                          env=clean_env({"NOVITA_API_KEY": KEY}), capture_output=True, text=True,
                          timeout=120, check=False)
    return Result(list(args), proc.returncode, proc.stdout, proc.stderr, 0.0)


def _nfd(text: str) -> str:
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    return nfd


def _planned_by_old_and_new(tmp_path: Path, provider: ProviderFactory, before: str, after: str) -> int:
    """``before`` run to the end by the old runner, then ``after`` by today's: the tasks paid for in all."""
    sim = provider()
    state = tmp_path / "state"
    manifest = write_manifest(tmp_path, before)
    old = _old_runner(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert old.code == 0, str(old)
    assert sim.accepted() == 3
    write_manifest(tmp_path, after)
    new = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert new.code == 0, str(new)
    assert "planning" in new.stderr + new.stdout  # the edit made it plan again
    return sim.accepted()


def test_a_salt_typed_in_nfd_keeps_its_paid_jobs(tmp_path: Path, provider: ProviderFactory) -> None:
    """An NFD salt (ASCII prompts): an unrelated edit after the upgrade pays for nothing again."""
    before = THREE_JOBS + f"salt: \"{_nfd('crème')}\"\n"
    assert _planned_by_old_and_new(tmp_path, provider, before, before + "# an unrelated edit\n") == 3
    assert counts(tmp_path / "state") == {"done": 3}


def test_nfd_prompts_and_salt_keep_their_paid_jobs(tmp_path: Path, provider: ProviderFactory) -> None:
    """NFD in the prompt, a value and the salt at once."""
    text = THREE_JOBS.replace("cat, dog, owl", _nfd("chat, élan, hérisson"))
    before = text.replace("quiet street", _nfd("rue tranquille à l'aube")) + f"salt: \"{_nfd('prise 2, été')}\"\n"
    assert _planned_by_old_and_new(tmp_path, provider, before, before + "# an unrelated edit\n") == 3
    assert counts(tmp_path / "state") == {"done": 3}


def test_a_changed_salt_is_not_matched_to_the_old_salt_jobs(tmp_path: Path, provider: ProviderFactory) -> None:
    """A new salt asks for fresh samples: the pre-NFC jobs of the old salt (NFD prompts) are not taken for them."""
    text = THREE_JOBS.replace("quiet street", _nfd("rue tranquille à l'aube"))
    paid = _planned_by_old_and_new(tmp_path, provider, text + "salt: take-1\n", text + "salt: take-2\n")
    assert paid == 6
    assert counts(tmp_path / "state") == {"done": 3}


def test_an_image_typed_as_a_data_uri_keeps_its_paid_job_once_it_is_a_file(tmp_path: Path,
                                                                          provider: ProviderFactory) -> None:
    """Today's runner refuses to plan the manifest, saying to write the image to a file; done so, nothing is paid
    again."""
    sim = provider()
    state = tmp_path / "state"
    image = make_png(640, 360, seed=2)
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    text = ('name: trio\nmodel: kling-v3.0-pro-i2v\nprompt: "{move}"\ndefaults: {image: "@IMAGE@", duration: 5}\n'
            'matrix:\n  move: [slow push-in, orbit]\noutput: "{move}.mp4"\n')
    manifest = write_manifest(tmp_path, text.replace("@IMAGE@", uri))
    old = _old_runner(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path, code=_DATA_URIS)
    assert old.code == 0, str(old)
    assert sim.accepted() == 2
    refused = run_cli(*run_args("plan", manifest, state), cwd=tmp_path)  # (run plans only an edited manifest)
    assert refused.code == 2 and "Write the image to a file" in refused.stderr, str(refused)
    (tmp_path / "still.png").write_bytes(image)
    write_manifest(tmp_path, text.replace("@IMAGE@", "still.png"))
    new = run_cli(*run_args("run", manifest, state, *sim.engine_args()), cwd=tmp_path)
    assert new.code == 0, str(new)
    assert sim.accepted() == 2
    assert counts(state) == {"done": 2}
