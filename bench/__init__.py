"""Benchmark: the Dagster project against the bare engines, DuckDB and dbt, on the same data.

`python -m bench --scale N` generates jaffle shop data at scale N, times both in alternating
pairs, and adds a row for N to docs/benchmarks.md (raw results in docs/benchmarks.json).
"""
