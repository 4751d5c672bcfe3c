"""Benchmarks run by `make bench` (`python -m tests.bench`); not collected by pytest, not shipped.

Each module measures one area beside its baseline: model (decode, storage), collector, ingest
(with its push client push_load), export, e2e. `__main__` starts the services and writes
docs/benchmarks.md.
"""
