"""Whether a folder is kept only as long as its container: the container's own file system, or a volume made for it.

A state directory there goes with the container, and the next container's run finds no ledger: it makes a new one
and pays for every video again (`docker run --rm image runner run m.yaml` with no ``-v`` for the state, each night).
Three cases are read from the mount holding the folder's real path in ``/proc/self/mountinfo``
(:func:`runner.storage.reboot.mount_of`; elsewhere, or unreadable, nothing is said):

- the container's own layer mounted at ``/`` (Docker, Podman, containerd under Kubernetes), removed with the container
  (``--rm``; every pod a CronJob starts is new): an overlay (``overlay``, ``fuse.fuse-overlayfs``, ``aufs``), or the
  layer of one of Docker's (and Podman's) other storage drivers, told by the name the driver gives it, which no
  machine's own ``/`` has (a host whose ``/`` is btrfs or ZFS, Fedora's or Ubuntu's, is not warned about every run):
  ``btrfs``, a subvolume ``…/btrfs/subvolumes/<64 hex digits>`` (the mount's folder); ``vfs``, a folder
  ``…/vfs/dir/<64 hex>``; ``zfs``, a dataset ``<parent dataset>/<64 hex>`` (the mount's source); ``devicemapper``, a
  thin device ``/dev/mapper/docker-<major>:<minor>-<inode>-<64 hex>``. Another (containerd's own snapshotters, which
  number their layers) is not told apart, and nothing is said;
- an anonymous volume: the mount shows ``…/volumes/<64 hex digits>/_data`` (Docker's and Podman's name for a volume
  an image's ``VOLUME`` asks for and no ``-v`` names), a new one for each container, removed with it under ``--rm``;
- a Kubernetes ``emptyDir`` on disk (``…/volumes/kubernetes.io~empty-dir/…``), removed with its pod (one in memory is
  a tmpfs: :mod:`runner.storage.reboot` says so).

A named volume (``-v videos:/state``), a host folder (``-v /srv/videos/state:/state``) and a persistent volume claim
are kept: nothing is said.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runner.storage.reboot import Emptied, Mount, mount_of, read_mounts

__all__ = ["Removed", "removed_with_container"]

_LAYERS = frozenset({"overlay", "fuse.fuse-overlayfs", "aufs"})
_ID = "[0-9a-f]{64}"  # a layer's id under Docker's and Podman's storage drivers
_BTRFS = re.compile(rf"/btrfs/subvolumes/{_ID}$")  # the mount's folder: the layer's subvolume, bound at /
_VFS = re.compile(rf"/vfs/dir/{_ID}$")  # the mount's folder: the layer's, bound at /
_ZFS = re.compile(rf"./{_ID}$")  # the mount's source: the layer's dataset, <parent dataset>/<id>
_DEVICEMAPPER = re.compile(rf"/dev/mapper/docker-[0-9]+:[0-9]+-[0-9]+-{_ID}")  # the source: the layer's thin device
_ANONYMOUS = re.compile(r"/volumes/[0-9a-f]{64}/_data(/|$)")
_EMPTY_DIR = "/volumes/kubernetes.io~empty-dir/"
_VOLUME = ("Keep it on a volume that outlives the container: a host folder or a named volume"
           " (`docker run -v /srv/videos/state:/state … --state /state`; Kubernetes: a PersistentVolumeClaim)")


@dataclass(frozen=True)
class Removed(Emptied):
    """A folder removed with its container: ``how`` is ``layer``, ``anonymous volume`` or ``emptyDir``, ``where``
    the mount point (with, for a volume, its folder on the host)."""

    @property
    def by(self) -> str:
        if self.how == "emptyDir":
            return "the pod's end (a CronJob's every run is a new pod)"
        return "removing the container (`docker run --rm`; a new container or pod for each run)"

    def way_on(self, fix: str) -> str:
        return _VOLUME

    def why(self) -> str:
        if self.how == "layer":
            return f"is in the container's own file system ({self.rule} at /, not a volume)"
        if self.how == "anonymous volume":
            return (f"is on an anonymous volume ({self.where}: one the image's VOLUME asks for and no -v names, a new"
                    " one for each container)")
        return f"is on a Kubernetes emptyDir ({self.where})"


def removed_with_container(folder: Path, mounts: Sequence[Mount] | None = None) -> Removed | None:
    """Why ``folder`` (whether it exists yet or not) goes with its container, or None: kept, or not known; ``mounts``,
    :func:`~runner.storage.reboot.read_mounts`' (read here when not given)."""
    real = PurePosixPath(os.path.realpath(folder))
    mounted = mount_of(real, read_mounts() if mounts is None else mounts)
    if mounted is None:
        return None
    layer = _layer(mounted) if mounted.point == "/" else None
    if layer is not None:
        return Removed(Path(real), "layer", "/", layer)
    if _ANONYMOUS.search(mounted.root):
        return Removed(Path(real), "anonymous volume", f"{mounted.point} from {mounted.root}")
    if _EMPTY_DIR in mounted.root:
        return Removed(Path(real), "emptyDir", mounted.point)
    return None


def _layer(root: Mount) -> str | None:
    """What the mount at ``/`` is when it is a container's own layer (see the module docstring), else None."""
    if root.fstype in _LAYERS:
        return "an overlay"
    if root.fstype == "btrfs" and _BTRFS.search(root.root):
        return "a subvolume of the btrfs storage driver"
    if root.fstype == "zfs" and _ZFS.search(root.source):
        return "a dataset of the zfs storage driver"
    if _DEVICEMAPPER.fullmatch(root.source):
        return "a thin device of the devicemapper storage driver"
    if _VFS.search(root.root):
        return "a folder of the vfs storage driver"
    return None
