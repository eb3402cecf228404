"""`make materialize` with dbt held at the start of each mart, for tests that stop a run there.

    python -m tests.paused_marts FOLDER

The sample data builds in about a second, too fast to land a signal between the staging views
and the marts on every machine. So this run's dbt commands run in a copy of the dbt project,
written to FOLDER, whose marts each begin with a pre-hook that waits ten minutes; the Dagster
definitions and their manifest are the project's own, and the shipped project has no such hook.
DuckDB's sleep_ms ends as soon as dbt cancels its query.
"""

import shutil
import sys
from pathlib import Path

from dagster import AssetsDefinition, AssetSpec, Definitions
from dagster_dbt import DbtProject
from dagster_dbt.asset_utils import DAGSTER_DBT_PROJECT_METADATA_KEY

from dagster_project.settings import DBT_PROJECT_DIR

# Far longer than any test waits (tests/processes.py), so a dbt that did not stop on the signal
# fails the test instead of building the marts late.
PAUSE_SECONDS = 600
PAUSE = f"{{{{ config(pre_hook='select sleep_ms({PAUSE_SECONDS * 1000})') }}}}\n"


def paused_copy(destination: Path) -> Path:
    """A copy of the dbt project at ``destination`` whose marts wait before they are built."""
    shutil.copytree(DBT_PROJECT_DIR, destination, ignore=shutil.ignore_patterns("target", "logs"))
    for mart in (destination / "models" / "marts").glob("*.sql"):
        mart.write_text(PAUSE + mart.read_text())
    return destination


def in_project_dir(dbt_assets: AssetsDefinition, project_dir: Path) -> AssetsDefinition:
    """``dbt_assets`` running dbt in ``project_dir`` (dagster-dbt takes the folder from there)."""

    def moved(spec):
        project: DbtProject = spec.metadata[DAGSTER_DBT_PROJECT_METADATA_KEY]
        copy = DbtProject(project_dir=project_dir, profiles_dir=project.profiles_dir, target=project.target)
        return spec.replace_attributes(metadata={**spec.metadata, DAGSTER_DBT_PROJECT_METADATA_KEY: copy})

    return dbt_assets.map_asset_specs(moved)


def is_dbt_assets(assets: AssetsDefinition | AssetSpec) -> bool:
    # The raw files are bare specs: nothing runs them, dbt least of all.
    return isinstance(assets, AssetsDefinition) and any(
        DAGSTER_DBT_PROJECT_METADATA_KEY in spec.metadata for spec in assets.specs
    )


def with_dbt_in(defs: Definitions, project_dir: Path) -> Definitions:
    """``defs`` whose dbt assets run dbt in the copy of the dbt project at ``project_dir``."""
    if not any(is_dbt_assets(assets) for assets in defs.assets):
        # Without it, the run would build the shipped project and the test would not test the copy.
        raise RuntimeError(
            f"No asset carries dagster-dbt's {DAGSTER_DBT_PROJECT_METADATA_KEY!r} metadata, so dbt "
            "cannot be moved to the copy: see where this dagster-dbt keeps the DbtProject."
        )
    return Definitions(
        assets=[
            in_project_dir(assets, project_dir) if is_dbt_assets(assets) else assets for assets in defs.assets
        ],
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
    )


def with_paused_marts(defs: Definitions, project_dir: Path) -> Definitions:
    return with_dbt_in(defs, paused_copy(project_dir))


def main() -> int:
    from dagster_project.cli.materialize import materialize
    from dagster_project.definitions import defs

    return materialize(with_paused_marts(defs, Path(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
