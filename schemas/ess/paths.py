"""Where the project's data files live (maps, SQL, JSON Schemas)."""

import os
from pathlib import Path


def _schemas_dir() -> Path:
    """ESS_SCHEMAS_DIR, else the data shipped in the package (ess/model/), else the source tree."""
    # e.g. ESS_SCHEMAS_DIR=/srv/ess/schemas
    if os.environ.get("ESS_SCHEMAS_DIR"):
        return Path(os.environ["ESS_SCHEMAS_DIR"])
    shipped = Path(__file__).resolve().parent / "model"    # an installed wheel or function archive
    return shipped if shipped.is_dir() else Path(__file__).resolve().parents[1]


SCHEMAS_DIR = _schemas_dir()
MAPS_DIR = SCHEMAS_DIR / "maps"
SQL_DIR = SCHEMAS_DIR / "sql"
MAP_SCHEMA = SCHEMAS_DIR / "register-map.schema.json"
SITES_SCHEMA = SCHEMAS_DIR / "sites.schema.json"
