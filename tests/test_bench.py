"""The benchmark harness measures both cases and keeps one row per scale in docs/benchmarks.md.

No test here asserts a timing: timings depend on the machine, not on the code.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from bench import report, ui
from bench.__main__ import results_key
from dagster_project.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent

RESULT_COLUMNS = [
    "Scale",
    "Customers",
    "Orders",
    "Payments",
    "CSV",
    "Memory limit",
    "Dagster",
    "bare",
    "time ratio",
    "Dagster peak",
    "bare peak",
    "memory ratio",
    "make materialize",
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
        "cli": {"wall_s": [20.0, 22.0, 21.0], "peak_rss_bytes": [500 * 2**20] * 3},
        "materialize": {"wall_s": [19.0, 19.5, 20.0], "peak_rss_bytes": [490 * 2**20] * 3},
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
            # The UI row starts a `dg dev`: the UI tests cover that server, and this stays quick;
            # `make materialize` is the README command's work again.
            "--no-ui",
            "--no-make-materialize",
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
    # Both sides ran with the limit a user's run gets by default.
    assert measured["Memory limit"] == load_settings({}).duckdb_memory_limit
    assert (measured["Customers"], measured["Orders"], measured["Payments"]) == ("100", "99", "113")
    assert measured["make materialize"] == "not run"
    for column in (name for name in RESULT_COLUMNS[4:] if name != "make materialize"):
        number = re.match(r"[\d,.]+", measured[column])
        assert number and float(number[0].replace(",", "")) > 0, column
    environment = next(
        b for b in out.read_text().split("\n\n") if b.startswith("| Scale | Memory limit | Date")
    )
    header, _, row = (line.strip("|").split("|") for line in environment.splitlines()[:3])
    load = dict(zip((cell.strip() for cell in header), (cell.strip() for cell in row), strict=True))["Load"]
    assert float(load) >= 0, load
    stored = json.loads(out.with_suffix(".json").read_text())
    assert list(stored) == ["1"]
    assert stored["1"]["pairs"] == 1
    # Each scale keeps its own logs: the run log a profile is read from is this scale's.
    run_log = (tmp_path / "data" / "logs" / "scale-1" / "cli.log").read_text(encoding="utf-8")
    assert "RUN_SUCCESS" in run_log and "Published " in run_log


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


def event(event_type: str | None, seconds: float, step: str | None = None, message: str = "") -> dict:
    return {
        "eventType": event_type,
        "timestamp": str(int(seconds * 1000)),
        "stepKey": step,
        "message": message,
    }


def test_a_ui_run_is_broken_down_into_queue_worker_start_steps_and_publish_from_its_event_log():
    events = [
        event("RUN_ENQUEUED", 100.0),
        event("RUN_STARTING", 101.5),
        event("RUN_START", 108.0),
        event("STEP_START", 110.0, "raw_tables"),
        event("STEP_SUCCESS", 112.0, "raw_tables"),
        event("STEP_START", 112.5, "dbt"),
        event("ASSET_CHECK_EVALUATION", 118.0, "dbt"),
        event(None, 118.25, "dbt", "Published customers, orders."),
        event("STEP_SUCCESS", 119.0, "dbt"),
    ]

    assert ui.breakdown(events) == {
        "queue_s": 1.5,
        "worker_start_s": 8.5,
        "steps_s": {"raw_tables": 2.0, "dbt": 6.5},
        "publish_s": 0.25,
    }


def test_the_ui_table_shows_launch_to_end_against_bare_and_the_headless_command(tmp_path):
    out = tmp_path / "benchmarks.md"
    launched = {"queue_s": 1.0, "worker_start_s": 8.0, "steps_s": {"dbt": 6.0}, "publish_s": 0.25}
    with_ui = record(1) | {
        "ui": [launched | {"launch_to_end_s": s} for s in (24.0, 21.0, 30.0)],
        "ui_start_s": 9.25,
    }

    report.write_section(out, {"1": with_ui, "100": record(100)})

    ui_block = next(block for block in out.read_text().split("\n\n") if block.startswith("| Scale | UI"))
    header, _, row = ui_block.splitlines()
    cells = dict(zip(header.strip("|").split("|"), row.strip("|").split("|"), strict=True))
    cells = {name.strip(): value.strip() for name, value in cells.items()}
    assert cells == {
        "Scale": "1",
        "UI start": "9.2 s",
        "UI launch → end": "24.0 s",
        "÷ bare": "2.40",
        "÷ Dagster CLI": "1.14",
        "queue": "1.0 s",
        "worker start": "8.0 s",
        "publish": "0.25 s",
        "dbt": "6.0 s",
    }


def test_a_spark_row_sits_beside_duckdb_at_its_scale_and_names_the_spark_versions(tmp_path):
    out = tmp_path / "benchmarks.md"
    on_spark = record(100) | {"engine": "spark", "date": "2026-03-03"}
    on_spark["versions"] = on_spark["versions"] | {"pyspark": "4.3.0", "dbt-spark": "1.11.0"}
    key = results_key(100, None, "spark")

    report.write_section(out, {"100": record(100), "1": record(1), key: on_spark})

    assert key == "100 spark"
    _, *rows = results_table(out.read_text())
    assert [row[0] for row in rows] == ["1", "100", "100 on Spark"]
    assert "Versions: pyspark 4.3.0, dbt-spark 1.11.0." in out.read_text()
    assert "| 100 on Spark | 80% | 2026-03-03 |" in out.read_text()


def test_a_ui_row_measured_before_a_step_existed_leaves_that_step_empty(tmp_path):
    out = tmp_path / "benchmarks.md"
    run = {"queue_s": 1.0, "worker_start_s": 3.0, "publish_s": 0.25, "launch_to_end_s": 20.0}
    older = record(100) | {"ui": [run | {"steps_s": {"dbt": 6.0}}], "ui_start_s": 9.0}
    newer = record(1) | {"ui": [run | {"steps_s": {"dbt": 5.0, "check": 0.2}}], "ui_start_s": 9.0}

    report.write_section(out, {"1": newer, "100": older})

    ui_block = next(block for block in out.read_text().split("\n\n") if block.startswith("| Scale | UI"))
    header, _, *rows = ui_block.splitlines()
    names = [name.strip() for name in header.strip("|").split("|")]
    by_scale = {
        row.split("|")[1].strip(): dict(
            zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True)
        )
        for row in rows
    }
    assert (by_scale["1"]["check"], by_scale["1"]["dbt"]) == ("0.2 s", "5.0 s")
    assert (by_scale["100"]["check"], by_scale["100"]["dbt"]) == ("—", "6.0 s")


def test_the_spark_baseline_builds_with_the_projects_spark_target_in_a_database_of_its_own(tmp_path):
    import yaml

    from bench.bare_spark import BARE_SCHEMA, bare_profiles

    project = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text(encoding="utf-8"))["jaffle_shop"]
    written = yaml.safe_load(
        (bare_profiles(tmp_path / "profiles") / "profiles.yml").read_text(encoding="utf-8")
    )
    spark = written["jaffle_shop"]["outputs"]["spark"]
    # Never the project's build database, where the Dagster side's runs work.
    assert BARE_SCHEMA == spark["schema"] != project["outputs"]["spark"]["schema"]
    assert {**spark, "schema": None} == {**project["outputs"]["spark"], "schema": None}
    assert written["jaffle_shop"]["target"] == "spark"
