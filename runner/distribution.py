"""The installed distribution: its name on PyPI (``kling-runner``: ``runner`` there is an unrelated project) and its
version, read from its metadata only when asked (``runner --version``, ``runner.__version__``, a ledger's schema
written or refused by a newer runner)."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "installed_version"]

DISTRIBUTION = "kling-runner"  # pyproject's [project] name


def installed_version() -> str:
    """This runner's version, from its distribution's metadata (``0+unknown`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"
