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


def environment() -> dict:
    """The machine, the versions and the date, recorded with every measurement."""
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {"cores": psutil.cpu_count(), "ram_bytes": psutil.virtual_memory().total},
        "versions": {"python": platform.python_version(), **{name: version(name) for name in PACKAGES}},
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
    records = sorted(results.values(), key=lambda record: record["scale"])
    lines = [
        "Medians of alternating pairs of runs on the same generated data. "
        "`python -m bench --scale N` (or `make bench SCALE=N`) adds or replaces row N.",
        "",
        "- **Dagster**: `python -m dagster_project.materialize`: every asset with its checks, `dbt build`, the chart.",
        "- **bare**: DuckDB `create table ... as select * from read_csv(...)` for each CSV, then `dbt build`.",
        "- **Peak memory**: the largest sum of RSS over the process and all its children (dbt), sampled every 50 ms.",
        "- **Ratios**: Dagster ÷ bare. **Chart**: the size of the chart's folder after the Dagster run.",
        "- **Load code**: a fresh Python importing `dagster_project.definitions` and validating every definition; "
        "**import libraries**: `import dagster, dagster_dbt, dagster_duckdb` alone.",
        "",
        "| Scale | Customers | Orders | Payments | CSV | Dagster | bare | time ratio | Dagster peak "
        "| bare peak | memory ratio | Chart | Load code | Import libraries |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(results_row(record) for record in records),
        "",
        "| Scale | Date | Pairs | Cores | RAM | Python | dagster | dagster-dbt | dbt-core | duckdb |",
        "| ---: | --- | ---: | ---: | ---: | --- | --- | --- | --- | --- |",
        *(environment_row(record) for record in records),
        "",
    ]
    return "\n".join(lines)


def results_row(record: dict) -> str:
    dagster_s, bare_s = median(record["materialize"]["wall_s"]), median(record["bare"]["wall_s"])
    dagster_rss = median(record["materialize"]["peak_rss_bytes"])
    bare_rss = median(record["bare"]["peak_rss_bytes"])
    rows = record["rows"]
    cells = [
        f"{record['scale']:,}",
        f"{rows['raw_customers']:,}",
        f"{rows['raw_orders']:,}",
        f"{rows['raw_payments']:,}",
        size(record["csv_bytes"]),
        f"{dagster_s:,.1f} s",
        f"{bare_s:,.1f} s",
        f"{dagster_s / bare_s:.2f}",
        size(dagster_rss),
        size(bare_rss),
        f"{dagster_rss / bare_rss:.2f}",
        size(median(record["chart_bytes"])),
        f"{median(record['code_load']['definitions_s']):.1f} s",
        f"{median(record['code_load']['imports_s']):.1f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def environment_row(record: dict) -> str:
    machine, versions = record["machine"], record["versions"]
    cells = [
        f"{record['scale']:,}",
        record["date"],
        str(record["pairs"]),
        str(machine["cores"]),
        size(machine["ram_bytes"]),
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
