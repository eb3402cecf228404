"""Build the dbt manifest at set-up time (`make setup`), so loading the code never parses dbt."""

import os

from dagster_project.settings import DBT_EXECUTABLE, load_settings


def main() -> None:
    from dagster_project.dbt_project import build_project

    # dagster-dbt's preparer runs the `dbt` it finds on PATH: make it the one in our venv.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(DBT_EXECUTABLE), os.environ["PATH"]])
    project = build_project(load_settings())
    project.preparer.prepare(project)
    print(f"dbt manifest ready: {project.manifest_path}")


if __name__ == "__main__":
    main()
