"""Build the dbt manifest at set-up time (`make setup`), so loading the code never parses dbt."""

from dagster_project.settings import load_settings


def main() -> None:
    from dagster_project.defs.transform.project import build_project, prepare

    project = build_project(load_settings())
    prepare(project)
    print(f"dbt manifest ready: {project.manifest_path}")


if __name__ == "__main__":
    main()
