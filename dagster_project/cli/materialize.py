"""Materialize every asset headless (`make materialize`) and say where the chart is."""

import argparse
import sys

from dagster import DagsterEventType, DagsterInstance, Definitions


def run_config(allow_shrink: bool) -> dict:
    """The run config of the raw loads (RawLoadConfig), as the UI's Launchpad would write it."""
    from dagster_project.defs.ingest.assets import raw_tables

    return {"ops": {raw_tables.op.name: {"config": {"allow_shrink": True}}}} if allow_shrink else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.cli.materialize", description=__doc__)
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help="accept a raw file much smaller than the table it replaces (run config allow_shrink: true)",
    )
    args = parser.parse_args(argv)

    from dagster_project.definitions import defs

    return materialize(defs, run_config(args.allow_shrink))


def materialize(defs: Definitions, config: dict | None = None) -> int:
    """Run ``defs``' job in this process; 0 if it succeeded, else 1 with each failed step's reason."""
    from dagster_project.instance.run_launcher import worker_tags

    job = defs.resolve_job_def("jaffle_shop_job")
    # DagsterInstance.get() follows DAGSTER_HOME, so headless runs show up in the UI too. The
    # run names this process, so that run monitoring can fail the run if the process dies.
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config=config or {}, instance=instance, raise_on_error=False, tags=worker_tags()
        )
        if not result.success:
            for event in result.all_events:
                if event.event_type == DagsterEventType.STEP_FAILURE:
                    error = event.step_failure_data.error
                    # The step error wraps ours; the cause holds the message meant for people.
                    reason = (error.cause or error).message.strip()
                    print(f"{event.step_key} failed: {reason}", file=sys.stderr)
            print(f"Run {result.run_id} failed; see above, or open it in the UI.", file=sys.stderr)
            return 1
        chart = result.asset_materializations_for_node("order_count_chart")[-1]
        print(f"Run {result.run_id} succeeded.")
        print(f"Chart: {chart.metadata['path'].value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
