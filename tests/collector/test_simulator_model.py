"""The simulator behaves like an LFP bank and serves what `registers_at` says."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from collector_support import free_ports
from ess.decode import decoder_for
from ess.regmap import load_map
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.model import BankModel, registers_at
from ess_collector.simulator.server import Simulator, start_servers
from pymodbus.client import AsyncModbusTcpClient

from tests.bench.collector_sim import start_fast_servers

MAP = load_map("default")
T0 = 1_790_000_000


def test_sanity_100_seconds_in_range_and_soc_follows_power():
    dec = decoder_for(MAP)
    total = out = 0
    for bank in (1, 2, 3):
        socs, powers = [], []
        for t in range(T0, T0 + 100):
            rows = dec.decode(registers_at(bank, t), bank_id=bank)
            for row in rows:
                n = sum(1 for k in row if k not in ("table", "bank_id", "rack_id",
                                                      "out_of_range"))
                total += n
                out += len(row["out_of_range"])
            bank_row = rows[0]
            socs.append(bank_row["bank_soc"])
            powers.append(bank_row["bank_power"])
        # SOC integrates power: positive (discharge) power lowers SOC
        m = BankModel(bank)
        energy = sum(powers) / 3600.0                       # kWh delivered over 100 s
        assert abs((socs[-1] - socs[0]) + energy / m.energy * 100) < 0.25
        exact = [m.soc(t + 1) - m.soc(t) for t in range(T0, T0 + 100)]
        assert all(np.sign(d) == -np.sign(m.power(t + 0.5)) or abs(m.power(t + 0.5)) < 1
                   for d, t in zip(exact, range(T0, T0 + 100), strict=True))
    assert out / total <= 0.01, f"{out} of {total} decoded values out of range"


def test_registers_are_consistent_and_in_device_polarity():
    blocks = registers_at(1, T0)
    bms1, bms2 = blocks["BMS1"], blocks["BMS2"]
    for r in range(8):
        base = 9 + 16 * r
        vmax, vmin, gap, avg = bms1[base + 4], bms1[base + 6], bms1[base + 8], bms1[base + 9]
        assert vmin <= avg <= vmax and gap == vmax - vmin
        assert 1 <= bms1[base + 5] <= 240 and 1 <= bms1[base + 7] <= 240
        tmax, tmin, tgap = bms1[base + 10], bms1[base + 12], bms1[base + 14]
        assert tgap == tmax - tmin
    assert bms1[4] == max(bms1[9 + 16 * r + 4] for r in range(8))
    # inverted registers (221..229, 233) are served as the device reports them: OK = 1
    assert [bms2[a - 200] for a in (*range(221, 230), 233)] == [1] * 10
    # negative currents are two's complement
    m = BankModel(1)
    t_charge = next(t for t in range(T0, T0 + 20000, 50) if m.power(t) < -50)
    assert registers_at(1, t_charge)["BMS1"][3] >= 32768


def test_deterministic_per_seed_and_bank():
    assert registers_at(2, T0, seed=7) == registers_at(2, T0, seed=7)
    assert registers_at(2, T0, seed=7) != registers_at(2, T0, seed=8)
    assert registers_at(1, T0) != registers_at(2, T0)


def test_servers_serve_registers_at_with_faults():
    """The simulator (and the benchmarks' fast FC4 server) answer over real TCP with the
    second's registers; faults apply per bank."""
    async def go(start) -> None:
        plan = FaultPlan([Fault("exception", bank=2, block="PCS", code=4),
                          Fault("wild", bank=2, block="ETC", count=2)], seed=0, t0=time.time())
        sim = Simulator(2, 0, plan)
        port = free_ports(2)
        servers = await start(sim, port)
        try:
            for bank in (1, 2):
                c = AsyncModbusTcpClient("127.0.0.1", port=port + bank - 1, timeout=2,
                                         retries=0, reconnect_delay=0)
                await c.connect()
                for _ in range(3):
                    t = int(time.time())
                    r1 = await c.read_input_registers(0, count=125, device_id=1)
                    r2 = await c.read_input_registers(600, count=5, device_id=1)
                    r3 = await c.read_input_registers(500, count=89, device_id=1)
                    if int(time.time()) == t:
                        break
                expected = sim.registers_at(bank, t)
                assert r1.registers == expected["BMS1"][:125]
                assert r2.registers == expected["ETC"]
                if bank == 1:
                    assert expected == registers_at(1, t)
                    assert r3.registers == expected["PCS"]
                else:
                    assert r3.isError() and r3.exception_code == 4
                    assert expected["ETC"] != registers_at(2, t)["ETC"]
                c.close()
        finally:
            for s in servers:
                await s.shutdown() if hasattr(s, "shutdown") else s.close()

    asyncio.run(go(start_servers))
    asyncio.run(go(start_fast_servers))
