"""The ledger tells apart why blocks failed (mismatched reply, timeout, exception, bad CRC,
transport, skipped) and `ess status --json` counts them per bank, by kind."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import yaml
from ess.cli import main
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.regmap import load_map

M = load_map("default")
DAY = date(2025, 7, 1)
T0 = int(datetime(2025, 7, 1, 8, 0, tzinfo=UTC).timestamp()) * 1_000_000
KINDS = [("PCS", BlockData(BlockStatus.MISMATCHED_REPLY)), ("PCS", BlockData(BlockStatus.BAD_CRC)),
         ("BMS2", BlockData(BlockStatus.TIMEOUT)), ("ETC", BlockData(BlockStatus.EXCEPTION,
                                                                     exception_code=4)),
         ("PCS", BlockData(BlockStatus.MISMATCHED_REPLY)), ("BMS1", BlockData(BlockStatus.SKIPPED))]


def _frame(bank: int, i: int, failed: list) -> Frame:
    blocks = {b.name: BlockData(registers=bytes(2 * b.count)) for b in M.blocks}
    for name, block in failed:
        blocks[name] = block
    return Frame("site-a", bank, i + 1, T0 + i * 1_000_000, T0 + i * 1_000_000 + 20_000,
                 "default", 1, blocks)


def test_failed_blocks_by_kind_per_bank(timescale_db, tmp_path, capsys):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    frames = [_frame(1, i, [k]) for i, k in enumerate(KINDS)]
    frames += [_frame(2, i, []) for i in range(3)]
    frames.append(_frame(2, 3, [("PCS", BlockData(BlockStatus.TRANSPORT)),
                                ("ETC", BlockData(BlockStatus.TRANSPORT))]))
    write_frames(conn, frames, {M.key: M})
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pcs WHERE bank_id = 1")      # a failed block: no row
    assert cur.fetchone()[0] == len(KINDS) - 3
    conn.close()
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump({"sites": [{"site_id": "site-a", "timezone": "UTC", "devices": [
        {"host": "127.0.0.1", "port": 5020, "bank_id": 1},
        {"host": "127.0.0.1", "port": 5021, "bank_id": 2}]}]}))
    main(["status", "--dsn", timescale_db, "--sites", str(sites), "--date", DAY.isoformat(),
          "--json"])
    doc = json.loads(capsys.readouterr().out)
    banks = {b["bank_id"]: b["failed_by_kind"] for b in doc["banks"]}
    assert banks == {1: {"bad_crc": 1, "exception:4": 1, "mismatched_reply": 2, "skipped": 1,
                         "timeout": 1}, 2: {"transport": 2}}
    days = {d["bank_id"]: d for d in doc["days"]}
    assert days[1]["failed"]["PCS:mismatched_reply"] == 2
    assert days[1]["failed_by_kind"] == banks[1] and days[1]["failed_polls"] == len(KINDS)
    assert days[2]["failed_by_kind"] == {"transport": 2} and days[2]["failed_polls"] == 1
    main(["status", "--dsn", timescale_db, "--sites", str(sites), "--date", DAY.isoformat()])
    assert "failed blocks: bad_crc x1, exception:4 x1, mismatched_reply x2" in \
        capsys.readouterr().out
