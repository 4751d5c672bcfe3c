"""Registers `ess redecode`, `ess export` and `ess retention` (each in its own module)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this package's subcommands to the `ess` CLI."""
    from .archive import cli as redecode_cli
    from .export import cli as export_cli
    from .export import retention_cli

    redecode_cli.register(sub)
    export_cli.register(sub)
    retention_cli.register(sub)
