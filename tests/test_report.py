"""The chart page and `make chart`, without a browser: what they write, print and open."""

import re
import sys
import webbrowser
from datetime import UTC, datetime

import pytest
from dagster import AssetMaterialization, MetadataValue, build_asset_context

from dagster_project import open_chart
from dagster_project.defs.report import (
    CHART_FILE_NAME,
    ChartConfig,
    counts_table,
    order_count_chart,
    render_chart,
)

HISTOGRAM = [(0, 38), (1, 33), (2, 23), (3, 5), (5, 1)]
GENERATED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
RUN_ID = "5937c431-4152-4f16-bd0f-5ea8754a1c93"


@pytest.fixture
def browser_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: calls.append(url))
    return calls


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def with_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")


def test_the_caption_gives_the_row_count_the_run_and_the_time():
    page = render_chart(HISTOGRAM, RUN_ID, GENERATED_AT)
    assert "100 customers · run 5937c431 · 2024-05-06 07:08:09 UTC" in page
    assert "Customers by number of orders" in page
    assert "Number of orders" in page


def test_the_caption_is_html_escaped():
    page = render_chart(HISTOGRAM, "<i>&x<i>", GENERATED_AT)
    assert "run &lt;i&gt;&amp;x&lt;i&gt; ·" in page
    assert "<i>&x" not in page


def test_the_page_loads_no_script_from_elsewhere():
    page = render_chart(HISTOGRAM, RUN_ID, GENERATED_AT)
    assert re.search(r"<script[^>]*\ssrc\s*=", page) is None
    assert "Plotly.newPlot" in page


def test_the_page_does_not_grow_with_the_data():
    small = render_chart(HISTOGRAM, RUN_ID, GENERATED_AT)
    large = render_chart([(n, count * 100_000) for n, count in HISTOGRAM], RUN_ID, GENERATED_AT)
    assert abs(len(large.encode()) - len(small.encode())) < 10_000


def test_the_counts_table_has_one_row_per_order_count():
    assert counts_table(HISTOGRAM[:2]).splitlines() == [
        "| orders | customers |",
        "| ---: | ---: |",
        "| 0 | 38 |",
        "| 1 | 33 |",
    ]


@pytest.fixture
def customers(project_env):
    project_env.database.parent.mkdir(parents=True)
    with project_env.warehouse().get_connection() as conn:
        conn.execute("create table customers (customer_id integer, number_of_orders bigint)")
        conn.execute("insert into customers values (1, null), (2, 1), (3, 1), (4, 3)")
    return project_env


def materialize_chart(env, **config):
    return order_count_chart(build_asset_context(), config=ChartConfig(**config), duckdb=env.warehouse())


def test_the_chart_asset_reports_its_path_and_the_counts(customers):
    result = materialize_chart(customers)
    path = customers.chart_dir / CHART_FILE_NAME
    assert result.metadata["path"] == MetadataValue.path(str(path))
    assert result.metadata["customers"] == 4
    assert result.metadata["counts"].value.endswith("| 0 | 1 |\n| 1 | 2 |\n| 3 | 1 |")
    assert "4 customers" in path.read_text()


def test_the_chart_asset_never_opens_a_browser_without_a_display(customers, headless, browser_calls):
    materialize_chart(customers, open_browser=True)
    assert browser_calls == []


def test_the_chart_asset_opens_the_chart_where_there_is_a_display(customers, with_display, browser_calls):
    materialize_chart(customers, open_browser=True)
    assert browser_calls == [(customers.chart_dir / CHART_FILE_NAME).as_uri()]


def record_chart(instance, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html></html>")
    instance.report_runless_asset_event(
        AssetMaterialization("order_count_chart", metadata={"path": MetadataValue.path(str(path))})
    )


def test_make_chart_prints_the_latest_chart_and_opens_no_browser_without_a_display(
    project_env, instance, headless, browser_calls, capsys
):
    chart = project_env.root / "elsewhere" / CHART_FILE_NAME
    record_chart(instance, chart)
    assert open_chart.main() == 0
    output = capsys.readouterr().out
    assert f"Chart: {chart}" in output
    assert "No display here" in output
    assert browser_calls == []


def test_make_chart_opens_the_latest_chart_where_there_is_a_display(
    project_env, instance, with_display, browser_calls
):
    chart = project_env.root / "elsewhere" / CHART_FILE_NAME
    record_chart(instance, chart)
    assert open_chart.main() == 0
    assert browser_calls == [chart.as_uri()]


def test_make_chart_falls_back_to_the_chart_folder(project_env, headless, browser_calls, capsys):
    chart = project_env.chart_dir / CHART_FILE_NAME
    chart.parent.mkdir()
    chart.write_text("<html></html>")
    assert open_chart.main() == 0
    assert f"Chart: {chart}" in capsys.readouterr().out


def test_make_chart_says_how_to_draw_a_chart_when_there_is_none(project_env, headless, capsys):
    assert open_chart.main() == 1
    assert "No chart yet: run `make materialize`" in capsys.readouterr().err
