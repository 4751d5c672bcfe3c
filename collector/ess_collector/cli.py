"""`ess collect` and `ess simulate` (registered into the `ess` command by ess.cli)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


def _cmd_collect(args: argparse.Namespace) -> int:
    """A missing or invalid config is told in one line by ess.command (exit 2) before logging
    starts; nothing is created."""
    from ess import command
    from ess.logs import setup_logging

    from .config import load_config
    from .service import Collector

    path = command.config_path(args)
    if not path:
        raise command.UsageError("no configuration: pass --config sites.yaml or set "
                                 "ESS_SITES_CONFIG")
    sites, settings = load_config(path)
    setup_logging("collector")

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Collector(sites, settings).run(stop, max_ticks=args.ticks)

    from google.auth.exceptions import DefaultCredentialsError

    # The modules and config loaded so far live as long as the process: frozen out of the
    # garbage collector, a full collection (~40 ms of them) no longer eats a device's timeout.
    gc.freeze()
    try:
        asyncio.run(go())
    except DefaultCredentialsError as exc:
        sys.stderr.write(f"ess collect: no Google credentials for Pub/Sub ({exc}); set "
                         "PUBSUB_EMULATOR_HOST for the emulator\n")
        return 2
    _exit_if_stuck()
    return 0


def _exit_if_stuck() -> None:
    """Leave even if client threads still retry (Pub/Sub unreachable): the spool has it all."""
    import threading

    stuck = [t.name for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        log.warning("exiting with client threads still busy: %s", ", ".join(stuck))
        logging.shutdown()
        os._exit(0)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ess.logs import setup_logging

    from .simulator.server import serve_from_args

    setup_logging("simulator")
    return serve_from_args(args)


def register(sub) -> None:
    """Add `collect` and `simulate` to the `ess` command."""
    p = sub.add_parser("collect", help="poll the configured ESS devices and publish frames")
    from ess import command

    command.add_config_option(p, "required")
    p.add_argument("--ticks", type=int, help="stop after this many polls per device")
    p.set_defaults(func=_cmd_collect)

    from .simulator.server import add_arguments

    p = sub.add_parser("simulate", help="serve simulated ESS banks over Modbus TCP")
    add_arguments(p)
    p.set_defaults(func=_cmd_simulate)
