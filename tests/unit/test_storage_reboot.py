"""Which folders a reboot empties (runner/storage/reboot.py), read from a mountinfo and tmpfiles.d folders of the
test's own making: a memory-backed mount by the deepest mount point, a `D`/`R` line of tmpfiles.d above the folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.service.reboot_warning import emptied_warnings
from runner.storage import reboot


def _mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *lines: str, rules: dict[str, str] | None = None) -> None:
    """Point the module at a mountinfo of ``lines`` (mount point, type) and a tmpfiles.d folder holding ``rules``."""
    info = tmp_path / "mountinfo"
    info.write_text("".join(f"{n} 1 0:{n} / {line}\n" for n, line in enumerate(lines, 20)), encoding="utf-8")
    etc, usr = tmp_path / "etc-tmpfiles.d", tmp_path / "usr-tmpfiles.d"
    for folder in (etc, usr):
        folder.mkdir(exist_ok=True)
    for name, text in (rules or {}).items():
        where = etc if name.startswith("etc/") else usr
        (where / name.removeprefix("etc/")).write_text(text, encoding="utf-8")
    monkeypatch.setattr(reboot, "MOUNTINFO", info)
    monkeypatch.setattr(reboot, "TMPFILES_DIRS", (etc, usr))


def test_a_folder_on_a_tmpfs_is_emptied_by_the_deepest_mount_and_the_last_mounted_of_equal_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ram, disk = tmp_path / "ram", tmp_path / "ram" / "disk"
    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", f"{ram} rw - tmpfs tmpfs rw",
            f"{disk} rw shared:3 - xfs /dev/vdb rw", f"{tmp_path / 'shadowed'} rw - tmpfs tmpfs rw",
            f"{tmp_path / 'shadowed'} rw - ext4 /dev/vdc rw")
    found = reboot.emptied_at_boot(ram / "state")  # not there yet: its mount is its parent's
    assert found is not None and (found.how, found.where, found.folder) == ("tmpfs", str(ram), ram / "state")
    assert "tmpfs mount at" in found.why() and str(ram) in found.why()
    assert reboot.emptied_at_boot(disk / "state") is None  # a disk mounted inside the tmpfs
    assert reboot.emptied_at_boot(tmp_path / "ram-not" / "state") is None  # a name that only starts alike
    assert reboot.emptied_at_boot(tmp_path / "shadowed" / "state") is None  # a disk mounted over the tmpfs


def test_a_link_into_a_ramfs_and_a_mount_point_with_a_space_are_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ram = tmp_path / "my ram"
    ram.mkdir()
    (tmp_path / "state").symlink_to(ram)
    escaped = str(ram).replace(" ", "\\040")
    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", f"{escaped} rw - ramfs none rw")
    found = reboot.emptied_at_boot(tmp_path / "state")
    assert found is not None and found.how == "ramfs" and found.folder == ram.resolve()


def test_a_tmpfiles_d_line_that_empties_a_folder_above_at_boot_counts_and_others_do_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch, aged, glob, user = (tmp_path / name for name in ("scratch", "aged", "globbed-7", "user"))
    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", rules={
        "tmp.conf": f"# comment\n\nD {scratch} 1777 root root -\nx {scratch}/keep-*\n",
        "var.conf": f"q {aged} 1777 root root 30d\nd {user} 0755 - - -\nR! {tmp_path}/globbed-* - - - -\n",
        "odd.conf": f"D$ {user}\nD %h/cache\nD relative/path\n\"unclosed\nD {tmp_path}/use[r]\n",
    })
    found = reboot.emptied_at_boot(scratch / "keep-this" / "state")  # `x` guards the age clean-up only
    assert found is not None and found.how == "tmpfiles" and found.where == str(scratch)
    assert f"`D {scratch}` in {tmp_path / 'usr-tmpfiles.d' / 'tmp.conf'}:3" in found.why()
    removed = reboot.emptied_at_boot(glob)
    assert removed is not None and removed.where == str(glob) and removed.why().startswith(f"is {glob},")
    for kept in (aged / "state", user / "state", tmp_path / "scratchy", tmp_path / "other"):
        assert reboot.emptied_at_boot(kept) is None, kept


def test_a_file_of_etc_tmpfiles_d_overrides_the_one_of_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", rules={"tmp.conf": f"D {scratch}\n"})
    assert reboot.emptied_at_boot(scratch / "state") is not None
    (tmp_path / "etc-tmpfiles.d" / "tmp.conf").symlink_to("/dev/null")  # how an administrator masks it
    assert reboot.emptied_at_boot(scratch / "state") is None


def test_elsewhere_than_linux_nothing_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _mounts(tmp_path, monkeypatch, f"{tmp_path} rw - tmpfs tmpfs rw")
    assert reboot.emptied_at_boot(tmp_path / "state") is not None
    monkeypatch.setattr(sys, "platform", "darwin")
    assert reboot.emptied_at_boot(tmp_path / "state") is None
    monkeypatch.setattr(reboot, "MOUNTINFO", tmp_path / "absent")
    monkeypatch.setattr(sys, "platform", "linux")
    assert reboot.emptied_at_boot(tmp_path / "state") is None  # no /proc: nothing known, nothing said


def test_the_warnings_say_what_each_folder_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One warning when the ledger and the videos share the storage; the videos' folder apart when it is mounted
    apart; only the videos when the ledger is a database."""
    state = tmp_path / "state"
    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", f"{tmp_path} rw - tmpfs tmpfs rw")
    both = emptied_warnings(state, ledger_in_database=False)
    assert len(both) == 1 and both[0].fields is not None and both[0].fields["holds"] == ["ledger", "videos"]
    assert "pay for every video again" in both[0].text and "(lost)" in both[0].text and "--state" in both[0].text
    videos = emptied_warnings(state, ledger_in_database=True)
    assert len(videos) == 1 and videos[0].fields is not None and videos[0].fields["holds"] == ["videos"]
    assert str(state / "outputs") in videos[0].text and "pay for every video again" not in videos[0].text

    _mounts(tmp_path, monkeypatch, f"{tmp_path} rw - tmpfs tmpfs rw", f"{state / 'outputs'} rw - ext4 /dev/vdb rw")
    ledger = emptied_warnings(state, ledger_in_database=False)
    assert [notice.fields["holds"] for notice in ledger if notice.fields] == [["ledger"]]

    _mounts(tmp_path, monkeypatch, "/ rw - ext4 /dev/vda rw", f"{state / 'outputs'} rw - tmpfs tmpfs rw")
    apart = emptied_warnings(state, ledger_in_database=False)
    assert [notice.fields["holds"] for notice in apart if notice.fields] == [["videos"]]
    assert emptied_warnings(tmp_path / "elsewhere", ledger_in_database=False) == []
