"""The chart page and `make chart`, without a browser: what they write, print and open."""

import dataclasses
import os
import re
import webbrowser
from datetime import UTC, datetime

import pytest
from dagster import AssetMaterialization, MetadataValue, build_asset_context

from dagster_project.cli import open_chart
from dagster_project.defs.report import (
    CHART_FILE_NAME,
    ChartConfig,
    ChartOutput,
    counts_table,
    order_count_chart,
    render_chart,
)
from dagster_project.defs.resources import build_resources
from dagster_project.settings import REPO_ROOT

HISTOGRAM = [(0, 38), (1, 33), (2, 23), (3, 5), (5, 1)]
GENERATED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
RUN_ID = "5937c431-4152-4f16-bd0f-5ea8754a1c93"


@pytest.fixture
def browser_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: calls.append(url))
    return calls


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


def materialize_chart(env, report: ChartOutput | None = None, **config):
    report = report or ChartOutput(directory=str(env.chart_dir))
    return order_count_chart(
        build_asset_context(), config=ChartConfig(**config), duckdb=env.warehouse(), report=report
    )


def test_the_chart_asset_reports_its_path_and_the_counts(customers):
    result = materialize_chart(customers)
    path = customers.chart_dir / CHART_FILE_NAME
    assert result.metadata["path"] == MetadataValue.path(str(path))
    assert result.metadata["customers"] == 4
    assert result.metadata["counts"].value.endswith("| 0 | 1 |\n| 1 | 2 |\n| 3 | 1 |")
    assert "4 customers" in path.read_text()


def test_the_chart_goes_where_the_settings_say(customers):
    settings = dataclasses.replace(customers.settings, chart_dir=customers.root / "from-settings")
    report = build_resources(settings)["report"]
    materialize_chart(customers, report)
    assert "4 customers" in (customers.root / "from-settings" / CHART_FILE_NAME).read_text()


def test_a_relative_output_dir_in_run_config_is_relative_to_the_repo_root(customers, monkeypatch):
    # Run from elsewhere: relative to the working directory, the chart would land in cwd/.
    cwd = customers.root / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    folder = os.path.relpath(customers.root / "relative", REPO_ROOT)
    result = materialize_chart(customers, output_dir=folder)
    path = customers.root / "relative" / CHART_FILE_NAME
    assert result.metadata["path"] == MetadataValue.path(str(path))
    assert "4 customers" in path.read_text()
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("open_chart", "open_browser", "opened"),
    [(True, None, True), (False, None, False), (False, True, True), (True, False, False)],
)
def test_the_chart_opens_as_jaffle_open_chart_says_unless_run_config_says_otherwise(
    customers, browser_calls, open_chart, open_browser, opened
):
    settings = dataclasses.replace(customers.settings, open_chart=open_chart, has_display=True)
    materialize_chart(customers, build_resources(settings)["report"], open_browser=open_browser)
    assert browser_calls == ([(customers.chart_dir / CHART_FILE_NAME).as_uri()] if opened else [])


def test_the_chart_asset_never_opens_a_browser_without_a_display(customers, browser_calls):
    settings = dataclasses.replace(customers.settings, open_chart=True, has_display=False)
    materialize_chart(customers, build_resources(settings)["report"], open_browser=True)
    assert browser_calls == []


def record_chart(instance, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<html></html>")
    instance.report_runless_asset_event(
        AssetMaterialization("order_count_chart", metadata={"path": MetadataValue.path(str(path))})
    )


def on_screen(env, has_display: bool):
    return dataclasses.replace(env.settings, has_display=has_display)


def test_make_chart_prints_the_latest_chart_and_opens_no_browser_without_a_display(
    project_env, instance, browser_calls, capsys
):
    chart = project_env.root / "elsewhere" / CHART_FILE_NAME
    record_chart(instance, chart)
    assert open_chart.show_chart(on_screen(project_env, has_display=False)) == 0
    output = capsys.readouterr().out
    assert f"Chart: {chart}" in output
    assert "No display here" in output
    assert browser_calls == []


def test_make_chart_opens_the_latest_chart_where_there_is_a_display(project_env, instance, browser_calls):
    chart = project_env.root / "elsewhere" / CHART_FILE_NAME
    record_chart(instance, chart)
    assert open_chart.show_chart(on_screen(project_env, has_display=True)) == 0
    assert browser_calls == [chart.as_uri()]


def test_make_chart_falls_back_to_the_chart_folder(project_env, browser_calls, capsys):
    chart = project_env.chart_dir / CHART_FILE_NAME
    chart.parent.mkdir()
    chart.write_text("<html></html>")
    assert open_chart.show_chart(on_screen(project_env, has_display=False)) == 0
    assert f"Chart: {chart}" in capsys.readouterr().out


def test_make_chart_says_how_to_draw_a_chart_when_there_is_none(project_env, capsys):
    assert open_chart.show_chart(on_screen(project_env, has_display=False)) == 1
    assert "No chart yet: run `make materialize`" in capsys.readouterr().err
