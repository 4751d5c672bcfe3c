"""Benchmark of the safety events' cost through ingest (issue 22's acceptance figure): frames
stored/s by the ingest function with events vs without, side by side in one run.

Two functions-framework processes of the real ingest function share one database. They differ
only in the register map they read: "with" serves the default map, "without" the same map with
its `alarms` removed (ESS_SCHEMAS_DIR pointing at a copy of the packaged model), so no event is
derived and the writer's statement has no lock step. Rounds alternate which side goes first; each
round posts the same simulator frames to a fresh site of BANKS banks, second by second (each
second one poll of every bank, as a fleet sends them), 1 frame per message and 16 concurrent
pushes, as deployed (ingest group-commits the messages waiting): healthy banks, then banks with
every warning and fault bit on (standing alarms: every frame meets hundreds of active episodes).
Each round's first second (every bank's first poll, which raises the standing episodes) is
posted before the clock starts: raising hundreds of episodes per bank is a one-off.
One bank's frames arrive once a second in production; a benchmark that pushed one bank's hour
as fast as it can would measure the bank's lock, which serialises that bank's statements only.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .events import _frames
from .ingest import CLIENTS, _post_all, _push_bodies

ROUNDS = 5
BANKS = 50


def _model_without_alarms(work: Path) -> Path:
    """A copy of the packaged model whose default map declares no alarms."""
    import yaml
    from ess import paths

    dest = work / "model-without-alarms"
    shutil.copytree(paths.SCHEMAS_DIR, dest,
                    ignore=shutil.ignore_patterns("ess", "__pycache__", "*.py"))
    path = dest / "maps" / "default.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.pop("alarms", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _sites(work: Path, names: list[str]) -> Path:
    import yaml

    path = work / "sites.yaml"
    path.write_text(yaml.safe_dump({"sites": [
        {"site_id": s, "devices": [{"host": "127.0.0.1", "port": 15100 + i, "unit_id": b,
                                     "bank_id": b} for b in range(1, BANKS + 1)]}
        for i, s in enumerate(names)]}))
    return path


def _names(kinds: tuple[str, ...]) -> list[str]:
    return [f"{side}-{kind}-{r}" for kind in kinds for r in range(ROUNDS + 1)
            for side in ("with", "without")]


def _fleet(n: int, standing: bool) -> list:
    """n frames: n // BANKS seconds of polls of BANKS banks, second by second."""
    one = _frames(n // BANKS, standing)
    return [dataclasses.replace(f, bank_id=b) for f in one for b in range(1, BANKS + 1)]


def bench_events_ingest(cluster, n: int = 1000) -> list[dict]:
    """Ingest frames/s with events vs without (healthy bank, standing alarms)."""
    from ess.regmap import load_map
    from ess_local.functions import FunctionProcess
    from ess_local.procs import free_port

    from .ingest import INGEST_MAIN, _bench_database

    kinds = ("healthy", "standing")
    name, dsn = _bench_database(cluster, load_map("default"))
    work = Path(tempfile.mkdtemp(prefix="ess-bench-events-"))
    base = {k: _fleet(n, k == "standing") for k in kinds}
    shift = (int(time.time()) - 86400) * 1_000_000 - base["healthy"][0].poll_start_us
    rates: dict[tuple[str, str], list[float]] = {}
    try:
        env = {"ESS_DB_DSN": dsn, "ESS_SITES_CONFIG": str(_sites(work, _names(kinds))),
               "ESS_SINK": "bench", "ESS_QUARANTINE_BUCKET": str(work / "quarantine"),
               "ESS_EVENT_LOG": "off", "THREADS": str(CLIENTS)}
        without = {**env, "ESS_SCHEMAS_DIR": str(_model_without_alarms(work))}
        with FunctionProcess("ingest", INGEST_MAIN, free_port(), signature_type="cloudevent",
                             env=env, log_dir=work) as on, \
                FunctionProcess("ingest", INGEST_MAIN, free_port(), signature_type="cloudevent",
                                env=without, log_dir=work) as off:
            urls = {"with": on.url, "without": off.url}
            for kind in kinds:
                for r in range(ROUNDS + 1):          # round 0 warms up, not counted
                    order = ("with", "without") if r % 2 else ("without", "with")
                    for side in order:
                        frames = [dataclasses.replace(f, site_id=f"{side}-{kind}-{r}",
                                                      poll_start_us=f.poll_start_us + shift,
                                                      poll_end_us=f.poll_end_us + shift)
                                  for f in base[kind]]
                        bodies = _push_bodies(frames, 1)
                        _post_all(urls[side], bodies[:BANKS])   # the first second: the raises
                        fps = (n - BANKS) / _post_all(urls[side], bodies[BANKS:])
                        if r:
                            rates.setdefault((kind, side), []).append(fps)
    finally:
        cluster.drop_database(name)
        shutil.rmtree(work, ignore_errors=True)
    return [_row(kind, rates[(kind, "with")], rates[(kind, "without")], n) for kind in kinds]


def _row(kind: str, ours: list[float], base: list[float], n: int) -> dict:
    label = {"healthy": f"{BANKS} healthy banks",
             "standing": f"{BANKS} banks with standing alarms"}[kind]
    mid, ref = statistics.median(ours), statistics.median(base)
    return {"figure": f"events: ingest frames stored/s with events vs without ({label}, 1 frame "
                      f"per message, {CLIENTS} concurrent pushes)",
            "ours": mid, "baseline": ref, "unit": "frames/s", "target": ">= 90% of without",
            "higher_is_better": True,
            "note": f"events through ingest, {label}: two ingest function processes on one "
                    f"database, the default map vs the same map without alarms; median of "
                    f"{ROUNDS} alternating rounds of {n} frames a side ({n // BANKS} s of "
                    f"{BANKS} banks; the first second untimed); with "
                    f"{[round(r) for r in ours]}, without {[round(r) for r in base]} frames/s "
                    f"(ours/without = {mid / ref:.1%})"}
