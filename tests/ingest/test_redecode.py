"""The raw archive replays into identical rows, and a changed map rewrites them."""

from __future__ import annotations

from datetime import timedelta

from ess.cli import main as ess_main
from ess.paths import MAPS_DIR
from ess.regmap import load_map_file
from ess_functions.archive.layout import decode_records
from ess_functions.objstore import open_store
from ess_local.archiver import Archiver

from .conftest import ARCHIVE_BUCKET
from .helpers import count_rows, expected_rows, make_frames, stored_rows, wait_for


def test_redecode_reproduces_rows_and_applies_a_changed_map(stack, pipe, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", stack.gcs.endpoint)
    archive_sub = pipe.archive_subscription()
    frames = make_frames("redecode", 12) + make_frames("redecode", 6, bank=2)
    for i in range(0, len(frames), 3):
        pipe.publish(frames[i:i + 3])
    pipe.publish_raw(b"not a frame", site_id="redecode")       # archived, skipped on replay
    n = len(frames) * 11
    wait_for(lambda: count_rows(stack.dsn["main"], "redecode") == n, 30, "rows in main")

    source = f"gs://{ARCHIVE_BUCKET}/{pipe.topic}/frames/"
    archived = Archiver(archive_sub, source, subscriber=stack.pubsub.admin.subscriber,
                        max_duration=3).drain()
    assert archived == 7
    store = open_store(source)
    names = store.list()
    assert names and all(n.endswith(".avro") and n[:10] == names[0][:10] for n in names)
    records = [r for n in names for r in decode_records(store.get(n))]
    assert len(records) == 7 and all(r.message_id and r.publish_time for r in records)

    dsn = stack.clusters["main"].create_database(f"redecode_{pipe.topic[-8:].replace('-', '_')}",
                                                 timescale=True)
    poll = [f.poll_start for f in frames]
    args = ["redecode", "--source", source, "--dsn", dsn, "--sites", str(stack.sites_path),
            "--since", (min(poll) - timedelta(seconds=1)).isoformat(),
            "--until", (max(poll) + timedelta(seconds=1)).isoformat()]
    assert ess_main(args) == 0
    out = capsys.readouterr()
    assert f"{len(frames)} frames, {n}/{n} rows new" in out.out
    assert "undecodable_frame 1" in out.out
    assert "redecode" in out.err          # the tqdm progress bar
    want = expected_rows(frames)
    assert stored_rows(dsn, "redecode") == want == stored_rows(stack.dsn["main"], "redecode")

    assert ess_main(args + ["-q"]) == 0   # idempotent: nothing new
    assert f"0/{n} rows new" in capsys.readouterr().out
    assert stored_rows(dsn, "redecode") == want

    # a narrower range stores only its frames (here: nothing new)
    narrow = ["--since", poll[3].isoformat(), "--until", poll[5].isoformat()]
    assert ess_main(args[:-4] + narrow + ["-q"]) == 0
    assert "4 frames" in capsys.readouterr().out

    assert ess_main(["db", "rollup", "--dsn", dsn]) == 0     # rollups of the old values
    capsys.readouterr()
    text = (MAPS_DIR / "default.yaml").read_text()
    line = next(x for x in text.splitlines() if '"column": "bank_soc"' in x)
    changed = tmp_path / "default-fixed.yaml"
    changed.write_text(text.replace(line, line.replace('"scale": 0.1', '"scale": 0.01')))
    new_map = load_map_file(changed)
    assert ess_main(args + ["--map", str(changed), "-q"]) == 0
    assert f"{n}/{n} rows rewritten" in capsys.readouterr().out
    got = stored_rows(dsn, "redecode")
    assert got == expected_rows(frames, new_map) != want
    assert all(round(got["bank"][k]["bank_soc"] * 10, 3) == round(v["bank_soc"], 3)
               for k, v in want["bank"].items())
    assert _stale_rollups(dsn) == 0       # the rewrite recomputed the rollups of its window


def _stale_rollups(dsn: str) -> int:
    """1-minute rollups whose max SOC is not the raw rows' (after a rewrite)."""
    from ess.db.connect import connect_dsn

    conn = connect_dsn(dsn)
    cur = conn.cursor()
    cur.execute("SELECT count(*), count(*) FILTER (WHERE m.bank_soc_max IS DISTINCT FROM r.mx) "
                "FROM bank_1m m JOIN (SELECT date_trunc('minute', ts) AS b, site_id, bank_id, "
                "max(bank_soc) AS mx FROM bank GROUP BY 1, 2, 3) r ON r.b = m.bucket "
                "AND r.site_id = m.site_id AND r.bank_id = m.bank_id")
    total, stale = cur.fetchone()
    conn.close()
    assert total > 0
    return stale
