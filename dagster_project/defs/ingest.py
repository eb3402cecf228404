"""The raw assets: ``raw_customers``, ``raw_orders`` and ``raw_payments``, loaded and audited in one step.

One step loads every selected file into the build schema, then runs every blocking check on the
result, the checks that compare two tables included. Only when all of them pass is anything
published, and only then is a materialization recorded: a check that fails leaves the published
tables, and the catalog, as the last good run left them. When the run goes on to dbt, the raw
tables wait in the build schema and are published together with the models, after the dbt tests.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from dagster_project import steps
from dagster_project.catalog import failure_summary
from dagster_project.data_source import DataSource
from dagster_project.raw_checks import RAW_CHECKS
from dagster_project.raw_load import INGEST_CODE_VERSION, RAW_TABLES, RawLoadConfig
from dagster_project.run_scope import publishes_after_dbt
from dagster_project.warehouse import BUILD_SCHEMA, DUCKDB_POOL, Built, Warehouse

RAW_ASSET_SPECS = [
    AssetSpec(
        table.name,
        group_name="ingest",
        kinds={"python", "duckdb"},
        code_version=INGEST_CODE_VERSION,
        description=f"{table.file_name} from the data source, loaded into DuckDB as {table.name}.",
        # Not yielded when a check fails: nothing was published, so nothing is recorded.
        skippable=True,
    )
    for table in RAW_TABLES
]


@multi_asset(
    name="raw_tables",
    specs=RAW_ASSET_SPECS,
    check_specs=[check.spec for check in RAW_CHECKS],
    can_subset=True,
    pool=DUCKDB_POOL,
)
def raw_tables(
    context: AssetExecutionContext,
    config: RawLoadConfig,
    duckdb: Warehouse,
    data_source: DataSource,
):
    tables = [table for table in RAW_TABLES if AssetKey(table.name) in context.selected_asset_keys]
    checks = [check for check in RAW_CHECKS if check.key in context.selected_asset_check_keys]
    run_id = context.op_execution_context.run_id
    steps.begin(context, duckdb)
    loaded = {}
    with duckdb.session() as session:
        try:
            for table in tables:
                path = data_source.local_path(table.file_name)
                fingerprint = data_source.fingerprint(table.file_name)
                rows = session.load_csv(table, path, allow_empty=config.allow_empty)
                session.stage(run_id, [Built(table.name)])
                context.log.info(f"Loaded {rows} rows from {path} into the build schema.")
                loaded[table.name] = (rows, path, fingerprint)
            results = [check.run(session, config) for check in checks]
        except BaseException:
            session.discard(run_id)
            raise
        failed = [result for result in results if not result.passed]
        if failed:
            # Nothing was recorded yet for this run's tables, so the catalog needs no repair.
            session.discard(run_id)
        elif not publishes_after_dbt(context):
            session.publish(run_id)
        schemas = session.column_schemas(list(loaded), BUILD_SCHEMA)

    if failed:
        # The results are recorded (the asset's checks show red) but no materialization is:
        # the published table did not change.
        yield from results
        raise Failure(description=failure_summary(failed, "A blocking check on the raw data"))
    for name, (rows, path, fingerprint) in loaded.items():
        yield MaterializeResult(
            asset_key=name,
            # The table follows from the file and the loader, so a new loader makes the models
            # downstream stale even when the file is unchanged.
            data_version=DataVersion(f"{INGEST_CODE_VERSION}:{fingerprint}"),
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": schemas[name],
                "source_file": MetadataValue.path(str(path)),
                "source_sha256": fingerprint,
            },
            check_results=[result for result in results if result.asset_key == AssetKey(name)],
        )
    # Checks selected without their table (a re-run of one check) report on the build schema,
    # which matches what is published.
    yield from (result for result in results if result.asset_key.path[0] not in loaded)
