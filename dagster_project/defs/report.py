"""``order_count_chart``: how many customers placed how many orders, as an offline HTML chart."""

import html
import webbrowser
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    Config,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from dagster_project.defs.transform.assets import jaffle_shop_dbt_assets
from dagster_project.settings import resolve_path
from dagster_project.warehouse import Warehouse

CHART_FILE_NAME = "order_count_chart.html"

# Grouped in SQL so the chart holds one bar per order count, however many customers there are.
HISTOGRAM_SQL = """
select
    coalesce(number_of_orders, 0) as number_of_orders,
    count(*) as customers
from {customers}
group by 1
order by 1
"""


class ChartOutput(ConfigurableResource):
    """Where the chart is written and whether it is opened, built from ``Settings``."""

    directory: str = Field(
        description="Folder the chart is written into (JAFFLE_CHART_DIR, default data/charts). "
        "A relative folder is relative to the repo root."
    )
    open_in_browser: bool = Field(
        default=False, description="Open the chart after writing it (JAFFLE_OPEN_CHART)."
    )
    # On a headless Linux box webbrowser.open may start a console browser and block the run.
    has_display: bool = Field(
        default=False, description="A browser can be shown here; without one, nothing is opened."
    )

    def chart_path(self, output_dir: str | None = None) -> Path:
        return resolve_path(output_dir or self.directory) / CHART_FILE_NAME

    def should_open(self, open_browser: bool | None = None) -> bool:
        wanted = self.open_in_browser if open_browser is None else open_browser
        return wanted and self.has_display


class ChartConfig(Config):
    open_browser: bool | None = Field(
        default=None,
        description="Open the chart in the default browser when it is written. "
        "Unset: follow JAFFLE_OPEN_CHART (0 or 1). Never opens on a machine without a display.",
    )
    output_dir: str | None = Field(
        default=None,
        min_length=1,
        description="Folder to write the chart into, relative to the repo root unless absolute. "
        "Unset: JAFFLE_CHART_DIR (default data/charts).",
    )


def counts_table(histogram: list[tuple[int, int]]) -> str:
    rows = "\n".join(f"| {orders} | {customers} |" for orders, customers in histogram)
    return f"| orders | customers |\n| ---: | ---: |\n{rows}"


def chart_caption(histogram: list[tuple[int, int]], run_id: str, generated_at: datetime) -> str:
    """Row count, run and time: enough to match the page with its run in the UI."""
    customers = sum(count for _, count in histogram)
    # Plotly reads titles as HTML, so anything not ours is escaped before it goes in.
    return html.escape(f"{customers:,} customers · run {run_id[:8]} · {generated_at:%Y-%m-%d %H:%M:%S} UTC")


def render_chart(histogram: list[tuple[int, int]], run_id: str, generated_at: datetime) -> str:
    """The chart as one self-contained HTML page: plotly.js is inlined, so it renders offline."""
    # Imported here: plotly is slow to import and only this asset needs it.
    import plotly.graph_objects as go

    caption = chart_caption(histogram, run_id, generated_at)
    figure = go.Figure(
        go.Bar(
            x=[orders for orders, _ in histogram],
            y=[count for _, count in histogram],
            text=[f"{count:,}" for _, count in histogram],
            textposition="outside",
            marker_color="#4f46e5",
            hovertemplate="%{y:,} customers placed %{x} orders<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": f"Customers by number of orders<br><sup>{caption}</sup>"},
        xaxis={"title": {"text": "Number of orders"}, "dtick": 1},
        yaxis={"title": {"text": "Customers"}, "rangemode": "tozero"},
        margin={"l": 60, "r": 20, "t": 90, "b": 60},
        template="plotly_white",
        autosize=True,
    )
    return figure.to_html(
        include_plotlyjs=True,
        full_html=True,
        config={"responsive": True, "displaylogo": False},
        div_id="order-count-chart",
    )


def write_atomically(path: Path, text: str) -> None:
    """Readers never see half a chart, and a failure leaves the last good chart in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


@asset(
    deps=[get_asset_key_for_model([jaffle_shop_dbt_assets], "customers")],
    group_name="report",
    kinds={"python", "plotly"},
    code_version="1",
    description="Bar chart of customers by number of orders, written as an HTML page.",
)
def order_count_chart(
    context: AssetExecutionContext, config: ChartConfig, duckdb: Warehouse, report: ChartOutput
) -> MaterializeResult:
    # Another run must not be half-way through when the chart reads the published tables.
    duckdb.hold_for_run(context.op_execution_context.run_id, context.log.info)
    with duckdb.session(read_only=True) as session:
        customers_table = session.table(session.published_schema, "customers")
        _, rows = session.query(HISTOGRAM_SQL.format(customers=customers_table))
    histogram = [(orders, count) for orders, count in rows]
    customers = sum(count for _, count in histogram)

    path = report.chart_path(config.output_dir)
    run_id = context.op_execution_context.run_id
    write_atomically(path, render_chart(histogram, run_id, datetime.now(UTC)))
    context.log.info(f"Wrote the chart of {customers} customers to {path}")

    if report.should_open(config.open_browser):
        webbrowser.open(path.as_uri())

    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "customers": customers,
            "counts": MetadataValue.md(counts_table(histogram)),
            "open_with": MetadataValue.text("make chart"),
        }
    )
