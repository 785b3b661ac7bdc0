"""The `runner` group: its global flags (-v, -q, --log-json) are accepted after the subcommand too, the
subcommands' `--state DIR` and `--ledger URL` before it too, and its commands are imported only when one is
run (start-up time: issue 14).

`runner run m.yaml -q` means `runner -q run m.yaml`: before click parses, a global flag found among a
subcommand's words is moved in front of the subcommand. `runner --state s status m.yaml` means `runner
status --state s m.yaml`: `--state` and `--ledger` (with their values) found before the subcommand are moved
after it. Words after `--` are arguments and stay.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import click

__all__ = ["COMMAND_OPTIONS", "GLOBAL_FLAGS", "LazyCommand", "OptionalValueCommand", "RunnerGroup", "globals_first",
           "location_hint"]

GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--log-json", "--no-progress"})
_SHORT = "".join(sorted(flag[1] for flag in GLOBAL_FLAGS if len(flag) == 2))  # "qv": -qv, -vq are global flags too
#: Options of the subcommands (each takes a value) that are read before the subcommand too.
COMMAND_OPTIONS = frozenset({"--state", "--ledger"})


def globals_first(args: Sequence[str]) -> list[str]:
    """``args`` with the global flags that follow the subcommand moved in front of it, and the
    :data:`COMMAND_OPTIONS` that precede it moved after it (none across ``--``)."""
    words = list(args)
    head: list[str] = []
    after: list[str] = []  # --state DIR / --ledger=URL found before the subcommand
    at = 0
    while at < len(words) and words[at] != "--" and words[at].startswith("-"):
        word = words[at]
        if word in COMMAND_OPTIONS and at + 1 < len(words):
            after += words[at:at + 2]
            at += 2
            continue
        (after if word.split("=", 1)[0] in COMMAND_OPTIONS else head).append(word)
        at += 1
    if at == len(words) or words[at] == "--":
        return words  # no subcommand: click says what is wrong with the words as given
    command, rest = words[at], words[at + 1:]
    moved: list[str] = []
    kept: list[str] = []
    for index, word in enumerate(rest):
        if word == "--":
            kept.extend(rest[index:])
            break
        (moved if _is_global(word) else kept).append(word)
    return [*head, *moved, command, *after, *kept]


def _is_global(word: str) -> bool:
    """A global flag, or several of the short ones in one word (``-qv``: click reads it so before the subcommand)."""
    return word in GLOBAL_FLAGS or (len(word) > 2 and word[0] == "-" and word[1] != "-" and set(word[1:]) <= set(_SHORT))


def location_hint(args: Sequence[str]) -> str | None:
    """What to type instead, when ``--state`` / ``--ledger`` come before ``runner ledger`` (whose subcommands take
    the ledger's location as an argument, and copy takes two: no option says which one it would be); else None."""
    import shlex  # here: on a mistake only (start-up time)

    words, at, given = list(args), 0, []
    while at < len(words) and words[at] != "--" and words[at].startswith("-"):
        name, _, value = words[at].partition("=")
        if name in COMMAND_OPTIONS and not value and at + 1 < len(words):
            value, at = words[at + 1], at + 1
        if name in COMMAND_OPTIONS:
            given.append((name, value))
        at += 1
    if not given or at == len(words) or words[at] != "ledger":
        return None
    rest = words[at + 1:]
    sub, rest = (rest[0], rest[1:]) if rest and not rest[0].startswith("-") else ("reopen", rest)
    places = {"copy": 2}.get(sub, 1) - sum(not word.startswith("-") for word in rest)  # locations still to give
    typed = shlex.join(["runner", "ledger", sub, *(value for _, value in given[:max(places, 0)]), *rest])
    options = " / ".join(dict.fromkeys(name for name, _ in given))
    return (f"`runner ledger` takes no {options}: its commands take the ledger's location (a state directory or a"
            f" postgresql:// URL) as an argument — type: {typed}")


class LazyCommand(NamedTuple):
    """Where a command lives (``module``, ``attribute``) and its one-line help, for ``runner --help``.

    ``tests/unit/test_cli_lazy.py`` keeps ``short_help`` equal to the command's own.
    """

    module: str
    attribute: str
    short_help: str


class RunnerGroup(click.Group):
    """A click group that reads its global flags wherever they stand (see :func:`globals_first`) and imports
    a command's module only when that command is looked up (``lazy``: name → :class:`LazyCommand`)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        hint = location_hint(args)
        if hint is not None:
            raise click.UsageError(hint, ctx)
        try:
            return super().parse_args(ctx, globals_first(args))
        except click.NoSuchOption as exc:
            raise self._misplaced(ctx, args, exc) from None

    def _misplaced(self, ctx: click.Context, args: list[str], exc: click.NoSuchOption) -> click.UsageError:
        """An option before the command that the group does not take: the command's own (`runner --simulate run m`)
        is said to go after it; else "Did you mean" among the group's options and --state / --ledger too (a misspelt
        one of those is not moved after the command, so click knew only the group's)."""
        name = exc.option_name.split("=", 1)[0]
        command_name = next((word for word in args if not word.startswith("-") and word in self.list_commands(ctx)),
                            None)
        command = self.get_command(ctx, command_name) if command_name is not None else None
        if command is not None and any(name in param.opts for param in command.params):
            return click.UsageError(f"{name} is an option of `runner {command_name}`: give it after the command"
                                    f" (runner {command_name} … {name})", ctx)
        import difflib  # here: on a mistake only (start-up time)

        known = sorted({opt for param in self.params for opt in param.opts if opt.startswith("--")} | COMMAND_OPTIONS)
        return click.NoSuchOption(exc.option_name, possibilities=difflib.get_close_matches(name, known, n=2, cutoff=0.6),
                                  ctx=ctx)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        """As click's, but "Did you mean" looks among every command, not only those imported so far (one at most)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            import difflib  # here: on a mistake only (start-up time)

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=2, cutoff=0.6)
            meant = f" Did you mean {' or '.join(repr(each) for each in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{meant}")
        return super().resolve_command(ctx, args)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """As click's, but with ``--log-json`` click's own messages (a usage error) are a JSON line too."""
        words = globals_first(sys.argv[1:] if args is None else args)
        flags = words[: words.index("--")] if "--" in words else words
        if not standalone_mode or "--log-json" not in flags:
            return super().main(args, prog_name, complete_var, standalone_mode, **kwargs)
        try:
            code = super().main(args, prog_name, complete_var, False, **kwargs)
        except click.ClickException as exc:
            _json_line("error", f"error: {exc.format_message()}", exc_type=type(exc).__name__)
            sys.exit(exc.exit_code)
        except click.Abort:
            _json_line("error", "aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # an Exit (--help, --version) comes back as its code


    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self.lazy.get(cmd_name)
        if cmd_name not in self.commands and where is not None:
            command = getattr(importlib.import_module(where.module), where.attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of ``runner --help``, from the table for commands not imported yet."""
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None:
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=self.lazy[name].short_help).get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class OptionalValueCommand(click.Command):
    """A command whose options of an optional value (``status --watch [SECONDS]``) never take a word their type
    refuses: ``runner status --watch m.yaml`` watches m.yaml, where click gave --watch the manifest for its value
    ("'m.yaml' is not a valid float range", exit 2). Such a word is moved before the option, which then has none; a
    number stays its value, for click to say what is wrong with it (``--watch 0``: not in the range)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        optional = {opt: param for param in self.params if isinstance(param, click.Option) and not param.is_flag
                    and param._flag_needs_value for opt in param.opts}
        words = list(args)
        for at in range(len(words) - 1):
            if words[at] == "--":
                break
            param = optional.get(words[at])
            if param is not None and not words[at + 1].startswith("-") and not _number(words[at + 1]):
                try:
                    param.type.convert(words[at + 1], param, ctx)
                except click.BadParameter:
                    words[at], words[at + 1] = words[at + 1], words[at]
        return super().parse_args(ctx, words)


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _json_line(level: str, message: str, **fields: Any) -> None:
    """One JSON line on stderr in the shape of runner.reporting.logs.json_record (not imported: start-up time)."""
    from runner.reporting.json_lines import json_line  # a line break of any reader escaped, as every JSON line's

    record = {"ts": round(time.time(), 3), "level": level, "logger": "runner.cli", "message": message, **fields}
    sys.stderr.write(json_line(record) + "\n")
    sys.stderr.flush()
