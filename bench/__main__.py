"""python -m bench --scale N [--engine duckdb|spark] [--pairs 3] [--ui | --no-ui] [--memory-limit SIZE]
[--out docs/benchmarks.md] [--data-dir data/bench]"""

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import bench
from bench import cases, data, report, ui
from bench.measure import CommandFailed
from dagster_project.cli.datagen import positive_int
from dagster_project.serve.spark_connect import SparkServerError, running_server

REPO_ROOT = Path(__file__).resolve().parent.parent
# The UI row by default where a run is quick enough to wait for from a browser (issue 15).
UI_MAX_DEFAULT_SCALE = 100


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=positive_int, required=True, help="1 is the sample size: 100 customers"
    )
    parser.add_argument(
        "--pairs", type=positive_int, default=3, help="alternating Dagster/bare pairs (default: 3)"
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="spark: both sides on a Spark Connect server the benchmark starts (default: duckdb)",
    )
    parser.add_argument(
        "--ui",
        action=argparse.BooleanOptionalAction,
        help=f"also launch Materialize all through a `dg dev` (default: at scales up to {UI_MAX_DEFAULT_SCALE})",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="markdown to update"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / "data" / "bench",
        help="where generated data is kept for reuse; scale 1,000,000 needs about 9 GB",
    )
    parser.add_argument(
        "--make-materialize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time `make materialize` each round (default: yes; it does the README command's work)",
    )
    parser.add_argument(
        "--memory-limit",
        help="DuckDB's memory_limit for both sides, such as 19GiB (default: DUCKDB_MEMORY_LIMIT, "
        "or the project's default, a quarter of this machine's memory)",
    )
    args = parser.parse_args(argv)
    if args.memory_limit:
        # Read by the settings of both sides, as a user's DUCKDB_MEMORY_LIMIT would be.
        os.environ["DUCKDB_MEMORY_LIMIT"] = args.memory_limit

    folder = data.ensure_data(args.scale, args.data_dir)
    try:
        # The UI row drives a DuckDB `dg dev`; on Spark only the headless commands are measured.
        default_ui = args.engine == "duckdb" and args.scale <= UI_MAX_DEFAULT_SCALE
        with_ui = args.ui if args.ui is not None else default_ui
        # A folder per engine and scale: a benchmark of several scales keeps each one's run logs.
        logs = args.data_dir / "logs" / ("spark" if args.engine == "spark" else "") / f"scale-{args.scale}"
        record = benchmark(args.scale, args.pairs, folder, logs, with_ui, args.make_materialize, args.engine)
    except (CommandFailed, SparkServerError) as error:
        sys.exit(str(error))
    results_path = args.out.with_suffix(".json")
    results = report.load(results_path)
    results[results_key(args.scale, args.memory_limit, args.engine)] = record
    report.save(results_path, results)
    report.write_section(args.out, results)
    print(f"Wrote {args.out} and {results_path}")


def results_key(scale: int, memory_limit: str | None, engine: str = "duckdb") -> str:
    """One record per scale, and one more per memory limit given by hand, and per other engine."""
    key = str(scale) if engine == "duckdb" else f"{scale} {engine}"
    return f"{key} memory_limit={memory_limit}" if memory_limit else key


def benchmark(
    scale: int,
    pairs: int,
    folder: Path,
    logs: Path,
    with_ui: bool = False,
    make_materialize: bool = True,
    engine_name: str = "duckdb",
) -> dict:
    """Measure `pairs` alternating rounds of each case; the logs of the last round stay in `logs`.

    The UI's `dg dev` is started once and stays up through every round: its daemon and code
    server idle beside the headless runs, as they would on a developer's machine.
    """
    logs.mkdir(parents=True, exist_ok=True)
    runs = {
        "cli": {"wall_s": [], "peak_rss_bytes": []},
        "materialize": {"wall_s": [], "peak_rss_bytes": []},
        "bare": {"wall_s": [], "peak_rss_bytes": []},
        "chart_bytes": [],
        "code_load": {"definitions_s": [], "imports_s": []},
        **({"ui": []} if with_ui else {}),
    }
    with ExitStack() as stack:
        engine = cases.DUCKDB
        if engine_name == "spark":
            # One server for every run of both sides, started before the first round is timed:
            # the runs are its clients, as they would be of a cluster's. Peaks count the clients.
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jaffle-bench-spark-")))
            engine = cases.Engine("spark", stack.enter_context(running_server(state)).url)
        dev = None
        if with_ui:
            dev, runs["ui_start_s"] = stack.enter_context(ui.server(folder, logs))
        for pair in range(1, pairs + 1):
            cli, chart_bytes = cases.materialize(folder, logs / "cli.log", engine=engine)
            bare = cases.bare(folder, logs / "bare.log", engine)
            materialize = (
                cases.materialize(folder, logs / "materialize.log", cases.MAKE_MATERIALIZE, engine)[0]
                if make_materialize
                else None
            )
            definitions_s = cases.python_seconds(
                cases.LOAD_DEFINITIONS, logs / "load-definitions.log", engine
            )
            imports_s = cases.python_seconds(cases.IMPORT_LIBRARIES, logs / "import-libraries.log")
            for name, measured in (("cli", cli), ("materialize", materialize), ("bare", bare)):
                if measured is None:
                    continue
                runs[name]["wall_s"].append(measured.wall_s)
                runs[name]["peak_rss_bytes"].append(measured.peak_rss_bytes)
            runs["chart_bytes"].append(chart_bytes)
            runs["code_load"]["definitions_s"].append(definitions_s)
            runs["code_load"]["imports_s"].append(imports_s)
            ui_note = ""
            if dev is not None:
                launched = ui.materialize_all(dev)
                runs["ui"].append(launched)
                ui_note = f"; UI {launched['launch_to_end_s']:.1f} s"
            make_note = f"make materialize {materialize.wall_s:.1f} s; " if materialize else ""
            print(
                f"scale {scale:,} on {engine_name}, round {pair}/{pairs}: "
                f"Dagster CLI {cli.wall_s:.1f} s, {report.size(cli.peak_rss_bytes)}; {make_note}"
                f"bare {bare.wall_s:.1f} s, {report.size(bare.peak_rss_bytes)}; "
                f"load code {definitions_s:.1f} s, import libraries {imports_s:.1f} s{ui_note}",
                flush=True,
            )
    return {
        "scale": scale,
        "seed": data.SEED,
        "pairs": pairs,
        "rows": data.generated_rows(folder),
        # DuckDB's limit; Spark's memory is the server's (spark-submit's defaults).
        "memory_limit": cases.memory_limit() if engine_name == "duckdb" else "Spark's default",
        "csv_bytes": data.csv_bytes(folder),
        "engine": engine_name,
        **report.environment(engine_name),
        **runs,
    }


if __name__ == "__main__":
    main()
