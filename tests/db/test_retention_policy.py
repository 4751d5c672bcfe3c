"""Retention settings: sites.yaml's `retention` section, overridden by ESS_RETENTION_*."""

from __future__ import annotations

import pytest
from ess.db.retention import RetentionConfigError, RetentionPolicy, policy_from
from ess.sites import ConfigError, parse_sites

SITE = {"site_id": "a", "devices": [{"host": "127.0.0.1", "port": 1502, "bank_id": 1}]}


def test_defaults_file_and_environment():
    assert policy_from({}, {}) == RetentionPolicy(30, 730, None)
    doc = {"sites": [SITE], "retention": {"raw_days": 14, "minute_rollup_days": 400,
                                          "hour_rollup_days": 3650}}
    assert policy_from(parse_sites(doc).raw, {}) == RetentionPolicy(14, 400, 3650)
    env = {"ESS_RETENTION_RAW_DAYS": "7", "ESS_RETENTION_HOUR_DAYS": "forever"}
    assert policy_from(doc, env) == RetentionPolicy(7, 400, None)
    env = {"ESS_RETENTION_MINUTE_DAYS": "0", "ESS_RETENTION_HOUR_DAYS": "0"}   # Terraform's 0
    assert policy_from(doc, env) == RetentionPolicy(14, None, None)


@pytest.mark.parametrize("values, env, problem", [
    ({"raw_days": 2}, {}, "raw_days must be an integer >= 3"),
    ({}, {"ESS_RETENTION_RAW_DAYS": "30d"}, "is not a whole number"),
    ({"raw_days": 60, "minute_rollup_days": 40}, {}, "minute_rollup_days must be an integer >= 60"),
    ({"minute_rollup_days": None, "hour_rollup_days": 900}, {}, "hour_rollup_days"),
    ({"hour_rollup_days": 100}, {}, "hour_rollup_days must be an integer >= 730"),
])
def test_bad_settings_are_refused_with_the_field(values, env, problem):
    with pytest.raises(RetentionConfigError, match=problem):
        policy_from({"retention": values}, env)


def test_the_sites_schema_checks_the_section():
    with pytest.raises(ConfigError, match="retention.raw_days"):
        parse_sites({"sites": [SITE], "retention": {"raw_days": 1}})
    with pytest.raises(ConfigError, match="retention.keep: unknown field"):
        parse_sites({"sites": [SITE], "retention": {"keep": 1}})
