"""Every manifest shown in README.md and docs/ plans: a reader who copies one gets a working batch."""

from __future__ import annotations

import difflib
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


_SPAN = re.compile(r"```[a-z]*\n(.*?)```|`([^`]+)`", re.S)


def _runner_commands() -> list[tuple[str, list[str]]]:
    """(where, words after `runner`) of each command line the docs show: a line of a code block, or an inline span
    (which may wrap), cut at a comment, `;`, `&&`, `|`, `>` or `$(`."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _SPAN.finditer(text):
            block, span = match.groups()
            first = text.count("\n", 0, match.start()) + 1
            lines = block.split("\n") if block is not None else [span.replace("\n", " ")]
            for offset, line in enumerate(lines):
                for part in re.split(r"\s#|;|&&|\\\||\s\||>|\$\(|\)", line):
                    words = part.split()
                    names = [word.rsplit("/", 1)[-1] for word in words]
                    if "runner" in names:
                        found.append((f"{doc.relative_to(ROOT)}:{first + offset}", words[names.index("runner") + 1:]))
    return found


def test_every_option_the_docs_give_a_command_is_one_of_its_options() -> None:
    """Each `runner COMMAND … --option` the README and docs/ print names an option COMMAND takes (its --help lists
    it), and each command named exists: a renamed or dropped option leaves no example a reader cannot run."""
    import click

    from runner.cli import main
    from runner.cli.group import COMMAND_OPTIONS, GLOBAL_FLAGS

    context = click.Context(main)
    wrong, checked = [], 0
    for where, words in _runner_commands():
        at = 0
        while at < len(words) and words[at].startswith("-"):  # global flags, and --state / --ledger before it
            at += 2 if words[at] in COMMAND_OPTIONS else 1
        if at == len(words) or not re.fullmatch(r"[a-z]+", words[at]):
            continue  # `runner --version`, `runner <command>`, prose such as "runner's"
        command = main.get_command(context, words[at])
        if command is None:  # prose ("runner tests bench" of a ruff line, "runner together"), or a misspelt command
            if difflib.get_close_matches(words[at], main.list_commands(context), n=1, cutoff=0.75):
                wrong.append(f"{where}: no command {words[at]!r}")
            continue
        at += 1
        if isinstance(command, click.Group) and at < len(words):
            command = command.get_command(context, words[at]) or command
            at += 1
        options = set(GLOBAL_FLAGS) | {"-h", "--help"}
        for param in command.params:
            options |= {*param.opts, *param.secondary_opts}
        for word in words[at:]:
            option = word.split("=", 1)[0].strip("[](),.'\"`")
            if re.fullmatch(r"--[a-z][a-z-]*", option):
                checked += 1
                if option not in options:
                    wrong.append(f"{where}: `runner {command.name}` has no {option}")
    assert checked > 60, checked  # the extraction found the documented commands (82 on 2026-12-05)
    assert not wrong, "\n".join(wrong)


def test_every_figure_of_the_readme_names_a_command_that_takes_its_flags() -> None:
    """The README's figures table names, for each figure, a `python -m bench.NAME [MODE] --flag …` whose module
    exists and whose --help lists each flag and mode shown."""
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Figures"):text.index("## Development")]
    wrong, helps = [], {}
    rows = [row for row in table.splitlines() if row.startswith("| ") and "figure | command" not in row
            and not row.startswith("|---")]
    for row in rows:
        commands = re.findall(r"`[^`]*python -m (bench\.\w+)([^`]*)`", row.rsplit("|", 2)[-2])
        if not commands and row.rsplit("|", 2)[-2].strip() != "same":
            wrong.append(f"no command: {row[:80]}")
        for module, args in commands:
            if module not in helps:
                done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                                      text=True, timeout=120, check=False)
                helps[module] = done.stdout if done.returncode == 0 else ""
            usage = helps[module]
            if not usage:
                wrong.append(f"{module}: --help failed")
                continue
            modes = re.search(r"\{([\w,]+)\}", usage)
            for word in args.replace("[", " ").replace("]", " ").split():
                if word.startswith("--") and not re.search(rf"(?<![\w-]){re.escape(word.split('=')[0])}(?![\w-])", usage):
                    wrong.append(f"{module} has no {word}")
                elif re.fullmatch(r"[a-z]+", word) and modes and word not in modes.group(1).split(","):
                    wrong.append(f"{module} has no mode {word}")
    assert len(rows) > 10 and helps, rows
    assert not wrong, "\n".join(wrong)


def test_the_layers_table_names_the_modules_the_import_contract_layers() -> None:
    """docs/architecture.md's Layers table and pyproject.toml's import-linter layers name the same modules
    (`runner.lazy`, a layer of the contract, was missing from the table: the README walk, 2026-12-05)."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c["layers"] for c in contracts["contracts"] if c["type"] == "layers")
    contract = {module.strip() for layer in layers for module in layer.split("|")}
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("## Layers"):].split("\n\n")[2]
    documented = set(re.findall(r"`(runner\.\w+)`", "\n".join(row.split(" | ")[1] for row in table.splitlines()[2:])))
    assert documented == contract, (sorted(documented - contract), sorted(contract - documented))


