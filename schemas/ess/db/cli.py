"""`ess db ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    """Add `ess db` to the CLI."""
    p = sub.add_parser("db", help="database schema tools")
    p.set_defaults(func=lambda a: p.print_help() or 2)
