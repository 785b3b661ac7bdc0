"""The Hugging Face export's dataset card and its clean-up of files it no longer exports.

The card (``README.md`` with YAML front matter) names its ``configs`` / ``data_files``: one
``train`` split of ``metadata.jsonl`` and the videos. With it ``datasets.load_dataset(DIR)`` (and
the Hub's viewer after ``hf upload``) no longer infers splits from folder names, which
made a folder called ``train``, ``test``, ``dev`` or ``validation`` (or "a steam train") a split of
its own and dropped the other rows and all the metadata.

The export owns only the card it wrote (it carries :data:`CARD_MARK`), the ``metadata.jsonl``
beside that card and the files that lists while they still hold what the export wrote (the
row's ``sha256`` / ``<field>_sha256``). A re-export removes the listed files that are no longer
exported and still hold those bytes, and the folders that leaves empty; it leaves a listed file
that was changed since. It refuses, before writing anything, a folder whose README.md it did not
write or whose metadata.jsonl has no runner card beside it (someone else's dataset: overwriting
it and pruning what it lists would delete their files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from runner.errors import UsageError
from runner.storage.folder_sync import sync_folder_if_possible
from runner.storage.inside import inside
from runner.storage.local import file_sha256

__all__ = ["CARD_FILE", "CARD_MARK", "Pruned", "card_text", "check_card", "listed_files", "prune"]

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
        "Upload as it is: `hf upload USER/NAME path/to/this/folder --repo-type dataset`\n"
        "(`huggingface-cli upload …` with a huggingface_hub older than 1.0).\n"
    )


def check_card(dest: Path, metadata_file: str) -> None:
    """Refuse a ``dest`` holding a README.md this export did not write, or a ``metadata_file``
    without this export's card beside it (it is not an earlier export: someone else's dataset)."""
    card = dest / CARD_FILE
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = None
    except OSError as exc:
        raise UsageError(f"cannot read {card}: {exc.strerror or exc}") from exc
    if text is not None and CARD_MARK not in text:
        raise UsageError(f"{card} was not written by runner: the hf export writes its dataset card there;"
                         " move it away or export to another folder")
    metadata = dest / metadata_file
    if text is None and (metadata.exists() or metadata.is_symlink()):
        raise UsageError(f"{metadata} was not written by runner (no runner dataset card {CARD_FILE} beside it):"
                         f" the hf export would overwrite it and remove the files it lists; nothing in {dest}"
                         " was changed; export to an empty folder or one a runner export made")


def listed_files(metadata: Path) -> dict[str, str | None]:
    """The files an earlier export listed: every row's ``file_name`` and ``*_file_name`` values,
    each with the sha256 the row records for it (``sha256``, ``<field>_sha256``; None if none)."""
    found: dict[str, str | None] = {}
    try:
        with metadata.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(row, dict):
                    continue
                for name, value in row.items():
                    if not isinstance(value, str):
                        continue
                    if name == "file_name":
                        digest = row.get("sha256")
                    elif name.endswith("_file_name"):
                        digest = row.get(f"{name.removesuffix('_file_name')}_sha256")
                    else:
                        continue
                    found[value] = digest if isinstance(digest, str) else None
    except OSError:
        return {}
    return found


@dataclass(slots=True)
class Pruned:
    """What :func:`prune` did."""

    removed: int = 0
    changed: list[str] = field(default_factory=list)  # listed, no longer exported, but not what was written: kept
    only_copy: list[str] = field(default_factory=list)  # listed, no longer exported, the last copy of a video: kept


def prune(dest: Path, before: Mapping[str, str | None], now: Collection[str],
          last_copy: Callable[[Path, str], bool] = lambda path, sha256: False) -> Pruned:
    """Remove the files listed ``before`` but not ``now`` (only plain relative names inside ``dest``, never through
    a folder linked out of it)
    whose bytes still hash to the sha256 listed with them, and the folders that leaves empty; a file
    changed since (or listed without a sha256) is kept and named in ``changed``, one whose removal would lose a
    paid video (``last_copy(file, sha256)``) in ``only_copy``."""
    result = Pruned()
    top: str | None = None
    for name in sorted(set(before) - set(now)):
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            continue
        path = dest / rel
        if path.is_symlink() or not path.is_file():
            continue
        top = top or os.path.realpath(dest)
        if not inside(os.path.realpath(path.parent), top):  # a folder on its way linked out of dest: not ours
            continue
        try:
            same = before[name] is not None and file_sha256(path) == before[name]
            if not same:
                result.changed.append(name)
                continue
            if last_copy(path, str(before[name])):
                result.only_copy.append(name)
                continue
            path.unlink()
        except OSError:
            continue
        result.removed += 1
        folder = path.parent
        while folder != dest and folder.is_relative_to(dest):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    if result.removed:
        sync_folder_if_possible(dest)
    return result
