"""The ``chown`` a refusal suggests when the user who runs has no name here: a container's user (``docker run -u
12345``, OpenShift's arbitrary uid) has no passwd entry, and its number is what the host's ``chown`` takes."""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

import pytest

from runner.storage import ownership
from runner.storage.ownership import Unusable, chown_fix

NO_ONE = 12345  # a uid with no passwd entry (checked below)


def _nameless(uid: int) -> pwd.struct_passwd:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


def test_the_chown_for_a_user_with_no_name_is_one_the_shell_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """It said `sudo chown -R uid 12345 /state`: chown takes "uid" for the owner and 12345 for a file, and fails
    ("invalid user: 'uid'"). The owner is the bare number now."""
    monkeypatch.setattr(os, "geteuid", lambda: NO_ONE)
    monkeypatch.setattr(ownership.pwd, "getpwuid", _nameless)
    whose = Unusable(f"the folder {tmp_path} belongs to root (mode 0755)", tmp_path, 0, 0)
    fix = chown_fix(tmp_path, whose)
    command = fix.split("`")[1]
    assert shlex.split(command) == ["sudo", "chown", "-R", str(NO_ONE), str(tmp_path)], fix
    assert ownership.user_name(NO_ONE) == f"uid {NO_ONE}"  # the words stay words: "this user (uid 12345)"


def test_the_chown_for_a_named_user_names_it(tmp_path: Path) -> None:
    whose = Unusable(f"the folder {tmp_path} belongs to uid 4321 (mode 0755)", tmp_path, 4321, 4321)
    command = chown_fix(tmp_path, whose).split("`")[1]
    assert shlex.split(command)[3] == pwd.getpwuid(os.geteuid()).pw_name
