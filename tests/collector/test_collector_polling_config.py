"""Polling settings per device or per gateway (framing, pacing, read size, shared connections):
defaults from the schema, precedence, and every bad combination refused naming the field."""

from __future__ import annotations

import pytest
from ess.sites import ConfigError, parse_sites
from ess_collector.config import collector_settings
from ess_collector.polling import polling_defaults
from ess_collector.service import make_pollers

HOST = "127.0.0.1"


def _settings(devices: list[dict], gateways: list[dict] | None = None, **collector):
    doc = {"sites": [{"site_id": "site-a", "devices": devices}],
           "collector": {"topic": "projects/p/topics/t", "gateways": gateways or [],
                         **collector}}
    sites = parse_sites(doc)
    return sites, collector_settings(sites, env={})


def _dev(bank: int, port: int = 5020, **extra) -> dict:
    return {"host": HOST, "port": port, "unit_id": bank, "bank_id": bank, **extra}


def _problems(devices, gateways=None, **collector) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _settings(devices, gateways, **collector)
    return err.value.problems


def test_defaults_gateway_and_device_precedence():
    assert polling_defaults() == {"shared_connection": False, "framing": "tcp",
                                  "pause_between_requests": 0, "pause_after_connect": 0,
                                  "max_registers_per_read": 125}
    gw = {"host": HOST, "port": 5020, "shared_connection": True, "framing": "rtu",
          "pause_between_requests": 0.01, "max_registers_per_read": 100}
    sites, s = _settings([_dev(1), _dev(2, max_registers_per_read=60), _dev(3, port=5021)],
                         [gw])
    p1, p2, p3 = (s.polling[f"site-a/bank{b}"] for b in (1, 2, 3))
    assert (p1.framing, p1.shared_connection, p1.pause_between_requests,
            p1.max_registers_per_read) == ("rtu", True, 0.01, 100)
    assert p2.max_registers_per_read == 60 and p2.framing == "rtu"
    assert p3 == type(p3)(**polling_defaults())
    pollers = make_pollers(sites, s)
    assert pollers[0].gateway is pollers[1].gateway and pollers[0].gateway.shared
    assert pollers[2].gateway is not pollers[0].gateway and not pollers[2].gateway.shared
    assert max(r.count for r in pollers[1].plan) == 60
    assert max(r.count for r in pollers[0].plan) == 100


@pytest.mark.parametrize(("devices", "gateways", "field"), [
    ([_dev(1, framing="ascii")], None, "sites[0].devices[0].framing"),
    ([_dev(1, max_registers_per_read=126)], None, "sites[0].devices[0].max_registers_per_read"),
    ([_dev(1, pause_between_requests=-1)], None, "sites[0].devices[0].pause_between_requests"),
    ([_dev(1, pause_after_connect=1.0)], None, "sites[0].devices[0].pause_after_connect"),
    ([_dev(1)], [{"host": HOST, "port": 5020, "pause_between_requests": 1.5}],
     "sites[0].devices[0].pause_between_requests"),
    ([_dev(1)], [{"host": HOST, "port": 6000}], "collector.gateways[0]"),
    ([_dev(1)], [{"host": HOST, "port": 5020}, {"host": HOST, "port": 5020}],
     "collector.gateways[1]"),
    ([_dev(1)], [{"host": HOST, "port": 5020, "shared": True}], "collector.gateways[0].shared"),
    ([_dev(1, shared_connection=True), _dev(2, shared_connection=True, framing="rtu")], None,
     "sites[0].devices[1].framing"),
    ([_dev(1, shared_connection=True), _dev(2)], None, "sites[0].devices[1].shared_connection"),
    ([_dev(1)], [{"host": HOST, "port": 5020, "shared_connection": True}], None),
    ([_dev(1, unit_id=0, framing="rtu")], None, "sites[0].devices[0].unit_id"),  # broadcast
    ([_dev(1, unit_id=248)], [{"host": HOST, "port": 5020, "framing": "rtu"}],
     "sites[0].devices[0].unit_id"),                                          # reserved
    ([_dev(1, unit_id=0)], None, None),             # Modbus TCP: 0 addresses the server itself
    ([_dev(1, unit_id=247, framing="rtu")], None, None),
])
def test_bad_polling_settings_name_the_field(devices, gateways, field):
    if field is None:                                       # a valid one, for contrast
        _settings(devices, gateways)
        return
    problems = _problems(devices, gateways)
    assert any(p.startswith(field) for p in problems), problems


def test_a_read_limit_below_the_widest_value_is_refused():
    meter = _dev(1, map="examples/pcs-meter", max_registers_per_read=3)
    problems = _problems([meter])
    assert any(p.startswith("sites[0].devices[0].max_registers_per_read: the value at address ")
               and "is wider than 3 registers" in p for p in problems), problems
    _settings([dict(meter, max_registers_per_read=4)])
