"""The user's path in a real browser: `dagster dev`, Materialize all, then the chart, offline.

One `dagster dev` and one Chromium serve the whole module: starting them costs most of the time.
Screenshots land in test-artifacts/ (git-ignored); docs/img/ holds copies for the README.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from dagster_project.defs.report import CHART_FILE_NAME
from dagster_project.settings import DBT_PROJECT_DIR, REPO_ROOT
from tests.browser import (
    CHROMIUM_ARGS,
    DagsterDev,
    chromium_path,
    dagster_dev,
    latest_materialization_run,
    run_statuses,
    wait_for,
    wait_for_new_run,
    wait_for_run_to_end,
)
from tests.helpers import ProjectEnv, make_project_env

ARTIFACTS = REPO_ROOT / "test-artifacts"
RAW_ASSETS = ("raw_customers", "raw_orders", "raw_payments")
DBT_ASSETS = ("stg_customers", "stg_orders", "stg_payments", "customers", "orders")
ALL_ASSETS = (*RAW_ASSETS, *DBT_ASSETS, "order_count_chart")
# How long any wait for the page may take, sized for a 2-core machine running other work: every
# wait polls for the state it needs and returns as soon as it is there. Runs get longer, in
# wait_for_run_to_end.
PAGE_TIMEOUT_MS = 90_000
# Playwright's `expect` has its own timeout (5 s), apart from the page's: one setting for both.
expect.set_options(timeout=PAGE_TIMEOUT_MS)
# Zoomed out, the graph draws names only; the threshold depends on the window size.
MAX_ZOOMS = 10
# The scale of the asset graph's viewport, from its CSS transform matrix(scale, 0, 0, scale, x, y).
GRAPH_SCALE_JS = "new DOMMatrix(document.querySelector('[data-svg-viewport] > div').style.transform).a"
# How an asset node in the graph says that all of its checks passed: "3 / 3 Passed".
ALL_PASSED = re.compile(r"^(\d+) / \1 Passed$")


def dbt_test_count() -> int:
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    return sum(node["resource_type"] == "test" for node in manifest["nodes"].values())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=PAGE_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> ProjectEnv:
    # No monkeypatch: the variables go to `dagster dev` only, as `make run` would set them.
    return make_project_env(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(browser: Browser, ui_env: ProjectEnv) -> Iterator[DagsterDev]:
    # Asks for the browser first, so a missing Chromium fails before a minute of start-up.
    ARTIFACTS.mkdir(exist_ok=True)
    with dagster_dev(ui_env.variables, ARTIFACTS / "dagster-dev.log") as server:
        # On localhost the UI opens a "Join the community" dialog over the page; this is its Skip.
        server.graphql("mutation { setNuxSeen }")
        yield server


@pytest.fixture(scope="module")
def lineage(browser: Browser, server: DagsterDev) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/asset-groups")
    page.get_by_role("button", name="Hide navigation").click()
    show_asset_details(page)
    yield page
    context.close()


@pytest.fixture(scope="module")
def first_run(lineage: Page, server: DagsterDev) -> str:
    run_id = click_materialize_all(lineage, server)
    assert wait_for_run_to_end(server, run_id) == "SUCCESS", f"{server.url}/runs/{run_id}"
    return run_id


def show_asset_details(page: Page) -> None:
    """Expand the groups and zoom in until each asset shows its status rows."""
    # The groups start collapsed. ⌥E is the graph's "Expand all groups", heard once it is drawn.
    expect(page.get_by_role("img", name="unfold_more").first).to_be_visible()
    page.keyboard.press("Alt+E")
    # Zoomed out this far, the graph draws each asset as its name alone, with no tooltip yet.
    expect(page.get_by_text("raw_customers", exact=True).first).to_be_visible()
    zoom_in_to_details(page)


def zoom_in_to_details(page: Page) -> None:
    """Zoom in until the assets show their status rows; at once if they already do."""
    details = page.get_by_text("Asset checks").first
    zoom_in = page.locator("button:has([aria-label='zoom_in'])")
    for _ in range(MAX_ZOOMS):
        if details.is_visible():
            return
        zoom_in_once(page, zoom_in)
    pytest.fail(f"The asset graph never showed the asset details after zooming in {MAX_ZOOMS} times.")


def zoom_in_once(page: Page, zoom_in: Locator) -> None:
    """Click zoom in, then wait until the zoom animation has come to rest at a larger scale.

    Clicking again mid-animation could zoom past the level that shows the details on a slow
    machine; the graph is at rest when two animation frames in a row have the same scale.
    """
    before = page.evaluate(f"() => {GRAPH_SCALE_JS}")
    zoom_in.click()
    page.wait_for_function(
        f"""() => {{
            const scale = {GRAPH_SCALE_JS};
            const resting = scale === window.__lastGraphScale;
            window.__lastGraphScale = scale;
            return resting && scale > {before};
        }}""",
        polling="raf",
    )


def click_materialize_all(page: Page, server: DagsterDev) -> str:
    known = set(run_statuses(server))
    page.get_by_role("button", name="Materialize all").click()
    return wait_for_new_run(server, known)


def asset_node(page: Page, asset: str) -> Locator:
    # The graph may fit itself to the window again once a run has changed it, zoomed out to
    # names alone (seen once under load): zoom back in before reading an asset's rows.
    zoom_in_to_details(page)
    return page.locator("foreignObject").filter(has=page.locator(f'[data-tooltip="{asset}"]'))


def customers_by_order_count(env: ProjectEnv) -> list[tuple[int, int]]:
    return env.query("select coalesce(number_of_orders, 0), count(*) from customers group by 1 order by 1")


def test_materialize_all_in_the_ui_materializes_every_asset_and_passes_every_dbt_check(
    lineage: Page, first_run: str
):
    for asset in ALL_ASSETS:
        expect(asset_node(lineage, asset).get_by_text("Materialized", exact=True)).to_be_visible()
    passed = 0
    # Every dbt model has dbt tests: the staging models their keys, the marts their own facts.
    for asset in DBT_ASSETS:
        checks = asset_node(lineage, asset).locator("a[href$='?view=checks']")
        expect(checks).to_have_text(ALL_PASSED)
        passed += int(ALL_PASSED.match(checks.inner_text())[1])
    # The marts have a freshness check besides (dagster_project/defs/governance.py), passed too.
    assert passed == dbt_test_count() + len(("customers", "orders"))
    lineage.screenshot(path=ARTIFACTS / "asset-graph.png")


@dataclass
class ChartPage:
    page: Page
    requests: list[str]

    @property
    def bars(self) -> Locator:
        return self.page.locator(".barlayer .point path")


@pytest.fixture
def chart(browser: Browser, ui_env: ProjectEnv, first_run: str) -> Iterator[ChartPage]:
    """The chart file in a browser that has no network: any request for one fails."""
    context = browser.new_context(viewport={"width": 900, "height": 560}, offline=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    chart = ChartPage(context.new_page(), [])
    context.on("request", lambda request: chart.requests.append(request.url))
    chart.page.goto((ui_env.chart_dir / CHART_FILE_NAME).as_uri())
    yield chart
    context.close()


def test_the_chart_renders_offline_with_one_bar_per_order_count(
    chart: ChartPage, server: DagsterDev, ui_env: ProjectEnv
):
    histogram = customers_by_order_count(ui_env)
    expect(chart.bars).to_have_count(len(histogram))
    plotted = chart.page.evaluate(
        "() => { const bar = document.getElementById('order-count-chart').data[0];"
        " return [Array.from(bar.x), Array.from(bar.y)]; }"
    )
    assert list(zip(*plotted, strict=False)) == histogram
    labels = chart.page.locator(".barlayer .bartext").all_text_contents()
    assert labels == [f"{count:,}" for _, count in histogram]
    heights = [bar.bounding_box()["height"] for bar in chart.bars.all()]
    pixels_per_customer = max(heights) / max(count for _, count in histogram)
    # Within 3 px: plotly rounds each bar's ends to whole pixels.
    assert heights == [pytest.approx(n * pixels_per_customer, abs=3) for _, n in histogram]
    expect(chart.page.locator(".xtitle")).to_have_text("Number of orders")
    expect(chart.page.locator(".ytitle")).to_have_text("Customers")
    title = chart.page.locator(".gtitle")
    expect(title).to_contain_text("Customers by number of orders")
    customers = sum(count for _, count in histogram)
    drawn_by = latest_materialization_run(server, "order_count_chart")
    expect(title).to_contain_text(f"{customers:,} customers · run {drawn_by[:8]}")
    chart.page.screenshot(path=ARTIFACTS / "chart.png")
    assert [url for url in chart.requests if not url.startswith("file://")] == []


def test_the_chart_is_readable_in_a_narrow_window(chart: ChartPage, ui_env: ProjectEnv):
    chart.page.set_viewport_size({"width": 400, "height": 640})
    chart.page.wait_for_function("document.querySelector('.main-svg').getAttribute('width') <= 400")
    expect(chart.bars).to_have_count(len(customers_by_order_count(ui_env)))
    title = chart.page.locator(".gtitle").bounding_box()
    assert title["x"] >= 0 and title["x"] + title["width"] <= 400, title
    chart.page.screenshot(path=ARTIFACTS / "chart-narrow.png")


def test_the_chart_asset_page_gives_the_chart_path_and_the_counts(
    lineage: Page, server: DagsterDev, ui_env: ProjectEnv, first_run: str
):
    page = lineage.context.new_page()
    page.goto(f"{server.url}/assets/order_count_chart")
    expect(page.get_by_text(str(ui_env.chart_dir / CHART_FILE_NAME)).first).to_be_visible()
    expect(page.get_by_text("make chart", exact=True).first).to_be_visible()
    # The counts are a markdown table, drawn inside the metadata table.
    counts = page.locator("table table tbody tr")
    expect(counts).to_have_count(len(customers_by_order_count(ui_env)))
    rows = [tuple(map(int, row.locator("td").all_inner_texts())) for row in counts.all()]
    assert rows == customers_by_order_count(ui_env)
    page.screenshot(path=ARTIFACTS / "chart-asset-metadata.png")
    page.close()


FRESHNESS_QUERY = """
query ($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { freshnessStatusInfo { freshnessStatus } }
  }
}
"""
# Dagster's freshness daemon, which `dg dev` starts, evaluates every policy each 30 s.
FRESHNESS_EVALUATION_TIMEOUT = 120


def freshness_status(server: DagsterDev, asset: str) -> str:
    data = server.graphql(FRESHNESS_QUERY, {"path": [asset]})
    return data["assetNodeOrError"]["freshnessStatusInfo"]["freshnessStatus"]


def test_the_chart_asset_page_shows_the_chart_fresh_its_policy_and_its_code(
    lineage: Page, server: DagsterDev, first_run: str
):
    # The page reads the daemon's latest verdict when it opens: wait for one first.
    wait_for(
        "the freshness daemon to find the chart fresh",
        lambda: freshness_status(server, "order_count_chart") == "HEALTHY",
        FRESHNESS_EVALUATION_TIMEOUT,
    )
    page = lineage.context.new_page()
    page.goto(f"{server.url}/assets/order_count_chart")
    # The overview names the policy twice: in its status column and in the definition's panel.
    heading = page.get_by_text("Freshness policy", exact=True).first
    expect(heading.locator("xpath=..").get_by_text("Passing", exact=True)).to_be_visible()
    # The fail window, rounded to the hour by the UI.
    expect(page.get_by_text("Fails if more than 25 hours since last materialization").first).to_be_visible()
    # The link to the code: the file and line of the chart's decorator, opened in an editor.
    code_link = page.locator("a[href^='vscode://file/']").filter(has_text="report.py")
    expect(code_link.first).to_be_visible()
    assert re.search(r"/dagster_project/defs/report\.py:\d+$", code_link.first.get_attribute("href"))
    heading.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "chart-asset-freshness.png")
    page.close()


@pytest.fixture
def lost_order(lineage: Page, server: DagsterDev, ui_env: ProjectEnv, first_run: str) -> Iterator[None]:
    """An order with a status no check accepts; afterwards the file, and a green graph, again."""
    orders = ui_env.data_dir / "raw_orders.csv"
    good = orders.read_text()
    orders.write_text(good.replace(",returned\n", ",lost\n", 1))
    yield
    orders.write_text(good)
    # The other tests, run in any order, read the graph and the chart of a good run.
    run_id = click_materialize_all(lineage, server)
    assert wait_for_run_to_end(server, run_id) == "SUCCESS", f"{server.url}/runs/{run_id}"


def test_a_failed_check_shows_on_its_asset_and_the_chart_keeps_the_last_good_run(
    lineage: Page, server: DagsterDev, ui_env: ProjectEnv, lost_order: None
):
    chart = ui_env.chart_dir / CHART_FILE_NAME
    chart_before = chart.read_bytes()
    last_good_run = latest_materialization_run(server, "order_count_chart")

    run_id = click_materialize_all(lineage, server)
    assert wait_for_run_to_end(server, run_id) == "FAILURE", f"{server.url}/runs/{run_id}"

    chart_node = asset_node(lineage, "order_count_chart")
    expect(chart_node.get_by_text("Failed", exact=True)).to_be_visible()
    expect(chart_node.get_by_text("Materialized", exact=True)).to_have_count(0)
    # One of raw_orders' five checks failed in this run; the other four passed.
    expect(asset_node(lineage, "raw_orders").locator("a[href$='?view=checks']")).to_have_text(
        re.compile(r"4 / 5 Passed")
    )
    lineage.screenshot(path=ARTIFACTS / "asset-graph-failed-check.png")
    assert latest_materialization_run(server, "order_count_chart") == last_good_run
    assert chart.read_bytes() == chart_before
    # Nothing was published: the table users read never saw the bad status.
    assert ui_env.query("select count(*) from main.raw_orders where status = 'lost'") == [(0,)]

    checks = lineage.context.new_page()
    checks.goto(f"{server.url}/assets/raw_orders?view=checks")
    status_check = checks.locator("span").filter(has=checks.locator('[title="status_is_accepted"]'))
    expect(status_check).to_contain_text("Failed")
    status_check.click()
    expect(checks.get_by_text(re.compile("lost")).first).to_be_visible()
    checks.screenshot(path=ARTIFACTS / "failed-check.png")
    checks.close()
