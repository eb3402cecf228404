"""Run config is checked against the Config classes before any step runs."""

import os
import subprocess

import pytest
from dagster import DagsterInvalidConfigError

from dagster_project.settings import REPO_ROOT
from tests.helpers import VENV_BIN


def raw_customers_config(**config) -> dict:
    return {"ops": {"raw_tables": {"config": config}}}


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        (
            raw_customers_config(allow_empty="yes"),
            'raw_tables:config:allow_empty. Value "yes"',
        ),
        (
            raw_customers_config(allow_emty=True),
            'Received unexpected config entry "allow_emty" at path root:ops:raw_tables:config',
        ),
        (
            {"ops": {"order_count_chart": {"config": {"open_browser": "sometimes"}}}},
            'order_count_chart:config:open_browser. Value "sometimes"',
        ),
    ],
)
def test_invalid_run_config_is_refused_naming_the_field(project_env, instance, run_config, message):
    job = project_env.defs().resolve_job_def("jaffle_shop_job")
    with pytest.raises(DagsterInvalidConfigError, match="Error in config for job jaffle_shop_job") as error:
        job.execute_in_process(run_config=run_config, instance=instance)
    assert message in str(error.value)
    assert not project_env.database.exists(), "no step may run with invalid config"


def test_the_cli_refuses_invalid_config_naming_the_field(project_env):
    result = subprocess.run(
        [
            str(VENV_BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "dagster_project.definitions",
            "--select",
            "raw_customers",
            "--config-json",
            '{"ops": {"raw_tables": {"config": {"allow_empty": "yes"}}}}',
        ],
        cwd=REPO_ROOT,
        env={
            **project_env.variables,
            "PATH": os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode != 0
    assert "DagsterInvalidConfigError" in result.stderr
    assert (
        'path root:ops:raw_tables:config:allow_empty. Value "yes" of type "<class \'str\'>" '
        'is not valid for expected type "Bool"'
    ) in result.stderr
    assert not project_env.database.exists()


LAUNCHPAD_CHECK = """
query LaunchpadCheck($selector: PipelineSelector!, $runConfigData: RunConfigData!) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $runConfigData) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


# Dagster's own serialiser reads a deprecated schedule property; nothing of ours to change.
@pytest.mark.filterwarnings("ignore:Property `ScheduleDefinition.environment_vars`:DeprecationWarning")
def test_the_launchpad_refuses_invalid_config_naming_the_field(ui_graphql):
    selector = {**ui_graphql.repository, "pipelineName": "jaffle_shop_job"}

    def check(run_config: dict) -> dict:
        return ui_graphql(LAUNCHPAD_CHECK, selector=selector, runConfigData=run_config)[
            "isPipelineConfigValid"
        ]

    assert check(raw_customers_config(allow_empty=True))["__typename"] == "PipelineConfigValidationValid"
    invalid = check(raw_customers_config(allow_empty="yes"))
    assert invalid["__typename"] == "RunConfigValidationInvalid"
    assert [error["message"] for error in invalid["errors"]] == [
        "Invalid scalar at path root:ops:raw_tables:config:allow_empty. "
        'Value "yes" of type "<class \'str\'>" is not valid for expected type "Bool".'
    ]
