"""The `ess` command. Other packages add subcommands through the `ess.cli` entry-point group."""

from __future__ import annotations

import argparse
import json
import sys

from . import command

# Entry points in this group name a register(subparsers) function (see pyproject.toml).
PLUGIN_GROUP = "ess.cli"
# Subcommands of this package: running one loads no plugin (their imports cost ~0.7 s).
BUILTIN = ("decode", "map", "db", "status", "events", "replay-dead-letters")


def _cmd_decode(args: argparse.Namespace) -> int:
    """Decode JSON-lines frames from stdin into JSON rows on stdout."""
    from .decode import DecodeError, decoder_for
    from .regmap import load_map

    decoder = decoder_for(load_map(args.map))
    failed = 0     # each refused line is told on stderr; the others are decoded
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            frame = json.loads(line)
            if not isinstance(frame, dict):
                raise DecodeError(f"expected a JSON object, got {type(frame).__name__}")
            rows = decoder.decode(frame, bank_id=args.bank_id)
        except json.JSONDecodeError as exc:
            print(f"ess decode: line {lineno}: not JSON: {exc}", file=sys.stderr)
            failed += 1
            continue
        except DecodeError as exc:
            print(f"ess decode: line {lineno}: {exc}", file=sys.stderr)
            failed += 1
            continue
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in rows))
    return command.FINDINGS if failed else command.OK


def _cmd_map_check(args: argparse.Namespace) -> int:
    from .plan import read_plan
    from .regmap import load_map

    m = load_map(args.file)
    reads = ", ".join(f"{r.block} {r.address}+{r.count}" for r in read_plan(m))
    print(f"{m.source}: map {m.map_id} v{m.version} is valid; reads: {reads}; "
          "a frame (ess decode's input): "
          + ", ".join(f"{b.name} {b.size_text}" for b in m.blocks))
    return 0


def _cmd_map_import(args: argparse.Namespace) -> int:
    from .regmap import parse_map
    from .regmap.csv_import import dump_map_yaml, map_from_csv

    doc = map_from_csv(args.csv, map_id=args.map_id, version=args.version)
    parse_map(doc, args.csv)
    sys.stdout.write(dump_map_yaml(doc))
    return 0


def _cmd_map_doc(args: argparse.Namespace) -> int:
    from .docgen import render_data_spec
    from .regmap import load_map

    text = render_data_spec(load_map(args.map))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


def _cmd_map_bigquery(args: argparse.Namespace) -> int:
    from .db.bigquery import project_maps, write_bigquery
    from .regmap import load_map

    maps = [load_map(m) for m in args.map] if args.map else project_maps()
    for path in write_bigquery(maps, args.out):
        print(path)
    return 0


DECODE_INPUT = """\
input (stdin): one frame a line, a JSON object with one key per block of the map: the block's
registers as read, from its start address, as integers 0..65535 (a coil or discrete-input
block: ceil(bits/16) words, its first address in bit 0 of the first word); null for a block
that could not be read. `ess map check MAP` prints each block's word count.
output (stdout): one JSON object a row: table, bank_id (rack_id for a rack), the map's columns.
exit: 0; 1 when a line was refused (each told on stderr with its line number); 2 on a bad map.

example (the SunSpec 802 map: one block M802 of 64 registers from 40070):
  python3 -c 'import json; print(json.dumps({"M802": [0] * 64}))' |
    ess decode --map examples/sunspec-802
"""


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The `ess` parser; `plugins=False` leaves out the entry points' subcommands."""
    parser = command.Parser(prog="ess", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("decode", help="decode raw frames (JSON lines on stdin) into rows",
                       description="Decode raw frames into rows, as ingest does, to debug a "
                       "device or a map.", epilog=DECODE_INPUT,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank-id", type=int, default=1, help="bank_id of the rows (default 1)")
    p.add_argument("--map", default="default",
                   help="map id in schemas/maps (e.g. examples/pcs-meter) or a file path")
    p.set_defaults(func=_cmd_decode)

    pm = sub.add_parser("map", help="register map tools").add_subparsers(dest="map_cmd",
                                                                          required=True)
    p = pm.add_parser("check", help="validate a map file; print its read plan and frame layout")
    p.add_argument("file")
    p.set_defaults(func=_cmd_map_check)
    p = pm.add_parser("import-csv", help="convert a register CSV (spec format) to map YAML")
    p.add_argument("csv")
    p.add_argument("--map-id", default="default")
    p.add_argument("--version", type=int, default=1)
    p.set_defaults(func=_cmd_map_import)
    p = pm.add_parser("doc", help="render the data-spec Markdown for a map")
    p.add_argument("--map", default="default")
    p.add_argument("--out", default="-", help="file to write (default: stdout)")
    p.set_defaults(func=_cmd_map_doc)
    p = pm.add_parser("bigquery", help="write the BigQuery schemas of the export files")
    p.add_argument("--map", action="append", help="map name or file (default: schemas/maps/*)")
    p.add_argument("--out", default="schemas/bigquery", help="directory (one <table>.json each)")
    p.set_defaults(func=_cmd_map_bigquery)

    from .db import cli as db_cli

    db_cli.register(sub)
    from .status import cli as status_cli

    status_cli.register(sub)
    from .events import cli as events_cli

    events_cli.register(sub)
    from . import replay

    replay.register(sub)
    if plugins:
        from importlib.metadata import entry_points

        for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
            plugin.load()(sub)
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser sets `_prog` ("ess map check"), its errors' prefix."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                p.set_defaults(_prog=p.prog)
                _name_commands(p)


def main(argv: list[str] | None = None) -> int:
    """The `ess` command: an exit code (ess.command), a user's mistake told in one line."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(plugins=not (argv and argv[0] in BUILTIN)).parse_args(argv)
    return command.run(args._prog, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
