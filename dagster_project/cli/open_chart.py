"""Open the latest chart (`make chart`): the way round browsers blocking `file://` links in the UI.

Always prints the chart's path; opens it in the default browser only where there is a display,
because on a headless machine `webbrowser.open` may start a console browser and never return.
"""

import sys
import webbrowser
from pathlib import Path

from dagster import DagsterError, DagsterInstance

from dagster_project.defs.report import CHART_FILE_NAME, order_count_chart
from dagster_project.settings import Settings, load_settings

NO_CHART_YET = (
    "No chart yet: run `make materialize`, or click Materialize all in the UI (`make run`), "
    "then run `make chart` again."
)


def chart_from_instance(instance: DagsterInstance) -> Path | None:
    """The path the latest materialization of the chart wrote, if it is still there."""
    event = instance.get_latest_materialization_event(order_count_chart.key)
    if event is None or event.asset_materialization is None:
        return None
    path = event.asset_materialization.metadata.get("path")
    return Path(path.value) if path is not None and Path(path.value).is_file() else None


def latest_chart(settings: Settings) -> Path | None:
    """The chart of the latest run Dagster knows of; else the one at the configured path."""
    try:
        # DAGSTER_HOME, read by Dagster itself: the instance `make run` and `make materialize` use.
        with DagsterInstance.get() as instance:
            found = chart_from_instance(instance)
    except DagsterError as error:
        # Dagster's messages run to many lines; the first says what is wrong.
        reason = str(error).strip().splitlines()[0].strip()
        print(
            f"Could not read the Dagster instance: {reason} Looking in JAFFLE_CHART_DIR.",
            file=sys.stderr,
        )
        found = None
    default = settings.chart_dir / CHART_FILE_NAME
    return found or (default if default.is_file() else None)


def show_chart(settings: Settings) -> int:
    """Print the latest chart's path and open it where there is a display; 1 if there is none."""
    chart = latest_chart(settings)
    if chart is None:
        print(NO_CHART_YET, file=sys.stderr)
        return 1
    print(f"Chart: {chart}")
    if settings.has_display:
        webbrowser.open(chart.as_uri())
    else:
        print(
            "No display here, so no browser was opened. Open the file in a browser on this "
            "machine, or copy it to one with a browser: it needs no network."
        )
    return 0


def main() -> int:
    return show_chart(load_settings())


if __name__ == "__main__":
    sys.exit(main())
