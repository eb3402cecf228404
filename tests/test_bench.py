"""The benchmark harness measures both cases and keeps one row per scale in docs/benchmarks.md.

No test here asserts a timing: timings depend on the machine, not on the code.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from bench import report

REPO_ROOT = Path(__file__).resolve().parent.parent

RESULT_COLUMNS = [
    "Scale",
    "Customers",
    "Orders",
    "Payments",
    "CSV",
    "Dagster",
    "bare",
    "time ratio",
    "Dagster peak",
    "bare peak",
    "memory ratio",
    "Chart",
    "Load code",
    "Import libraries",
]


def results_table(markdown: str) -> list[list[str]]:
    """The first table's rows of cells, header first, without the |---| line."""
    block = next(block for block in markdown.split("\n\n") if block.startswith("|"))
    lines = block.splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in [lines[0], *lines[2:]]]


def record(scale: int) -> dict:
    """A result as the harness stores it, with made-up numbers."""
    return {
        "scale": scale,
        "seed": 0,
        "pairs": 3,
        "date": "2026-01-01",
        "rows": {"raw_customers": 100 * scale, "raw_orders": 99 * scale, "raw_payments": 113 * scale},
        "csv_bytes": 6500 * scale,
        "machine": {"cores": 2, "ram_bytes": 8 * 1024**3},
        "versions": {"python": "3.11.7", "dagster": "1", "dagster-dbt": "2", "dbt-core": "3", "duckdb": "4"},
        "materialize": {"wall_s": [20.0, 22.0, 21.0], "peak_rss_bytes": [500 * 2**20] * 3},
        "bare": {"wall_s": [10.0, 10.5, 9.5], "peak_rss_bytes": [250 * 2**20] * 3},
        "chart_bytes": [4 * 2**20] * 3,
        "code_load": {"definitions_s": [5.0] * 3, "imports_s": [4.0] * 3},
    }


def test_a_benchmark_at_scale_one_writes_a_row_of_positive_measurements(tmp_path):
    out = tmp_path / "docs" / "benchmarks.md"

    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale",
            "1",
            "--pairs",
            "1",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPO_ROOT,
        check=True,
    )

    header, *rows = results_table(out.read_text())
    assert header == RESULT_COLUMNS
    assert len(rows) == 1
    measured = dict(zip(header, rows[0], strict=False))
    assert measured["Scale"] == "1"
    assert (measured["Customers"], measured["Orders"], measured["Payments"]) == ("100", "99", "113")
    for column in RESULT_COLUMNS[4:]:
        number = re.match(r"[\d,.]+", measured[column])
        assert number and float(number[0].replace(",", "")) > 0, column
    stored = json.loads(out.with_suffix(".json").read_text())
    assert list(stored) == ["1"]
    assert stored["1"]["pairs"] == 1


def test_rows_are_sorted_by_scale_and_a_rerun_replaces_only_its_own_row(tmp_path):
    out = tmp_path / "benchmarks.md"
    report.write_section(out, {"100": record(100), "1": record(1)})
    rerun = record(1) | {"date": "2026-02-02"}

    report.write_section(out, {"100": record(100), "1": rerun})

    _, *rows = results_table(out.read_text())
    assert [row[0] for row in rows] == ["1", "100"]
    assert "2026-02-02" in out.read_text()
    assert "2026-01-01" in out.read_text()


def test_the_section_is_rewritten_in_place_and_the_prose_around_it_is_kept(tmp_path):
    out = tmp_path / "benchmarks.md"
    report.write_section(out, {"1": record(1)})
    out.write_text(
        "# Benchmarks\n\nWritten by hand.\n\n" + out.read_text().split("\n\n", 1)[1] + "\nAlso by hand.\n"
    )

    report.write_section(out, {"1": record(1), "10": record(10)})

    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nWritten by hand.\n\n")
    assert text.endswith("\nAlso by hand.\n")
    assert text.count(report.START) == 1
    assert [row[0] for row in results_table(text)[1:]] == ["1", "10"]


def test_ratios_are_dagster_over_bare_medians(tmp_path):
    out = tmp_path / "benchmarks.md"

    report.write_section(out, {"1": record(1)})

    header, row = results_table(out.read_text())
    measured = dict(zip(header, row, strict=False))
    assert (measured["Dagster"], measured["bare"], measured["time ratio"]) == ("21.0 s", "10.0 s", "2.10")
    assert (measured["Dagster peak"], measured["bare peak"], measured["memory ratio"]) == (
        "500.0 MiB",
        "250.0 MiB",
        "2.00",
    )
