"""A bad configuration is refused with a message naming the field; `ess collect` exits non-zero."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from ess.sites import ConfigError, parse_sites
from ess_collector.config import collector_settings

TOPIC = "projects/p/topics/ess-frames"
DEVICE = {"host": "127.0.0.1", "port": 5020, "bank_id": 1}


def _doc(**collector) -> dict:
    return {"sites": [{"site_id": "site-a", "devices": [dict(DEVICE)]}],
            "collector": {"topic": TOPIC, **collector}}


def test_defaults_and_env_topic(tmp_path):
    s = collector_settings(parse_sites(_doc()), env={}, base_dir=tmp_path)
    assert (s.interval, s.timeout, s.publish.topic) == (1.0, 0.5, TOPIC)
    assert s.spool.path == tmp_path / "spool.sqlite"
    other = "projects/q/topics/t"
    s = collector_settings(parse_sites(_doc()), env={"ESS_TOPIC": other})
    assert s.publish.topic == other


@pytest.mark.parametrize(("section", "field"), [
    ({"interval": 0}, "collector.interval"),
    ({"interval": "fast"}, "collector.interval"),
    ({"interval": 1.0, "timeout": 1.5}, "collector.timeout"),
    ({"publish": {"max_frames": 0}}, "collector.publish.max_frames"),
    ({"publish": {"ordering": "yes"}}, "collector.publish.ordering"),
    ({"spool": {"max_mb": -1}}, "collector.spool.max_mb"),
    ({"reconnect": {"initial": 5, "max": 1}}, "collector.reconnect.max"),
    ({"bogus": 1}, "collector.bogus"),
    ({"topic": "ess-frames"}, "collector.topic"),
])
def test_bad_collector_section_names_the_field(section, field):
    with pytest.raises(ConfigError) as err:
        collector_settings(parse_sites(_doc(**section)), env={})
    assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def test_bad_sites_section_names_the_field():
    bad = _doc()
    bad["sites"][0]["devices"][0]["port"] = 70000
    with pytest.raises(ConfigError) as err:
        parse_sites(bad)
    assert any(p.startswith("sites[0].devices[0].port") for p in err.value.problems)


def test_ess_collect_refuses_bad_config(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(_doc(timeout=2.0)))
    proc = subprocess.run([sys.executable, "-m", "ess.cli", "collect", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "collector.timeout" in proc.stderr
    assert not (tmp_path / "spool.sqlite").exists()      # refused before doing anything
