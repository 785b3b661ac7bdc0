"""Where stored videos go under the state directory: the one place that composes their paths.

The ledger records a job's stored path and a manifest's output *name* as opaque strings; this
module is the layout that turns (manifest, output name) into a path relative to the state
directory, and says where a paid job that no manifest lists any more (an *orphan*) is kept::

    outputs/<manifest>/<output>             a manifest's video
    outputs/<manifest>/_orphans/<key>.mp4   a paid job the manifest dropped
    outputs/_orphans/<key>.mp4              one no record says which manifest dropped

Every path is relative to the state directory, with ``/`` separators.
"""

from __future__ import annotations

__all__ = ["ORPHANS_DIR", "OUTPUTS_DIR", "manifest_folder", "orphan_folder", "orphan_path", "output_path"]

OUTPUTS_DIR = "outputs"
ORPHANS_DIR = "_orphans"


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
