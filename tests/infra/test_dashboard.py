"""The dashboard JSON of infra/dashboard.tf evaluated by a real `terraform console` (no provider
needed): the static dashboards/ess.json kept whole, and two tiles per site of the sites file."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from itertools import combinations
from pathlib import Path

import pytest
import yaml
from tfmodule import EXAMPLE, INFRA

TERRAFORM = shutil.which("terraform")
BASE = json.loads((INFRA / "dashboards" / "ess.json").read_text())
REQUIRED = {"project_id": "p", "artifacts": {
    "wheel": "build/ess_pipeline-0.1.0-py3-none-any.whl",
    "ingest_zip": "build/ingest.zip", "export_zip": "build/export.zip"}}
DEVICE = {"host": "gw.example.internal", "port": 502, "unit_id": 1, "bank_id": 1, "map": "default"}
THREE = {"sites": [{"site_id": s, "devices": [DEVICE]} for s in ("north-1", "south-2", "east-3")]}

# runs terraform, a tool `make install` does not install: the full tier (tests/conftest.py)
pytestmark = [pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH"),
              pytest.mark.usefixtures("needs_service")]


@pytest.fixture(scope="module")
def module_dashboard(tmp_path_factory) -> Path:
    """infra/variables.tf, infra/dashboard.tf and dashboards/ess.json alone."""
    d = tmp_path_factory.mktemp("dashboard")
    for name in ("variables.tf", "dashboard.tf", "dashboards/ess.json"):
        (d / name).parent.mkdir(exist_ok=True)
        shutil.copy(INFRA / name, d / name)
    return d


def _dashboard(d: Path, sites_path: Path) -> dict:
    """local.dashboard_json for this sites file (base64 through the console: no HCL escapes)."""
    (d / "case.tfvars.json").write_text(json.dumps(
        {**REQUIRED, "sites_config_path": str(sites_path)}))
    proc = subprocess.run(
        [TERRAFORM, "console", "-no-color", "-var-file=case.tfvars.json"],
        input="base64encode(local.dashboard_json)\n", cwd=d, capture_output=True, text=True,
        timeout=120, env={"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                          "PATH": "/usr/bin:/bin", "HOME": str(d)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(base64.b64decode(proc.stdout.strip().strip('"')))


def _sites_file(tmp_path: Path, which: str) -> tuple[Path, list[str]]:
    if which == "dev":
        path = EXAMPLE / "sites.yaml"
    else:
        path = tmp_path / "sites.yaml"
        path.write_text(yaml.safe_dump(THREE))
    return path, [s["site_id"] for s in yaml.safe_load(path.read_text())["sites"]]


def _overlap(a: dict, b: dict) -> bool:
    return (a["xPos"] < b["xPos"] + b["width"] and b["xPos"] < a["xPos"] + a["width"]
            and a["yPos"] < b["yPos"] + b["height"] and b["yPos"] < a["yPos"] + a["height"])


@pytest.mark.parametrize("which", ["dev", "three"])
def test_per_site_tiles(module_dashboard, tmp_path, which):
    sites_path, sites = _sites_file(tmp_path, which)
    dash = _dashboard(module_dashboard, sites_path)
    base_tiles = BASE["mosaicLayout"]["tiles"]
    tiles = dash["mosaicLayout"]["tiles"]
    assert {k: v for k, v in dash.items() if k != "mosaicLayout"} == {
        k: v for k, v in BASE.items() if k != "mosaicLayout"}
    assert tiles[:len(base_tiles)] == base_tiles, "the base tiles must all stay, unchanged"
    added = tiles[len(base_tiles):]
    assert len(added) == 2 * len(sites)
    bottom = max(t["yPos"] + t["height"] for t in base_tiles)
    columns = dash["mosaicLayout"]["columns"]
    for t in added:
        assert t["yPos"] >= bottom and 0 <= t["xPos"] and t["xPos"] + t["width"] <= columns, t
    for a, b in combinations(tiles, 2):
        assert not _overlap(a, b), (a["widget"]["title"], b["widget"]["title"])
    for site in sites:
        mine = [t for t in added if t["widget"]["title"].startswith(f"{site}: ")]
        assert len(mine) == 2, site
        queries = [ds["timeSeriesQuery"]["prometheusQuery"]
                   for t in mine for ds in t["widget"]["xyChart"]["dataSets"]]
        assert all(f'{{site="{site}"}}' in q for q in queries), queries
        assert any("user_ess_day_completeness_sum" in q for q in queries)
        assert any("user_ess_day_lost_frames_sum" in q for q in queries)


def test_dashboard_resource_uses_the_local(root):
    dash = root["resource"]["google_monitoring_dashboard"]["ess"]
    assert dash["dashboard_json"] == "${local.dashboard_json}"
