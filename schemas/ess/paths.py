"""Where the project's data files live."""

import os
from pathlib import Path

# e.g. ESS_SCHEMAS_DIR=/srv/ess/schemas (defaults to the folder holding this package)
SCHEMAS_DIR = Path(os.environ.get("ESS_SCHEMAS_DIR") or Path(__file__).resolve().parents[1])
MAPS_DIR = SCHEMAS_DIR / "maps"
MIGRATIONS_DIR = SCHEMAS_DIR / "migrations"
SQL_DIR = SCHEMAS_DIR / "sql"
MAP_SCHEMA = SCHEMAS_DIR / "register-map.schema.json"
SITES_SCHEMA = SCHEMAS_DIR / "sites.schema.json"