def test_what_you_decide_gives_each_refusal_the_exit_code_the_code_gives_it() -> None:
    """The README's "What you decide" table gives each ledger refusal the exit code `exit_code_for` gives its error:
    it said 3 for a PostgreSQL server that lost commits, which exits 2 (as the exit-code tables and docs/postgres.md
    say) — an operator reading 3 takes it for "work outstanding, the next run resumes" (the README walk, 2026-12-06)."""
    from runner.errors import LedgerLostCommits, LedgerMissing, LedgerOutdated, UsageError
    from runner.service.outcome import exit_code_for

    errors = {"a missing ledger": LedgerMissing("x"), "another provider": UsageError("x"),
              "a SQLite ledger older than its mark": LedgerOutdated("x"),
              "a copy of a state directory in use": LedgerOutdated("x"),
              "a PostgreSQL server that lost commits": LedgerLostCommits("x")}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("### What you decide"):text.index("## Cron and systemd")]
    given = {cells[0].strip(): cells[2].strip() for cells in (row.strip("| ").split(" | ") for row in table.splitlines()
                                                                 if row.startswith("| ") and row.count(" | ") >= 3)}
    assert set(errors) <= set(given), sorted(given)
    wrong = [f"{what}: the README says {given[what]}, the code exits {exit_code_for(error)}"
             for what, error in errors.items() if given[what] != str(exit_code_for(error))]
    assert not wrong, "\n".join(wrong)


_RUNNER = ROOT / "runner"
_MODULES = {path.relative_to(_RUNNER).as_posix() for path in _RUNNER.rglob("*.py")}
_FILES = {path.relative_to(ROOT).as_posix() for top in ("runner", "tests", "bench") for path in (ROOT / top).rglob("*.py")}


def _names_module(name: str) -> bool:
    """``name`` (``eta.py``, ``sqlite/reads.py``, ``virtual_clock.py``) is the tail of a file's path under runner/,
    tests/ or bench/."""
    return any(path.endswith("/" + name) for path in _FILES)


def test_every_module_and_name_the_architecture_names_exists() -> None:
    """docs/architecture.md names modules in shapes the cited-file test above does not open: `file.py:name` (the name
    defined there), `sqlite/{reads,spend}.py` and `memory_{tables,reads}.py` (each module of the list), a bare
    `eta.py` or `urls.py` beside its folder (a module of that name under runner/), and `runner.host` (a module, or a
    name one of them exports). Modules were split and renamed often (runner/host.py, ledger/scratch.py,
    storage/container.py, postgres/version.py): a name left behind sends a reader to nothing."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", text)
    wrong, checked = [], 0
    for span in spans:
        if (defined := re.fullmatch(r"(runner/[\w/]+\.py):(\w+)", span)) is not None:
            source = ROOT / defined.group(1)
            pattern = rf"^\s*(?:async def |def |class )?{defined.group(2)}\b"
            if not source.exists() or not re.search(pattern, source.read_text(encoding="utf-8"), re.M):
                wrong.append(span)
        elif (listed := re.fullmatch(r"([\w/]*?)\{([\w,]+)\}(\w*\.py)", span)) is not None:
            head, names, tail = listed.groups()
            wrong += [span + f": {head}{name}{tail}" for name in names.split(",") if not _names_module(f"{head}{name}{tail}")]
        elif re.fullmatch(r"[\w/]+\.py", span) and not span.startswith(("runner/", "tests/", "bench/")):
            if not _names_module(span):
                wrong.append(span)
        elif re.fullmatch(r"runner(\.\w+)+", span):
            module, _, name = span.rpartition(".")
            path = span.replace(".", "/")
            if f"{path.removeprefix('runner/')}.py" not in _MODULES and f"{path.removeprefix('runner/')}/__init__.py" \
                    not in _MODULES:
                owner = ROOT / (module.replace(".", "/") + ".py")
                owner = owner if owner.exists() else ROOT / module.replace(".", "/") / "__init__.py"
                exported = owner.exists() and re.search(rf"\b{name}\b", owner.read_text(encoding="utf-8"))
                if not exported and not any(f'"{span}"' in (_RUNNER / m).read_text(encoding="utf-8") for m in _MODULES):
                    wrong.append(span)  # neither a module, nor a name its parent exports, nor a string (runner.session)
        else:
            continue
        checked += 1
    assert checked > 60, checked  # the shapes were found (88 on 2026-12-06)
    assert not wrong, "\n".join(wrong)


def test_the_engine_table_names_every_module_of_the_engine() -> None:
    """"The engine" table of docs/architecture.md has a row for each module of runner/engine/, each where it says."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text[text.index("## The engine"):].split("\n\n")[2]
    documented = set(re.findall(r"^\| `([\w/]+\.py)` \|", table, re.M))
    engine = ROOT / "runner" / "engine"
    modules = {path.relative_to(engine).as_posix() for path in engine.rglob("*.py") if path.name != "__init__.py"}
    assert documented == modules, (sorted(documented - modules), sorted(modules - documented))
