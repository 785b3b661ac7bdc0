"""The Hugging Face export's dataset card and its clean-up of files it no longer exports.

The card (``README.md`` with YAML front matter) names its ``configs`` / ``data_files``: one
``train`` split of ``metadata.jsonl`` and the videos. With it ``datasets.load_dataset(DIR)`` (and
the Hub's viewer after ``huggingface-cli upload``) no longer infers splits from folder names, which
made a folder called ``train``, ``test``, ``dev`` or ``validation`` (or "a steam train") a split of
its own and dropped the other rows and all the metadata.

The export owns only what its last ``metadata.jsonl`` lists and the card it wrote (it carries
:data:`CARD_MARK`): a re-export removes the listed files that are no longer exported and the
folders that leaves empty, and refuses to overwrite a README.md it did not write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path, PurePosixPath

import yaml

from runner.errors import UsageError

__all__ = ["CARD_FILE", "CARD_MARK", "card_text", "check_card", "listed_files", "prune"]

CARD_FILE = "README.md"
CARD_MARK = "<!-- written by `runner export --format hf`; re-exporting rewrites this file -->"


def card_text(manifest: str, metadata_file: str, suffixes: Collection[str], rows: int,
              columns: Iterable[str]) -> str:
    """The card: YAML ``configs`` (one ``train`` split: the metadata file and ``**/*<suffix>``)
    then a short Markdown account of the columns, the loading call and the upload command."""
    paths = [metadata_file, *(f"**/*{suffix}" for suffix in sorted(suffixes))]
    front = {"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": paths}]}],
             "pretty_name": manifest, "tags": ["video", "synthetic", "runner"]}
    names = ", ".join(f"`{name}`" for name in columns)
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n{CARD_MARK}\n\n"
        f"# {manifest}\n\n"
        f"{rows} generated video(s), one row each in `{metadata_file}`"
        " (its `file_name` is the video; `*_file_name` columns are the input images copied beside it).\n\n"
        f"Columns: {names}.\n\n"
        "```python\n"
        "import datasets\n"
        "ds = datasets.load_dataset(\"path/to/this/folder\", split=\"train\")\n"
        "# an image-to-video input loads as the folder's file type: read it as an image with\n"
        "# ds = ds.cast_column(\"image\", datasets.Image())\n"
        "```\n\n"
        "Upload as it is: `huggingface-cli upload USER/NAME path/to/this/folder --repo-type dataset`\n"
        "(or `hf upload …`; for many thousands of files `huggingface-cli upload-large-folder`).\n"
    )


def check_card(dest: Path) -> None:
    """Refuse to overwrite a README.md in ``dest`` that this export did not write."""
    card = dest / CARD_FILE
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot read {card}: {exc.strerror or exc}") from exc
    if CARD_MARK not in text:
        raise UsageError(f"{card} was not written by runner: the hf export writes its dataset card there;"
                         " move it away or export to another folder")


def listed_files(metadata: Path) -> set[str]:
    """The files an earlier export listed: every row's ``file_name`` and ``*_file_name`` values."""
    found: set[str] = set()
    try:
        with metadata.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    found.update(value for name, value in row.items()
                                 if (name == "file_name" or name.endswith("_file_name")) and isinstance(value, str))
    except OSError:
        return set()
    return found


def prune(dest: Path, before: set[str], now: set[str]) -> int:
    """Remove the files listed ``before`` but not ``now`` (only plain relative names inside ``dest``)
    and the folders that leaves empty; returns how many files went."""
    removed = 0
    for name in sorted(before - now):
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            continue
        path = dest / rel
        if path.is_symlink() or not path.is_file():
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed += 1
        folder = path.parent
        while folder != dest and folder.is_relative_to(dest):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    if removed:
        _fsync_dir(dest)
    return removed


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
