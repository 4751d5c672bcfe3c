"""The monthly cost model of docs/scaling.md: `python -m tests.bench.cost_model` prints its tables.

Inputs are the measured figures of docs/benchmarks.md (named below) and list prices (PRICES:
source and date each). A site is 10 banks polled at 1 Hz; a month is 30 days. Every number is an
estimate of the order of magnitude, not a quote: prices differ by region (Seoul is dearer than
Iowa), discounts (committed use, sustained use) are left out, and so are the collector VM,
network egress and logging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MONTH_S = 30 * 86400
BANKS = 10

# Measured (docs/benchmarks.md, `make bench`; the run on the date in that file).
WIRE_BYTES_PER_FRAME = 1082        # codec body per frame, 10-frame messages (bench_wire_bytes)
WIRE_BYTES_COMPRESSED = 299        # the same, compressed codec (bench_wire_bytes)
MESSAGE_OVERHEAD = 140             # attributes + 20 B timestamp + message id, per message
DB_BYTES_PER_FRAME = 2974          # 11 rows + ledger row, all indexes incl. committed (bench)
ROLLUP_1M_BYTES_PER_BANK_MINUTE = 7700    # bank_1m + rack_1m + pcs_1m + etc_1m rows
PARQUET_BYTES_PER_FRAME = 187      # export, Parquet (bench_export)
CSV_BYTES_PER_FRAME = 1988         # export, CSV (bench_export)
AVRO_BYTES_PER_FRAME = 1100        # raw archive: the message body and attributes in Avro
FN_CPU_MS_PER_MESSAGE = 4.73       # ingest function CPU per 10-frame message (bench fleet)
DB_CPU_US_PER_FRAME = 479          # database CPU per stored frame (bench fleet)
ROLLUP_SHARE = 0.25                # the rollup job's database time per frame (~120 us, bench
                                   # rollup) over the database's ingest CPU per frame


@dataclass(frozen=True)
class Price:
    value: float
    unit: str
    source: str


# List prices in USD, us-central1 / Tier 1 regions, as the search tool's stored copies show
# them (pages dated 2025-02 to 2026-06; see docs/scaling.md "Prices").
RUN, SQL = "cloud.google.com/run/pricing", "usage.ai Cloud SQL pricing, May 2026"
PRICES = {
    "pubsub_tib": Price(40.0, "per TiB published or delivered", "cloud.google.com/pubsub/pricing"),
    "run_vcpu_s": Price(0.000024, "per vCPU-second (request-based)", RUN),
    "run_gib_s": Price(0.0000025, "per GiB-second (request-based)", RUN),
    "run_requests_m": Price(0.40, "per million requests", RUN),
    "sql_vcpu_h": Price(0.0413, "per vCPU-hour, Enterprise", SQL),
    "sql_gb_h": Price(0.007, "per GB-hour of memory, Enterprise", SQL),
    "sql_ssd_gb": Price(0.17, "per GB-month, SSD", "infracost price data (Cloud SQL Storage SSD)"),
    "gcs_standard_gb": Price(0.020, "per GB-month, Standard", "cloud.google.com/storage/pricing"),
    "gcs_nearline_gb": Price(0.010, "per GB-month, Nearline", "cloud.google.com/storage/pricing"),
    "bq_tib": Price(6.25, "per TiB scanned, on demand", "cloud.google.com/bigquery/pricing"),
}


def tiers(sites: int) -> dict:
    """Retention and Cloud SQL size for a fleet (what docs/scaling.md recommends)."""
    if sites <= 10:
        return {"raw_days": 30, "minute_days": 730, "vcpu": 2, "gb": 7.5}
    if sites <= 100:
        return {"raw_days": 30, "minute_days": 365, "vcpu": 4, "gb": 15}
    return {"raw_days": 7, "minute_days": 90, "vcpu": 16, "gb": 60}


def db_gb(sites: int, raw_days: int, minute_days: int, years: float = 1.0) -> float:
    """Steady-state database size (GB) of a fleet under the tiers, hour rollups after `years`."""
    banks = sites * BANKS
    raw = banks * 86400 * raw_days * DB_BYTES_PER_FRAME
    minute = banks * 1440 * minute_days * ROLLUP_1M_BYTES_PER_BANK_MINUTE
    hour = banks * 24 * 365 * years * ROLLUP_1M_BYTES_PER_BANK_MINUTE
    return (raw + minute + hour) / 1e9


def monthly(sites: int, compressed: bool = False) -> dict[str, float]:
    """USD per month by service for `sites` sites (two databases: main and replica)."""
    p = {k: v.value for k, v in PRICES.items()}
    t = tiers(sites)
    frames = sites * BANKS * MONTH_S
    messages = sites * MONTH_S                     # one 10-frame message per site and second
    body = WIRE_BYTES_COMPRESSED if compressed else WIRE_BYTES_PER_FRAME
    wire = (frames * body + messages * MESSAGE_OVERHEAD) * 4   # publish, 2 pushes, archive
    pubsub = max(0.0, wire / 2**40 - 10 / 1024) * p["pubsub_tib"]
    pushes = 2 * messages
    busy_s = pushes * FN_CPU_MS_PER_MESSAGE / 1000 / 0.6      # instances at 60% CPU
    run = busy_s * (p["run_vcpu_s"] + 0.5 * p["run_gib_s"]) + pushes / 1e6 * p["run_requests_m"]
    db_cpu = frames / MONTH_S * DB_CPU_US_PER_FRAME * (1 + ROLLUP_SHARE) / 1e6
    vcpu = max(t["vcpu"], 2 * math.ceil(db_cpu))             # busy at most half the time
    sql = 2 * 730 * (vcpu * p["sql_vcpu_h"] + t["gb"] * p["sql_gb_h"])
    sql_disk = 2 * db_gb(sites, t["raw_days"], t["minute_days"]) * p["sql_ssd_gb"]
    month_files = frames * (PARQUET_BYTES_PER_FRAME + AVRO_BYTES_PER_FRAME *
                            (WIRE_BYTES_COMPRESSED / WIRE_BYTES_PER_FRAME if compressed else 1))
    gcs = 12 * month_files / 1e9 * p["gcs_nearline_gb"]      # after a year, mostly Nearline
    bq = 10 * frames * PARQUET_BYTES_PER_FRAME / 2**40 * p["bq_tib"]   # 10 scans of a month
    return {"Pub/Sub": pubsub, "Cloud Run": run, "Cloud SQL compute": sql,
            "Cloud SQL storage": sql_disk, "Cloud Storage (after a year)": gcs,
            "BigQuery (10 month-scans)": bq}


def render() -> str:
    out = ["| service | 10 sites | 100 sites | 1,000 sites |", "|---|---|---|---|"]
    costs = {n: monthly(n) for n in (10, 100, 1000)}
    for k in costs[10]:
        out.append(f"| {k} | " + " | ".join(f"${costs[n][k]:,.0f}" for n in costs) + " |")
    out.append("| **total** | " + " | ".join(f"**${sum(c.values()):,.0f}**"
                                               for c in costs.values()) + " |")
    zipped = {n: monthly(n, compressed=True) for n in (10, 100, 1000)}
    out.append("| total, compressed frames | " + " | ".join(
        f"${sum(c.values()):,.0f}" for c in zipped.values()) + " |")
    out += ["", "| fleet | raw days | 1-minute days | database size (GB, each of 2) |",
            "|---|---|---|---|"]
    for n in (10, 100, 1000):
        t = tiers(n)
        out.append(f"| {n} sites | {t['raw_days']} | {t['minute_days']} | "
                   f"{db_gb(n, t['raw_days'], t['minute_days']):,.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
