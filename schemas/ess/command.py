"""What every `ess` command shares at its boundary: the exit codes, a mistake told in one line
(no traceback), the sites-config option, and how a command opens the database.

Exit codes (docs/architecture.md, "Exit codes of `ess`"): 0 done; 1 done, and the result reports
a problem (FINDINGS); 2 the input is wrong: usage, a file, a map, the sites config, a request
(MISTAKE: a PermanentError); 3 a service is unavailable, rerun later (UNAVAILABLE: a
TransientError, e.g. the database or the object store); 130 interrupted. Anything else, with a
traceback, is a bug.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

from .errors import EssError, PermanentError

OK, FINDINGS, MISTAKE, UNAVAILABLE, INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(PermanentError):
    """The command line (or the environment standing in for it) is wrong."""

    reason = "bad_usage"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: `ess decode: unrecognized arguments: --x (see
    `ess decode --help`)`, exit 2. Subcommands' parsers are of this class too."""

    def error(self, message: str, prog: str | None = None):
        prog = prog or self.prog
        self.exit(MISTAKE, f"{prog}: {message} (see `{prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, with unknown arguments told by the (sub)command that got them."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}",
                       getattr(ns, "_prog", None))
        return ns


def one_line(exc: BaseException) -> str:
    """The error's text on one line: a map's or config's problems (`- ` items below a head
    line) joined with '; ' after the head."""
    head, *items = (str(exc).strip() or type(exc).__name__).splitlines()
    items = [i.strip().removeprefix("- ") for i in items if i.strip()]
    if not items:
        return head
    return re.sub(r": 1 problem\(s\)$", "", head) + ": " + "; ".join(items)


def _database_error(exc: BaseException) -> tuple[int, str] | None:
    """A server's or the driver's error (exit 3 when retrying may help, else 2)."""
    from .db import pg
    from .db.connect import is_transient

    if not isinstance(exc, pg.DatabaseError | pg.InterfaceError):
        return None
    code = UNAVAILABLE if is_transient(exc) else MISTAKE
    state = pg.sqlstate(exc)
    message = pg.server_message(exc) or one_line(exc)
    return code, f"database: {message}" + (f" (SQLSTATE {state})" if state else "")


def outcome(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for an error a user can act on; None for a bug."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, EssError):
        return (UNAVAILABLE if exc.transient else MISTAKE), one_line(exc)
    if isinstance(exc, OSError) and exc.filename is not None:   # a file named by the user
        return MISTAKE, f"{exc.filename}: {exc.strerror or one_line(exc)}"
    if "pg8000" in sys.modules:
        return _database_error(exc)
    return None


def run(command: str, func: Callable[[argparse.Namespace], int | None],
        args: argparse.Namespace) -> int:
    """Run one command; a user's mistake becomes `<command>: <problem>` on stderr and its code."""
    try:
        return func(args) or OK
    except BrokenPipeError:             # `ess decode ... | head`: the reader has gone
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes it at exit
        return OK
    except (Exception, KeyboardInterrupt) as exc:
        told = outcome(exc)
        if told is None:
            raise
        print(f"{command}: {told[1]}", file=sys.stderr)
        return told[0]


def add_config_option(p: argparse.ArgumentParser, what: str) -> None:
    """`--config FILE`, the sites config (sites.yaml), in every command that reads one; `--sites`
    is a hidden alias (the older name of `ess status` and `ess redecode`)."""
    p.add_argument("--config", metavar="SITES_YAML",
                   help=f"sites config, sites.yaml (default: $ESS_SITES_CONFIG); {what}")
    p.add_argument("--sites", dest="config", help=argparse.SUPPRESS)


def config_path(args: argparse.Namespace) -> str | None:
    """--config, else $ESS_SITES_CONFIG, else None."""
    # e.g. ESS_SITES_CONFIG=/etc/ess/sites.yaml
    return args.config or os.environ.get("ESS_SITES_CONFIG") or None


def connect(dsn: str | None, read_timeout: float | None = None):
    """The database of a command: --dsn, else ESS_DB_DSN or ESS_DB_INSTANCE. No database named or
    a malformed DSN is the user's mistake (UsageError); an unreachable one DatabaseUnavailable."""
    from .db.connect import connect as open_db

    if not (dsn or os.environ.get("ESS_DB_DSN") or os.environ.get("ESS_DB_INSTANCE")):
        raise UsageError("no database: pass --dsn postgresql://... or set ESS_DB_DSN")
    try:
        return open_db(dsn, read_timeout=read_timeout)
    except ValueError as exc:      # not a DSN (never echoed: it may hold a password)
        raise UsageError(f"bad database DSN: {exc}") from exc
