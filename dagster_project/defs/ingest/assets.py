"""The raw assets: ``raw_customers``, ``raw_orders`` and ``raw_payments``, loaded and audited in one step.

One step loads every selected file into a version of its own (``raw_orders__<run id>``), then
runs every blocking check that reads a loaded table, the checks that compare two tables
included, whether or not they were selected: each compares the versions users would read
together after this run. Only when all of them pass is anything published, and only what is
published is recorded as a materialization. When a dbt model of the same run reads the loaded
tables, they stay pending and the dbt step publishes them together with the models, after the
dbt tests (``dagster_project/warehouse/publish.py``); Dagster needs this step's outputs before
it starts the dbt step, so those are recorded here, and ``dagster_project/warehouse/catalog.py`` restates
the last publish if the run fails later.
"""

from functools import partial
from pathlib import Path

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

from dagster_project.defs.ingest.checks import Candidate, RawCheck, missing_table_result, raw_checks
from dagster_project.defs.ingest.csv_errors import RawFileError
from dagster_project.defs.ingest.data_source import DataSource, DataSourceError
from dagster_project.defs.ingest.files import FILE_KEYS
from dagster_project.defs.ingest.tables import (
    INGEST_CODE_VERSION,
    RAW_TABLES,
    RawLoadConfig,
    RawTable,
    combined_fingerprint,
    refused,
    table_files,
)
from dagster_project.warehouse import Entry, Session, Warehouse, version_name
from dagster_project.warehouse import publish as wap

RAW_NAMES = tuple(table.name for table in RAW_TABLES)
RAW_KEYS = {AssetKey(name) for name in RAW_NAMES}

RAW_ASSET_SPECS = [
    AssetSpec(
        table.name,
        group_name="ingest",
        kinds={"python", "duckdb"},
        code_version=INGEST_CODE_VERSION,
        description=f"{table.layouts} from the data source, loaded into DuckDB as {table.name}.",
        # The file, as raw_files_sensor reports it (dagster_project/defs/ingest/files.py): its new
        # version is what automation loads this table on.
        deps=[FILE_KEYS[table.file_name]],
        # Not yielded unless this step publishes the table: a materialization is recorded only
        # for data users can read.
        skippable=True,
    )
    for table in RAW_TABLES
]


def raw_entry(name: str, version: str, path: Path, fingerprint: str, rows: int | None = None) -> Entry:
    # The table follows from the file and the loader, so a new loader makes the models
    # downstream stale even when the file is unchanged.
    return Entry(
        version, "table", {name: f"{INGEST_CODE_VERSION}:{fingerprint}"}, source=str(path), rows=rows
    )


def raw_metadata(name: str, entry: Entry, table_metadata: dict) -> dict:
    """What a raw asset's materialization records: its rows, columns and file."""
    return {
        **table_metadata,
        "source_file": MetadataValue.path(entry.source or ""),
        "source_sha256": entry.inputs[name].split(":", 1)[1],
    }


def raw_data_version(name: str, entry: Entry) -> DataVersion:
    return DataVersion(entry.inputs[name])


# Dagster starts the dbt step only once this step has yielded its outputs, which records them
# (dagster_project/warehouse/catalog.py says how a failure later in the run is put right).
PENDING = (
    "Loaded and passed every raw check; published together with the dbt models of this run "
    "that read it, after the dbt tests."
)


def _files(data_source: DataSource, table: RawTable, listing: list[str]) -> list[str]:
    """The names of ``table``'s files in the data source: its one file, or its day files."""
    try:
        if names := table_files(table, listing):
            return names
    except RawFileError as error:
        raise refused(table, error) from None
    # Neither: the data source says where it looked.
    try:
        data_source.local_path(table.file_name)
    except DataSourceError as error:
        if not table.daily:
            raise
        raise DataSourceError(f"{error} ({table.name} may also come as {table.day_files}.)") from None
    return [table.file_name]  # written since the listing


