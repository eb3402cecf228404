"""Results: raw in docs/benchmarks.json, one entry per scale; the markdown is rendered from it.

Only the part of docs/benchmarks.md between the two markers is rewritten, so prose around
the tables survives a rerun.
"""

import json
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from statistics import median

import psutil

START = "<!-- bench:start (rendered by python -m bench from benchmarks.json) -->"
END = "<!-- bench:end -->"
TITLE = "# Benchmarks\n\n"
PACKAGES = ("dagster", "dagster-dbt", "dbt-core", "duckdb")
SPARK_PACKAGES = ("pyspark", "dbt-spark")


def environment(engine: str = "duckdb") -> dict:
    """The machine, the versions and the date, recorded with every measurement."""
    packages = (*PACKAGES, *SPARK_PACKAGES) if engine == "spark" else PACKAGES
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {"cores": psutil.cpu_count(), "ram_bytes": psutil.virtual_memory().total},
        # The benchmark itself keeps about one core busy; more says other work shared the machine.
        "load_average_15m": round(psutil.getloadavg()[2], 2),
        "versions": {"python": platform.python_version(), **{name: version(name) for name in packages}},
    }


def load(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, results: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def write_section(path: Path, results: dict[str, dict]) -> None:
    text = path.read_text() if path.exists() else TITLE
    section = f"{START}\n{render(results)}{END}"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def render(results: dict[str, dict]) -> str:
    # Only rows measured with the README's command: older rows timed `make materialize` alone.
    records = sorted(
        (r for r in results.values() if "cli" in r),
        key=lambda record: (record["scale"], engine(record) != "duckdb", memory_limit(record)),
    )
    spark_versions = sorted(
        {
            ", ".join(f"{name} {record['versions'][name]}" for name in SPARK_PACKAGES)
            for record in records
            if engine(record) == "spark"
        }
    )
    lines = [
        "Medians of alternating rounds of runs on the same generated data. "
        "`python -m bench --scale N` (or `make bench SCALE=N`) adds or replaces row N.",
        "",
        "- **Dagster**: the README's `dagster asset materialize --select '*' -m dagster_project.definitions`: "
        "every asset with its checks, `dbt build` and its publish, the chart. "
        "**make materialize**: `python -m dagster_project.cli.materialize`, the same work.",
        "- **bare**: DuckDB `create table ... as select * from read_csv(...)` for each CSV, then `dbt build`.",
        *(
            [
                "- **on Spark**: both sides with `JAFFLE_ENV=spark` against one Spark Connect server "
                "(`local[2]`, make spark's settings) that the benchmark starts first, its databases emptied "
                "before each run (not timed), as each DuckDB run gets a fresh file; **bare** is Spark's CSV "
                "reader into tables of a database of its own (`bare_build`), then `dbt build --target spark`. "
                f"The peaks count the clients, not the server's JVM. Versions: {'; '.join(spark_versions)}."
            ]
            if spark_versions
            else []
        ),
        "- **Memory limit**: DuckDB's `memory_limit` on both sides (`DUCKDB_MEMORY_LIMIT`, by default a quarter "
        "of the machine's memory; rows measured before the setting existed ran with DuckDB's default, 80%).",
        "- **Peak memory**: the largest sum of RSS over the process and all its children (dbt), sampled every 50 ms.",
        "- **Ratios**: Dagster ÷ bare. **Chart**: the size of the chart's folder after the Dagster run.",
        "- **Load code**: a fresh Python importing `dagster_project.definitions` and validating every definition; "
        "**import libraries**: `import dagster, dagster_dbt, dagster_duckdb` alone.",
        "- **Logs**: what each command printed in the last round, in `data/bench/logs/scale-N/` "
        "(`logs/spark/scale-N/` on Spark): `cli.log` is the Dagster run's log, `bare.log` the bare one's.",
        "",
        "| Scale | Customers | Orders | Payments | CSV | Memory limit | Dagster | bare | time ratio | Dagster peak "
        "| bare peak | memory ratio | make materialize | Chart | Load code | Import libraries |",
        "| ---: " * 16 + "|",
        *(results_row(record) for record in records),
        "",
        *ui_table([record for record in records if record.get("ui")]),
        "**Load** is the machine's 15-minute load average when the measurements ended: the benchmark "
        "itself keeps about one core busy, so more means other work shared the machine.",
        "",
        "| Scale | Memory limit | Date | Pairs | Cores | RAM | Load | Python | dagster | dagster-dbt | dbt-core | duckdb |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |",
        *(environment_row(record) for record in records),
        "",
    ]
    return "\n".join(lines)


def results_row(record: dict) -> str:
    dagster_s, bare_s = median(record["cli"]["wall_s"]), median(record["bare"]["wall_s"])
    dagster_rss = median(record["cli"]["peak_rss_bytes"])
    bare_rss = median(record["bare"]["peak_rss_bytes"])
    rows = record["rows"]
    cells = [
        scale_label(record),
        f"{rows['raw_customers']:,}",
        f"{rows['raw_orders']:,}",
        f"{rows['raw_payments']:,}",
        size(record["csv_bytes"]),
        memory_limit(record),
        f"{dagster_s:,.1f} s",
        f"{bare_s:,.1f} s",
        f"{dagster_s / bare_s:.2f}",
        size(dagster_rss),
        size(bare_rss),
        f"{dagster_rss / bare_rss:.2f}",
        f"{median(record['materialize']['wall_s']):,.1f} s" if record["materialize"]["wall_s"] else "not run",
        size(median(record["chart_bytes"])),
        f"{median(record['code_load']['definitions_s']):.1f} s",
        f"{median(record['code_load']['imports_s']):.1f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def engine(record: dict) -> str:
    return record.get("engine", "duckdb")


def scale_label(record: dict) -> str:
    return f"{record['scale']:,}" + (
        "" if engine(record) == "duckdb" else f" on {engine(record).capitalize()}"
    )


def memory_limit(record: dict) -> str:
    return record.get("memory_limit") or "80%"


def ui_table(records: list[dict]) -> list[str]:
    """Materialize all through the webserver, and where its time went (medians over rounds)."""
    if not records:
        return []
    steps = sorted({step for record in records for run in record["ui"] for step in run["steps_s"]})
    return [
        "**Materialize all from the UI**: launched through the webserver's GraphQL as the UI does "
        "(`__ASSET_JOB`, every asset), against one `dg dev` started as `make run` starts it; "
        "timed from the launch to the run's end. The breakdown is read from the run's event log: "
        "**queue** is RUN_ENQUEUED → RUN_STARTING, **worker start** RUN_STARTING → first STEP_START, "
        "**publish** the dbt step's last event before `Published …` → that line.",
        "",
        "**UI start** is `dg dev`, started as `make run` starts it, until the webserver answers with "
        "the code location loaded (once per benchmark).",
        "",
        "| Scale | UI start | UI launch → end | ÷ bare | ÷ Dagster CLI | queue | worker start | publish | "
        + " | ".join(steps)
        + " |",
        "| ---: " * (8 + len(steps)) + "|",
        *(ui_row(record, steps) for record in records),
        "",
    ]


def ui_row(record: dict, steps: list[str]) -> str:
    runs = record["ui"]
    launch_s = median(run["launch_to_end_s"] for run in runs)
    publish = [run["publish_s"] for run in runs if run["publish_s"] is not None]
    cells = [
        f"{record['scale']:,}",
        f"{record['ui_start_s']:.1f} s" if "ui_start_s" in record else "not measured",
        f"{launch_s:,.1f} s",
        f"{launch_s / median(record['bare']['wall_s']):.2f}",
        f"{launch_s / median(record['cli']['wall_s']):.2f}",
        f"{median(run['queue_s'] for run in runs):.1f} s",
        f"{median(run['worker_start_s'] for run in runs):.1f} s",
        f"{median(publish):.2f} s" if publish else "none",
        *(step_cell([run["steps_s"][step] for run in runs if step in run["steps_s"]]) for step in steps),
    ]
    return "| " + " | ".join(cells) + " |"


def step_cell(seconds: list[float]) -> str:
    # A step that a row's runs did not have (measured before the step existed) is left empty.
    return f"{median(seconds):.1f} s" if seconds else "—"


def environment_row(record: dict) -> str:
    machine, versions = record["machine"], record["versions"]
    cells = [
        scale_label(record),
        memory_limit(record),
        record["date"],
        str(record["pairs"]),
        str(machine["cores"]),
        size(machine["ram_bytes"]),
        str(record.get("load_average_15m", "not recorded")),
        *(versions[name] for name in ("python", *PACKAGES)),
    ]
    return "| " + " | ".join(cells) + " |"


def size(n_bytes: float) -> str:
    """In the largest binary unit that keeps the number at 1 or more: 4.6 MiB, not 4,711 KiB."""
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024:
            return f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:,.1f} GiB"
