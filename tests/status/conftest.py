"""The status tests reuse the collector tests' process helpers
(tests/collector/collector_support.py, imported there as a top-level module)."""

import sys
from pathlib import Path

_COLLECTOR_TESTS = str(Path(__file__).resolve().parents[1] / "collector")
if _COLLECTOR_TESTS not in sys.path:
    sys.path.insert(0, _COLLECTOR_TESTS)