def _load(
    session: Session,
    data_source: DataSource,
    listing: list[str],
    table: RawTable,
    config: RawLoadConfig,
    run_id: str,
) -> Entry:
    """Load ``table``'s files into this run's version of it: its entry, with its row count."""
    names = _files(data_source, table, listing)
    paths = [data_source.local_path(name) for name in names]
    fingerprint = combined_fingerprint({name: data_source.fingerprint(name) for name in names})
    version = version_name(table.name, run_id)
    rows = session.load_csv(table, paths, allow_empty=config.allow_empty, into=version)
    # Day files are named by their folder: the table's source, as the shrink guard compares it.
    source = paths[0] if names == [table.file_name] else paths[0].parent
    return raw_entry(table.name, version, source, fingerprint, rows)


def _run_check(check: RawCheck, session: Session, config: RawLoadConfig, candidate: Candidate):
    if check.table not in candidate.versions:
        return missing_table_result(check.table, check.name)
    return check.run(session, config, candidate)


@multi_asset(
    name="raw_tables",
    specs=RAW_ASSET_SPECS,
    check_specs=[check.spec for check in raw_checks()],
    can_subset=True,
)
def raw_tables(
    context: AssetExecutionContext,
    config: RawLoadConfig,
    duckdb: Warehouse,
    data_source: DataSource,
):
    tables = [table for table in RAW_TABLES if AssetKey(table.name) in context.selected_asset_keys]
    run_id = context.op_execution_context.run_id
    loaded_keys = {AssetKey(table.name) for table in tables}
    wap.refuse_unordered_selection(context, RAW_KEYS)
    # A dbt model of this run reads what this step loads: the dbt step publishes it all.
    publish_later = bool(
        wap.readers_in_run(
            context.job_def.asset_layer.asset_graph,
            set(context.job_def.asset_layer.selected_asset_keys),
            loaded_keys,
        )
    )

    wap.begin(context, duckdb)
    with duckdb.session() as session:
        state = session.read_state()
        entries: dict[str, Entry] = {}
        try:
            # Each file goes into a version of its own, so the loads run side by side where the
            # engine allows it; the first that fails, in the tables' order, fails the step.
            listing = data_source.list_files()
            loaded = session.run_all(
                [partial(_load, session, data_source, listing, table, config, run_id) for table in tables]
            )
            for table, entry in zip(tables, loaded, strict=True):
                entries[table.name] = entry
                context.log.info(f"Loaded {entry.rows} rows from {entry.source} into {entry.version}.")
            candidate = Candidate(
                versions={
                    **{name: entry.version for name, entry in state.published.items() if name in RAW_NAMES},
                    **{name: entry.version for name, entry in entries.items()},
                },
                published=state.published,
                loaded=entries,
            )
            guarding = [
                check
                for check in raw_checks()
                if check.key in context.selected_asset_check_keys or check.reads(set(entries))
            ]
            # Each check is a query (on Spark, a round trip and a job): they run side by side
            # where the engine allows it.
            checked = session.run_all(
                [partial(_run_check, check, session, config, candidate) for check in guarding]
            )
            results = {check.key: result for check, result in zip(guarding, checked, strict=True)}
            failed = [result for result in results.values() if not result.passed]
            if failed:
                wap.discard(session, run_id)
            elif publish_later:
                session.stage(run_id, entries)
            else:
                wap.publish(session, run_id, entries, context.log.info)
        except wap.PublishRefusedError as refused:
            wap.discard(session, run_id)
            raise Failure(description=str(refused)) from None
        except BaseException:
            wap.discard(session, run_id)
            raise
        # Each loaded version's row count (as its load counted it) and columns, published or not.
        metadata = {} if failed else session.table_metadata(entries)

    selected = [result for key, result in results.items() if key in context.selected_asset_check_keys]
    if failed:
        # The selected checks' results are recorded (they show red) but no materialization is:
        # the published tables did not change.
        yield from selected
        raise Failure(description=wap.failure_summary(failed, "A blocking check on the raw data"))
    if publish_later:
        context.log.info(
            f"{', '.join(entries)} passed every check; the dbt step of this run publishes "
            "them together with the models that read them."
        )
    for name, entry in entries.items():
        yield MaterializeResult(
            asset_key=name,
            data_version=raw_data_version(name, entry),
            metadata={
                **raw_metadata(name, entry, metadata[name]),
                "published": MetadataValue.text(PENDING if publish_later else "yes"),
            },
            check_results=[result for result in selected if result.asset_key == AssetKey(name)],
        )
    # Checks selected without their table (a re-run of one check) report on the published data.
    yield from (result for result in selected if result.asset_key.path[0] not in entries)
