"""Every manifest shown in README.md and docs/ plans: a reader who copies one gets a working batch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.manifest import count_jobs, expand, load_manifest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def _manifests() -> list[tuple[str, str]]:
    """(id, text) of each ```yaml block that is a whole manifest (it has a top-level `name:`)."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            block = match.group(1)
            if re.search(r"^name:", block, re.M):
                line = text.count("\n", 0, match.start()) + 2
                found.append((f"{doc.relative_to(ROOT)}:{line}", block))
    return found


MANIFESTS = _manifests()


def test_the_readme_shows_a_manifest() -> None:
    """The README's headline manifest is found (the test below would pass vacuously otherwise)."""
    assert any(ident.startswith("README.md:") for ident, _ in MANIFESTS)


@pytest.mark.parametrize(("ident", "text"), MANIFESTS, ids=[ident for ident, _ in MANIFESTS])
def test_documented_manifest_plans(ident: str, text: str, tmp_path: Path) -> None:
    """The manifest loads, expands without an error, and has as many jobs as it counts."""
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    manifest = load_manifest(path)
    jobs = list(expand(manifest))
    assert jobs and len(jobs) == count_jobs(manifest), ident


_CITED = re.compile(r"`((?:runner|tests|bench|manifests|contrib|docs|\.ci)/[\w./-]+)")


def test_every_file_the_docs_cite_can_be_opened() -> None:
    """A path in backticks names a file or folder of this repository that exists (`docs/provider.md` cited a
    `runner/cli/balance.py` that never did: the README walk, 2026-12-05). A file since renamed may be named only
    beside its current name, on the same line ("since then …", "(now …")."""
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for cited in _CITED.findall(line):
                path = cited.rstrip(".").split("::")[0]
                if not (ROOT / path).exists() and "since then" not in line and "(now `" not in line:
                    missing.append(f"{doc.relative_to(ROOT)}:{number}: {cited}")
    assert not missing, "\n".join(missing)
