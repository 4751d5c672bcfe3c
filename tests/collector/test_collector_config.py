"""A bad configuration is refused with a message naming the field; `ess collect` exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ess.cli import main as ess_main
from ess.sites import ConfigError, parse_sites
from ess_collector.config import collector_schema, collector_settings, with_defaults
from ess_collector.settings_doc import README, render_table, with_table

TOPIC = "projects/p/topics/ess-frames"
DEVICE = {"host": "127.0.0.1", "port": 5020, "bank_id": 1}
EXAMPLE = Path(__file__).resolve().parents[2] / "collector" / "sites.example.yaml"


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


def test_ess_collect_refuses_bad_config(tmp_path, capsys):
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(_doc(timeout=2.0)))
    assert ess_main(["collect", "--config", str(path)]) == 2
    assert "collector.timeout" in capsys.readouterr().err
    assert not (tmp_path / "spool.sqlite").exists()      # refused before doing anything


@pytest.mark.parametrize(("section", "field"), [
    ({"timeout": 0}, "collector.timeout"),
    ({"publish": {"max_frames": 1001}}, "collector.publish.max_frames"),
    ({"publish": {"max_frames": 2.5}}, "collector.publish.max_frames"),
    ({"publish": {"max_latency": -0.1}}, "collector.publish.max_latency"),
    ({"publish": {"max_in_flight": 0}}, "collector.publish.max_in_flight"),
    ({"publish": {"unknown": 1}}, "collector.publish.unknown"),
    ({"reconnect": {"initial": True}}, "collector.reconnect.initial"),
    ({"spool": {"path": ""}}, "collector.spool.path"),
    ({"spool": {"max_age_hours": 0}}, "collector.spool.max_age_hours"),
    ({"stats_interval": -1}, "collector.stats_interval"),
])
def test_schema_bounds_name_the_field(section, field):
    with pytest.raises(ConfigError) as err:
        collector_settings(parse_sites(_doc(**section)), env={})
    assert any(p.startswith(field) for p in err.value.problems), err.value.problems


def test_every_default_comes_from_the_schema(tmp_path):
    """The dataclasses carry no defaults: what an empty section yields is the schema's."""
    d = with_defaults({}, collector_schema())
    s = collector_settings(parse_sites(_doc()), env={}, base_dir=tmp_path)
    p, sp = d["publish"], d["spool"]
    assert (s.interval, s.timeout, s.stats_interval) == (d["interval"], d["timeout"],
                                                          d["stats_interval"])
    assert (s.reconnect_initial, s.reconnect_max) == (d["reconnect"]["initial"],
                                                      d["reconnect"]["max"])
    assert (s.publish.max_frames, s.publish.max_latency, s.publish.ordering, s.publish.timeout,
            s.publish.replay_rate, s.publish.max_in_flight) == (
        p["max_frames"], p["max_latency"], p["ordering"], p["timeout"], p["replay_rate"],
        p["max_in_flight"])
    assert s.spool.path == tmp_path / sp["path"]
    assert s.spool.max_bytes == sp["max_mb"] * 1024 * 1024
    assert s.spool.max_age == sp["max_age_hours"] * 3600
    # the timeout default never reaches a short interval
    assert collector_settings(parse_sites(_doc(interval=0.4)), env={}).timeout == 0.2


def test_example_config_states_the_defaults():
    """collector/sites.example.yaml shows every field at its schema default."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    parse_sites(doc)
    example = doc["collector"]
    defaults = with_defaults({}, collector_schema())

    def leaves(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    shown, want = leaves(example), leaves(defaults)
    assert set(shown) == set(want)
    assert {k: v for k, v in shown.items() if k != "topic"} == {
        k: v for k, v in want.items() if k != "topic"}


def test_readme_settings_table_is_current():
    """Regenerate with `python -m ess_collector.settings_doc --write`."""
    proc = subprocess.run([sys.executable, "-m", "ess_collector.settings_doc", "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert with_table(README.read_text()) == README.read_text()
    assert "| `publish.max_frames` | 10 |" in render_table()
