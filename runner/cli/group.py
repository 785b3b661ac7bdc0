"""The `runner` group: its global flags (-v, -q, --log-json) are accepted after the subcommand too.

`runner run m.yaml -q` means `runner -q run m.yaml`: before click parses, a global flag found among a
subcommand's words is moved in front of the subcommand. Words after `--` are arguments and stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

__all__ = ["GLOBAL_FLAGS", "RunnerGroup", "globals_first"]

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


class RunnerGroup(click.Group):
    """A click group that reads its global flags wherever they stand (see :func:`globals_first`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, globals_first(args))
