"""Whether a state directory goes with its container (runner/storage/container.py), read from mountinfo lines as a
container's process and a machine's own see them: the container's own layer under each of Docker's storage drivers
(overlay2; btrfs, zfs, devicemapper and vfs, whose `/` is no overlay: their containers' state went with them under
`--rm`, unsaid), and the machines whose own `/` is btrfs (Fedora, openSUSE, Ubuntu's @), ZFS (Ubuntu's rpool, TrueNAS)
or an LVM volume, which must never be told their folder goes with a container (a warning at every run teaches an
operator to skip warnings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.storage import reboot
from runner.storage.container import removed_with_container

ID = "5c1e0f7a9b3d" + "4e2a" * 13
STATE = Path("/state")

CONTAINERS = {
    "overlay2": f"612 540 0:52 / / rw,relatime master:305 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/Q2X,"
                f"upperdir=/var/lib/docker/overlay2/{ID}/diff,workdir=/var/lib/docker/overlay2/{ID}/work",
    # /var/lib/docker a btrfs of its own (Unraid's docker.img), and on a Fedora host's btrfs root (subvolume "root")
    "btrfs": f"5094 4638 0:50 /btrfs/subvolumes/{ID} / rw,noatime - btrfs /dev/loop2 rw,ssd,discard=async,"
             f"space_cache=v2,subvolid=260,subvol=/btrfs/subvolumes/{ID}",
    "btrfs on a btrfs root": f"612 540 0:31 /root/var/lib/docker/btrfs/subvolumes/{ID} / rw,relatime master:1 - btrfs"
                             f" /dev/vda3 rw,seclabel,compress=zstd:1,subvolid=301,"
                             f"subvol=/root/var/lib/docker/btrfs/subvolumes/{ID}",
    "podman btrfs": f"612 540 0:31 /@/var/lib/containers/storage/btrfs/subvolumes/{ID} / rw,relatime - btrfs /dev/sda2"
                    f" rw,subvolid=412,subvol=/@/var/lib/containers/storage/btrfs/subvolumes/{ID}",
    "zfs": f"612 540 0:60 / / rw,relatime master:1 - zfs rpool/ROOT/ubuntu_k2x9sd/var/lib/docker/{ID} rw,xattr,noacl",
    "devicemapper": f"612 540 253:3 / / rw,relatime - xfs /dev/mapper/docker-253:0-33575081-{ID} rw,nouuid,attr2,"
                    "inode64,logbsize=64k,sunit=128,swidth=128,noquota",
    "vfs": f"612 540 8:1 /var/lib/docker/vfs/dir/{ID} / rw,relatime - ext4 /dev/sda1 rw,errors=remount-ro",
}

MACHINES = {
    "Fedora's btrfs root": "65 1 0:32 /root / rw,relatime shared:1 - btrfs /dev/vda3 rw,seclabel,compress=zstd:1,ssd,"
                           "space_cache=v2,subvolid=257,subvol=/root",
    "Ubuntu's btrfs @": "29 1 0:26 /@ / rw,relatime shared:1 - btrfs /dev/nvme0n1p2 rw,ssd,subvolid=256,subvol=/@",
    "openSUSE's snapshot": "22 1 0:21 /@/.snapshots/1/snapshot / rw,relatime shared:1 - btrfs /dev/sda2 rw,"
                           "subvolid=268,subvol=/@/.snapshots/1/snapshot",
    "Ubuntu on ZFS": "28 1 0:25 / / rw,relatime shared:1 - zfs rpool/ROOT/ubuntu_k2x9sd rw,xattr,posixacl",
    "TrueNAS": "28 1 0:25 / / rw,relatime shared:1 - zfs boot-pool/ROOT/24.04.2.2 rw,xattr,noacl",
    "an LVM root": "28 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/rhel-root rw,attr2,inode64,noquota",
    "a docker VG's LV": "28 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/docker-root rw",
    "ext4": "28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro",
}


def _removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str) -> str | None:
    info = tmp_path / "mountinfo"
    info.write_text(line + "\n", encoding="utf-8")
    monkeypatch.setattr(reboot, "MOUNTINFO", info)
    removed = removed_with_container(STATE, reboot.read_mounts())
    return None if removed is None else removed.why()


@pytest.mark.parametrize("driver", sorted(CONTAINERS))
def test_the_containers_own_layer_under_each_storage_driver_is_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: str) -> None:
    why = _removed(tmp_path, monkeypatch, CONTAINERS[driver])
    assert why is not None and why.startswith("is in the container's own file system"), (driver, why)


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_a_machines_own_root_on_btrfs_zfs_or_lvm_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str) -> None:
    assert _removed(tmp_path, monkeypatch, MACHINES[machine]) is None


def test_a_host_folder_bound_over_a_layer_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-v /srv/videos/state:/state` in a container on the btrfs driver: the state is on the host's disk."""
    table = f"{CONTAINERS['btrfs']}\n700 5094 253:1 /srv/videos/state /state rw,relatime - ext4 /dev/vda1 rw"
    assert _removed(tmp_path, monkeypatch, table) is None
