"""``DbtCli`` overrides two private methods of dagster-dbt's ``DbtCliResource``.

Private methods can change in any release without notice, and a pin alone would let an upgrade
silently turn our overrides into dead code (or break them). These tests fail, saying what to
re-check, as soon as dagster-dbt renames them, changes their signatures or stops calling them.
"""

import inspect
from functools import cached_property

import pytest
from dagster_dbt import DbtCliResource

from dagster_project.defs.transform.assets import DbtCli

UPGRADE_NOTE = (
    "DbtCli in dagster_project/defs/transform/assets.py overrides DbtCliResource.{name}, and this "
    "dagster-dbt changed it: {what}. Read DbtCliResource.cli() in the new dagster-dbt, then either "
    "adapt the override or drop it (measure a run with and without it; docs/testing.md has the "
    "figures), and update this test."
)
# The private members DbtCli overrides, with the parameters dagster-dbt's own version takes.
OVERRIDDEN = {"_cli_version": None, "_initialize_dbt_core_adapter": ["self", "args"]}


def overridden_here() -> list[str]:
    return [name for name in OVERRIDDEN if name in vars(DbtCli)]


@pytest.mark.parametrize("name", overridden_here())
def test_dagster_dbt_still_has_each_private_member_dbtcli_overrides(name):
    member = inspect.getattr_static(DbtCliResource, name, None)
    if member is None:
        pytest.fail(UPGRADE_NOTE.format(name=name, what="it no longer exists"), pytrace=False)
    parameters = OVERRIDDEN[name]
    if parameters is None:
        if not isinstance(member, cached_property):
            pytest.fail(
                UPGRADE_NOTE.format(name=name, what=f"it is now a {type(member).__name__}"),
                pytrace=False,
            )
    elif list(inspect.signature(member).parameters) != parameters:
        pytest.fail(
            UPGRADE_NOTE.format(name=name, what=f"it now takes {inspect.signature(member)}"),
            pytrace=False,
        )


@pytest.mark.parametrize("name", overridden_here())
def test_dagster_dbt_still_calls_each_private_member_when_it_runs_dbt(name):
    if f"self.{name}" not in inspect.getsource(DbtCliResource.cli):
        pytest.fail(
            UPGRADE_NOTE.format(name=name, what="DbtCliResource.cli() no longer uses it"),
            pytrace=False,
        )
