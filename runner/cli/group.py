"""The `runner` group: its global flags (-v, -q, --log-json) are accepted after the subcommand too,
and its commands are imported only when one is run (start-up time: issue 14).

`runner run m.yaml -q` means `runner -q run m.yaml`: before click parses, a global flag found among a
subcommand's words is moved in front of the subcommand. Words after `--` are arguments and stay.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import click

__all__ = ["GLOBAL_FLAGS", "LazyCommand", "RunnerGroup", "globals_first"]

GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--log-json"})


def globals_first(args: Sequence[str]) -> list[str]:
    """``args`` with the global flags that follow the subcommand moved in front of it (none after ``--``)."""
    words = list(args)
    command_at = next((i for i, word in enumerate(words) if word == "--" or not word.startswith("-")), None)
    if command_at is None or words[command_at] == "--":
        return words
    head, command, rest = words[:command_at], words[command_at], words[command_at + 1:]
    moved: list[str] = []
    kept: list[str] = []
    for index, word in enumerate(rest):
        if word == "--":
            kept.extend(rest[index:])
            break
        (moved if word in GLOBAL_FLAGS else kept).append(word)
    return [*head, *moved, command, *kept]


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
        return super().parse_args(ctx, globals_first(args))

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
