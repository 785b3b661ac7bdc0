"""The input images of the image-to-video crash torture (``bench.crash --i2v``).

The harness writes small valid PNG and JPEG files (``runner.testing.make_png`` / ``make_jpeg``,
each 320-519 px a side, distinct bytes) into ``images/`` beside the manifest; some rows of the
matrix name one of them (sent inline, a ``data:`` URI built at submit time), the others an
``https://`` URL (sent as is: the simulator, like the provider, takes the string, and the URL is
never fetched). Every version of every file ever written is also kept in ``.archive/<sha256>``, so
the judge can rebuild the body of a job whose file was later rewritten or renamed
(:class:`bench.crashbooks.ArchivedInputs`).

What an operator does to the files (``--i2v --operator``), each the runner's rule to keep:

- ``image edits``: before a run, one image gets new bytes: the jobs using it are new jobs (a new
  request); the old ones are no longer the manifest's;
- ``image renames``: before a run, one image is renamed and the manifest follows: the same jobs (the
  key hashes the bytes), their stored requests name the new path;
- ``image swaps mid-run``: during a run, one image gets new bytes: its jobs not yet sent fail unsent
  (nothing paid), the next run plans the new bytes as new jobs;
- ``image away mid-run``: during a run, one image is renamed away, and put back after the run: its
  jobs not yet sent fail unsent, and the next run plans them again (reopened).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.endpoints.media import identity_value
from runner.testing import make_jpeg, make_png

__all__ = ["IMAGE_ACTIONS", "MID_RUN_ACTIONS", "InputImages"]

MODEL = "kling-v3.0-std-i2v"
URL_BASE = "https://example.com/crash/frames/"
BEFORE_RUN_ACTIONS = ("image edits", "image renames")
MID_RUN_ACTIONS = ("image swaps mid-run", "image away mid-run")
IMAGE_ACTIONS = BEFORE_RUN_ACTIONS + MID_RUN_ACTIONS


class InputImages:
    """The torture's input files: ``local`` image files and ``urls`` image URLs, shared round-robin by the rows."""

    def __init__(self, base: Path, *, jobs: int) -> None:
        self.base = base
        self.folder = base / "images"
        self.archive = base / ".archive"
        self.local = max(2, jobs // 10)
        self.urls = max(1, jobs // 20)
        self.names: list[str] = []  # the manifest's path of each local image, by index
        self.written = 0  # versions written so far: each one's bytes differ
        self.away: tuple[Path, Path] | None = None  # (where it is, where it belongs) while renamed away

    def write_all(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.archive.mkdir(parents=True, exist_ok=True)
        for index in range(self.local):
            self.names.append(f"images/img-{index}.{'png' if index % 2 == 0 else 'jpg'}")
            self._write(index)

    def _write(self, index: int) -> None:
        """New bytes for image ``index``: another size and seed than any version before."""
        n = self.written
        self.written += 1
        width, height = 320 + n % 200, 320 + (n // 200) % 200
        data = make_png(width, height, seed=n) if self.names[index].endswith(".png") else make_jpeg(width, height, seed=n)
        (self.archive / hashlib.sha256(data).hexdigest()).write_bytes(data)
        path = self.base / self.names[index]
        temporary = path.with_name(f".{path.name}.new")
        temporary.write_bytes(data)
        temporary.replace(path)  # one rename: a reader sees the old bytes or the new, never half

    def value(self, i: int) -> str:
        """The ``image`` of row ``i``: a local file's path, or a URL."""
        slot = i % (self.local + self.urls)
        return self.names[slot] if slot < self.local else f"{URL_BASE}{slot - self.local}.png"

    def in_manifest(self, request: Mapping[str, Any], i: int) -> bool:
        """Whether a job's stored ``request`` is what row ``i`` of the manifest asks for now (its image's bytes)."""
        value = self.value(i)
        if value.startswith("https://"):
            return bool(request.get("image") == value)
        path = self.base / value
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return False
        return bool(identity_value(request.get("image")) == {"sha256": sha})

    # ------------------------------------------------------- operator actions
    def edit(self, rng: random.Random) -> None:
        """``image edits`` / ``image swaps mid-run``: one image gets new bytes under its name."""
        self._write(rng.randrange(self.local))

    def rename(self, rng: random.Random) -> None:
        """``image renames``: one image gets a new name (the caller writes the manifest again)."""
        index = rng.randrange(self.local)
        old = self.names[index]
        stem, suffix = old.rsplit(".", 1)
        new = f"{stem.split('-r')[0]}-r{self.written}.{suffix}"  # images/img-3.png -> images/img-3-r17.png
        self.written += 1
        (self.base / old).rename(self.base / new)
        self.names[index] = new

    def take_away(self, rng: random.Random) -> None:
        """``image away mid-run``: one image renamed away (:meth:`put_back` undoes it after the run)."""
        home = self.base / self.names[rng.randrange(self.local)]
        gone = home.with_name(f".{home.name}.away")
        home.rename(gone)
        self.away = (gone, home)

    def put_back(self) -> None:
        if self.away is not None:
            gone, home = self.away
            gone.rename(home)
            self.away = None
