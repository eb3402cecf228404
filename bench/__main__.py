"""python -m bench --scale N [--pairs 3] [--out docs/benchmarks.md] [--data-dir data/bench]"""

import argparse
import sys
from pathlib import Path

import bench
from bench import cases, data, report
from bench.measure import CommandFailed
from dagster_project.datagen import positive_int

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=positive_int, required=True, help="1 is the sample size: 100 customers"
    )
    parser.add_argument(
        "--pairs", type=positive_int, default=3, help="alternating Dagster/bare pairs (default: 3)"
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
    args = parser.parse_args(argv)

    folder = data.ensure_data(args.scale, args.data_dir)
    try:
        record = benchmark(args.scale, args.pairs, folder, args.data_dir / "logs")
    except CommandFailed as error:
        sys.exit(str(error))
    results_path = args.out.with_suffix(".json")
    results = report.load(results_path)
    results[str(args.scale)] = record
    report.save(results_path, results)
    report.write_section(args.out, results)
    print(f"Wrote {args.out} and {results_path}")


def benchmark(scale: int, pairs: int, folder: Path, logs: Path) -> dict:
    """Measure `pairs` alternating pairs of each case; the logs of the last pair stay in `logs`."""
    logs.mkdir(parents=True, exist_ok=True)
    runs = {
        "materialize": {"wall_s": [], "peak_rss_bytes": []},
        "bare": {"wall_s": [], "peak_rss_bytes": []},
        "chart_bytes": [],
        "code_load": {"definitions_s": [], "imports_s": []},
    }
    for pair in range(1, pairs + 1):
        dagster, chart_bytes = cases.materialize(folder, logs / "materialize.log")
        bare = cases.bare(folder, logs / "bare.log")
        definitions_s = cases.python_seconds(cases.LOAD_DEFINITIONS, logs / "load-definitions.log")
        imports_s = cases.python_seconds(cases.IMPORT_LIBRARIES, logs / "import-libraries.log")
        for name, measured in (("materialize", dagster), ("bare", bare)):
            runs[name]["wall_s"].append(measured.wall_s)
            runs[name]["peak_rss_bytes"].append(measured.peak_rss_bytes)
        runs["chart_bytes"].append(chart_bytes)
        runs["code_load"]["definitions_s"].append(definitions_s)
        runs["code_load"]["imports_s"].append(imports_s)
        print(
            f"scale {scale:,}, pair {pair}/{pairs}: "
            f"Dagster {dagster.wall_s:.1f} s, {report.size(dagster.peak_rss_bytes)}; "
            f"bare {bare.wall_s:.1f} s, {report.size(bare.peak_rss_bytes)}; "
            f"load code {definitions_s:.1f} s, import libraries {imports_s:.1f} s",
            flush=True,
        )
    return {
        "scale": scale,
        "seed": data.SEED,
        "pairs": pairs,
        "rows": data.generated_rows(folder),
        "csv_bytes": data.csv_bytes(folder),
        **report.environment(),
        **runs,
    }


if __name__ == "__main__":
    main()
