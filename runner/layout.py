"""Where stored videos go under the state directory: the one place that composes their paths.

The ledger records a job's stored path and a manifest's output *name* as opaque strings; this
module is the layout that turns (manifest, output name) into a path relative to the state
directory, and says where a paid job that no manifest lists any more (an *orphan*) is kept::

    outputs/<manifest>/<output>             a manifest's video
    outputs/<manifest>/_orphans/<key>.mp4   a paid job the manifest dropped
    outputs/_orphans/<key>.mp4              one no record says which manifest dropped
    outputs/<manifest>/_rejected/<key>.<n>.mp4   a rejected video (sample n), kept when regenerated

Every path is relative to the state directory, with ``/`` separators.
"""

from __future__ import annotations

__all__ = [
    "ORPHANS_DIR",
    "OUTPUTS_DIR",
    "REJECTED_DIR",
    "RESERVED_FOLDERS",
    "manifest_folder",
    "orphan_folder",
    "orphan_path",
    "output_path",
    "rejected_path",
]

OUTPUTS_DIR = "outputs"
ORPHANS_DIR = "_orphans"
REJECTED_DIR = "_rejected"
#: The runner's own folder names beside the manifests' folders: a manifest may not be named so (in any case).
RESERVED_FOLDERS = (ORPHANS_DIR, REJECTED_DIR)


def manifest_folder(manifest: str) -> str:
    """The folder of ``manifest``'s videos, with its trailing ``/``: every :func:`output_path`
    of the manifest starts with it (the ledger filters recorded paths by this prefix)."""
    return f"{OUTPUTS_DIR}/{manifest}/"


def output_path(manifest: str, output: str) -> str:
    """Where ``manifest`` wants the video it names ``output``."""
    return manifest_folder(manifest) + output


def orphan_folder(home: str | None) -> str:
    """The orphans folder of ``home`` (a manifest), with its trailing ``/``."""
    folder = OUTPUTS_DIR if home is None else f"{OUTPUTS_DIR}/{home}"
    return f"{folder}/{ORPHANS_DIR}/"


def orphan_path(home: str | None, key: str, suffix: str = ".mp4") -> str:
    """Where a paid job no manifest lists is stored: in the orphans folder of ``home`` (the
    manifest that dropped it last), or of the outputs folder when no record says which."""
    return f"{orphan_folder(home)}{key}{suffix}"


def rejected_path(manifest: str, key: str, sample: int, suffix: str = ".mp4", n: int = 1) -> str:
    """Where sample ``sample`` of ``key`` is kept once rejected and regenerated (``n`` > 1: another
    name when that one is taken)."""
    extra = "" if n == 1 else f"-{n}"
    return f"{manifest_folder(manifest)}{REJECTED_DIR}/{key}.{sample}{extra}{suffix}"
