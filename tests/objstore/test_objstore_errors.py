"""Every provider error of every object-store operation comes out as the store's own error
(Conflict, DestinationError, StoreError), for Cloud Storage (the emulator) and a directory; a
producer's own errors pass through unchanged. The messages speak of the store, not of a caller."""

from __future__ import annotations

import uuid

import pytest
from ess_functions.objstore import Conflict, DestinationError, DirStore, GcsStore, StoreError


class Boom(Exception):
    """A producer's own error (e.g. the database failing mid-COPY)."""


def _raise(exc: BaseException):
    def produce(out) -> None:
        out.write(b"partial")
        raise exc
    return produce


@pytest.fixture
def gcs(gcs_emulator) -> GcsStore:
    name = f"store-{uuid.uuid4().hex[:10]}"
    gcs_emulator.create_bucket(name)
    return GcsStore(name, "p", client=gcs_emulator.client())


@pytest.fixture
def local(tmp_path) -> DirStore:
    return DirStore(tmp_path / "store")


@pytest.fixture(params=["gcs", "local"])
def store(request, needs_service):
    return request.getfixturevalue(request.param)


def test_reading_a_missing_object_is_a_store_error(store):
    with pytest.raises(StoreError, match="cannot read .*missing.bin") as err:
        store.get("missing.bin")
    assert type(err.value) is StoreError and err.value.__cause__ is not None


def test_a_stale_generation_is_a_conflict_for_every_write(store):
    first = store.put("a.json", b"{}", if_generation_match=0)
    with pytest.raises(Conflict):
        store.put("a.json", b"{}", if_generation_match=0)
    store.put("a.json", b'{"x": 1}', if_generation_match=first.generation)
    with pytest.raises(Conflict) as err:
        store.write_json("a.json", {"y": 2}, first.generation)
    assert "export" not in str(err.value)


def test_a_stale_upload_move_or_delete_is_a_conflict(local):
    """(fake-gcs-server checks the generation of simple uploads only: Cloud Storage of all.)"""
    first = local.put("a.json", b"{}", if_generation_match=0)
    with pytest.raises(Conflict):
        local.upload("a.json", lambda out: out.write(b"{}"), if_generation_match=0)
    local.put("b.json", b"{}")
    with pytest.raises(Conflict, match="exists already"):
        local.move("a.json", "b.json")
    local.put("a.json", b"[]")
    with pytest.raises(Conflict, match="changed since it was read"):
        local.delete("a.json", first.generation)


@pytest.mark.parametrize("exc", [Boom("copy failed"), TimeoutError("socket timed out")])
def test_a_producers_own_error_passes_through(store, exc):
    with pytest.raises(type(exc)) as err:
        store.upload("b.csv", _raise(exc), if_generation_match=0)
    assert err.value is exc
    assert store.stat("b.csv") is None            # nothing half-written stays


def test_metadata_of_a_deleted_object_is_a_conflict(gcs):
    gone = gcs.put("d.csv", b"1", if_generation_match=0)
    gcs.delete("d.csv")
    with pytest.raises(Conflict, match="deleted"):
        gcs.set_metadata("d.csv", gone, {"k": "v"})


def test_a_missing_bucket_is_a_destination_error_and_other_calls_store_errors(gcs_emulator):
    store = GcsStore(f"none-{uuid.uuid4().hex[:8]}", client=gcs_emulator.client())
    with pytest.raises(DestinationError, match="does not exist"):
        store.check()
    for call in (lambda: store.list(), lambda: store.get("x"), lambda: store.put("x", b"1"),
                 lambda: store.upload("x", lambda out: out.write(b"1"))):
        with pytest.raises(StoreError):
            call()


def test_a_file_system_error_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    store = DirStore(tmp_path / "file" / "store")
    for call in (lambda: store.put("x", b"1"), lambda: store.get("x"),
                 lambda: store.move("x", "y")):
        with pytest.raises(StoreError) as err:
            call()
        assert str(tmp_path) in str(err.value)
