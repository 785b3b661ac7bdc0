"""Command line interface (placeholder until the engine lands)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """runner — pay for each video once."""
