"""Fixtures of the export tests: a sites.yaml and a fresh emulator bucket."""

from __future__ import annotations

import uuid

import pytest
from ess.sites import load_sites
from export_helpers import SITES_YAML


@pytest.fixture
def sites_path(tmp_path):
    p = tmp_path / "sites.yaml"
    p.write_text(SITES_YAML)
    return p


@pytest.fixture
def sites(sites_path):
    return load_sites(sites_path)


@pytest.fixture
def bucket(gcs_emulator):
    name = f"csv-{uuid.uuid4().hex[:10]}"
    gcs_emulator.create_bucket(name)
    return name
