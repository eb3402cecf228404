"""SPARK_REMOTE and SPARK_CONNECT_TOKEN: one URL pyspark reads as we mean it, and no token in
any message or log, whether the server answers or not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dagster_project.serve.services import free_port
from dagster_project.settings import SettingsError, load_settings
from dagster_project.spark_url import connect_url
from dagster_project.warehouse.spark import SparkUnreachable, SparkWarehouse
from tests.helpers import make_project_env

# Recognisable, with the characters a URL parameter must not hold as they are (base64 padding).
TOKEN = "Tok3n-LEAK-canary/+=;="
# What the failure may take, counting both the step's session and its clean-up's.
UNREACHABLE_WITHIN = 30


def leaked(text: str) -> bool:
    from urllib.parse import quote

    return any(form in text for form in (TOKEN, quote(TOKEN, safe=""), "LEAK-canary"))


@pytest.mark.parametrize(
    "remote", ["sc://db.example:443", "sc://db.example:443/", "sc://db.example:443/;use_ssl=true"]
)
def test_the_token_reaches_pyspark_whole_on_every_url_form(remote):
    from pyspark.sql.connect.client import DefaultChannelBuilder

    builder = DefaultChannelBuilder(connect_url(remote, TOKEN))
    assert builder.token == TOKEN
    assert builder.endpoint == "db.example:443"
    assert builder.secure
    assert builder.use_ssl == remote.endswith("use_ssl=true")


@pytest.mark.parametrize(
    ("remote", "says"),
    [
        ("sc://db.example:443;token=Tok3n-LEAK-canary", "carries a token. Put the URL alone in SPARK_REMOTE"),
        (
            "sc://db.example:443/;token=Tok3n-LEAK-canary",
            "carries a token. Put the URL alone in SPARK_REMOTE",
        ),
        ("sc://db.example:443;use_ssl=true", r"must follow a '/': write sc://db\.example:443/;"),
        ("sc://db.example:44x3", "has no valid port"),
        ("sc://db.example:443/jaffle", "has a path, query or fragment"),
        ("sc://db.example:443/;user_id=a=Tok3n-LEAK-canary", "is not one key=value pair"),
    ],
)
def test_a_bad_spark_remote_is_refused_naming_the_setting_and_never_the_token(remote, says):
    with pytest.raises(SettingsError, match=says) as error:
        load_settings({"JAFFLE_ENV": "spark", "SPARK_REMOTE": remote})
    assert str(error.value).startswith("SPARK_REMOTE: ")
    assert not leaked(str(error.value))


@pytest.mark.parametrize("trailing", ["", "/"])
def test_no_server_fails_fast_saying_how_to_start_one_and_never_shows_the_token(tmp_path: Path, trailing):
    remote = f"sc://127.0.0.1:{free_port()}{trailing}"
    # A short wait: the default's, within the run's 30 s, is the next test's.
    warehouse = SparkWarehouse(
        remote=remote, token=TOKEN, lease_file=str(tmp_path / "lease"), connect_timeout=1
    )
    started = time.monotonic()
    with pytest.raises(SparkUnreachable) as error, warehouse.session():
        pass
    assert time.monotonic() - started < UNREACHABLE_WITHIN
    message = str(error.value)
    assert f"{remote} did not answer within 1 s" in message and "make spark" in message, message
    assert not leaked(message)
    # A traceback shows the chained exceptions too: pyspark's would quote the URL.
    assert error.value.__cause__ is None and error.value.__suppress_context__


@pytest.mark.parametrize("trailing", ["", "/"])
def test_a_run_without_a_server_fails_fast_and_its_logs_never_hold_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, trailing
):
    env = make_project_env(tmp_path, monkeypatch)
    remote = f"sc://127.0.0.1:{free_port()}{trailing}"
    monkeypatch.setenv("JAFFLE_ENV", "spark")
    monkeypatch.setenv("SPARK_REMOTE", remote)
    monkeypatch.setenv("SPARK_CONNECT_TOKEN", TOKEN)
    from dagster_project.definitions import build_defs

    defs = build_defs(load_settings())
    with env.instance() as instance:
        started = time.monotonic()
        result = defs.resolve_job_def("jaffle_shop_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert time.monotonic() - started < UNREACHABLE_WITHIN + 15
        assert not result.success
        failures = [event for event in result.all_events if event.is_step_failure]
        assert failures
        message = failures[0].step_failure_data.error.to_string()
        assert "did not answer" in message and "make spark" in message and remote.rstrip("/") in message
        records = instance.all_logs(result.run_id)
        assert records
        assert not any(leaked(repr(record)) for record in records)
        run = instance.get_run_by_id(result.run_id)
        assert not leaked(repr(run))
    captured = capfd.readouterr()
    assert not leaked(captured.out + captured.err)
    # Compute logs, the run's storage, anything else Dagster wrote in its home, and what the run
    # keeps beside the warehouse (the lease, dbt's target folder and log).
    for path in env.root.rglob("*"):
        if path.is_file():
            assert not leaked(path.read_bytes().decode(errors="replace")), path


@pytest.mark.spark
@pytest.mark.parametrize("trailing", ["", "/"])
def test_a_session_with_a_token_answers_and_the_server_log_never_holds_it(
    spark_server, tmp_path: Path, trailing
):
    # On localhost, pyspark sends the token over a local channel, which this server (no
    # authentication) accepts: the whole path from URL to query runs with the token set.
    remote = f"sc://localhost:{spark_server.port}{trailing}"
    warehouse = SparkWarehouse(remote=remote, token=TOKEN, lease_file=str(tmp_path / "lease"))
    try:
        with warehouse.session() as session:
            assert session.query("select 41 + 1 as answer") == (["answer"], [(42,)])
    finally:
        warehouse.close()
    for log in (spark_server.log, spark_server.output):
        assert not leaked(log.read_text(errors="replace")), log
