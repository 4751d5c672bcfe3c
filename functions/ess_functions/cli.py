"""Registers `ess redecode` and `ess export` (each lives in its own module)."""

from __future__ import annotations

import importlib

_MODULES = ("ess_functions.redecode_cli", "ess_functions.export_cli")


def register(sub) -> None:
    """Add this package's subcommands to the `ess` CLI."""
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
