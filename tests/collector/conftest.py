"""Collector tests run real ticks with timeouts of tens of milliseconds. The test process's heap
(every object the tests before left alive) is not the collector's: a full collection of it takes
over 100 ms in the whole unit tier, which a device timeout then counts as the device's silence.
So each test here starts with that heap frozen out of the collector (`gc.freeze`, O(1)); objects
made during the test are collected as usual."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _heap_before_the_test_frozen() -> Iterator[None]:
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
