"""The two test tiers (tests/conftest.py): a test whose fixtures reach `needs_service` is marked
`service` without anyone listing it; `make test-unit` (`-m "not service"`) deselects it, and
there nothing can start a service: `needs_service` fails loudly, and the local stack's services
refuse to start while ESS_NO_SERVICES is set (also in child processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ess_local.functions import FunctionProcess
from ess_local.gcs import GcsEmulator
from ess_local.postgres import Cluster
from ess_local.procs import NO_SERVICES, ProcessError, free_port, refuse_if_forbidden
from ess_local.pubsub import Emulator

pytest_plugins = ("pytester",)
ROOT = Path(__file__).resolve().parents[1]

SAMPLE = '''
import pytest

@pytest.fixture
def db(pg_cluster):
    return pg_cluster

@pytest.fixture
def late(request):
    return request.getfixturevalue("gcs_emulator")

def test_pure():
    assert 1 + 1 == 2

def test_direct(pubsub_emulator):
    pass

def test_indirect(db):
    pass

@pytest.mark.usefixtures("needs_service")
def test_starts_its_own():
    pass

def test_asks_at_run_time(late):
    pass
'''


@pytest.fixture
def sample(pytester: pytest.Pytester) -> pytest.Pytester:
    """A test directory with the project's conftest and one test of each kind."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_sample=SAMPLE)
    pytester.makeini("[pytest]\nmarkers =\n    service: the full tier\n")
    return pytester


def test_service_tests_are_marked_without_a_list(sample, monkeypatch):
    monkeypatch.setenv(NO_SERVICES, "")     # restored afterwards, whatever the tier
    result = sample.runpytest_inprocess("-m", "service", "--collect-only", "-q")
    got = set(re.findall(r"::(test_\w+)", result.stdout.str()))
    assert got == {"test_direct", "test_indirect", "test_starts_its_own"}


def test_the_unit_tier_runs_the_rest_and_starts_nothing(sample, monkeypatch):
    monkeypatch.setenv(NO_SERVICES, "")     # restored afterwards, whatever the tier
    result = sample.runpytest_inprocess("-m", "not service", "-p", "no:cacheprovider")
    # a fixture that asks for a service at run time fails loudly instead of starting one
    result.assert_outcomes(passed=1, errors=1, deselected=3)
    assert "needs a service, but the unit tier starts none" in result.stdout.str()
    assert "GCS emulator" not in result.stdout.str()


def test_the_local_stack_refuses_to_start_a_service(tmp_path, monkeypatch):
    monkeypatch.setenv(NO_SERVICES, "1")
    cluster = Cluster.__new__(Cluster)      # its constructor looks for an installed PostgreSQL
    cluster._proc = None
    main = tmp_path / "main.py"
    main.write_text("def f(request):\n    return 'x'\n")
    for service in (cluster, GcsEmulator(free_port(), log_dir=tmp_path),
                    Emulator(free_port(), "p", log_dir=tmp_path),
                    FunctionProcess("f", main, free_port(), log_dir=tmp_path)):
        with pytest.raises(ProcessError, match=NO_SERVICES):
            service.start()
    assert not list(tmp_path.glob("*.log"))
    monkeypatch.delenv(NO_SERVICES)
    refuse_if_forbidden("nothing")          # allowed again
