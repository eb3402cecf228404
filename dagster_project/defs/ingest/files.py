"""The raw CSV files as Dagster sees them: an asset per file, and the sensor that reports new versions.

Each file is an asset of its own (``raw_orders_file`` for raw_orders.csv) whose data version is
the sha256 of its bytes. Orders and payments may instead arrive as one file per day
(``raw_orders/2018-01-01.csv``, ...): the asset then stands for the day files together, and its
version is a sha256 over each day file's name and sha256, so a changed, added or removed day
makes a new one. The raw table that loads it depends on it, so a new version shows in the UI on
the file's asset, and declarative automation (``dagster_project/defs/automation.py``) requests
the table and what reads it.

Dagster runs nothing for these assets: ``raw_files_sensor`` reports each new version, every
30 s and cheaply. Dagster has no native way to tell a file being written from a finished one, so
the sensor keeps that part: it stats each file (size, modification time) without opening it,
and hashes a file only once its stat has changed and then held still from one tick to the next.
A tick where nothing changed reads no file contents (at 10 million customers, 13 to 18 ms a
tick, against 1.4 s to hash the three files), and a half-written file is never reported, so
never loaded.

A new version is recorded as a materialization of the file's asset, not as an observation of an
observable source asset: Dagster 1.13's automation gives an observation no time, and so loses a
file reported on the tick after its table was requested (see ``ON_NEW_FILE`` in automation.py).

The sensor records file versions only; it launches no run. It starts STOPPED, like the
automation sensor it feeds: turn both on under Automation.
"""

import json
from dataclasses import asdict, dataclass, replace

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from dagster_project.defs.ingest.csv_errors import RawFileError
from dagster_project.defs.ingest.data_source import DataSource, FileStat
from dagster_project.defs.ingest.tables import RAW_TABLES, combined_fingerprint, table_files

FILE_KEYS = {table.file_name: AssetKey(f"{table.name}_file") for table in RAW_TABLES}
# The tag a data version travels in on an event reported from outside a run, as the sensor's
# are: Dagster documents it, but exports no constant for it.
DATA_VERSION_TAG = "dagster/data_version"


# The files as assets that Dagster does not compute: the sensor reports each new version.
raw_files = [
    AssetSpec(
        FILE_KEYS[table.file_name],
        group_name="ingest",
        kinds={"csv"},
        description=f"{table.layouts} in the data source, as raw_files_sensor last saw it once it "
        "held still. Its data version is the sha256 of its bytes"
        + (" (of each day file's name and sha256, for day files)." if table.daily else "."),
    )
    for table in RAW_TABLES
]


@dataclass(frozen=True)
class WatchedFile:
    """A raw file as the sensor last saw it. The cursor holds one per file, as JSON."""

    seen: FileStat
    hashed: FileStat | None = None
    sha256: str | None = None

    @property
    def settled(self) -> bool:
        """The hash is of the file as it is now, taken after it held still for a tick."""
        return self.hashed == self.seen


def watch(data_source: DataSource, name: str, previous: WatchedFile | None) -> WatchedFile:
    """The file's state this tick; hashes it only if it changed and has since held still."""
    stat = data_source.stat(name)
    if previous is None:
        return WatchedFile(seen=stat)
    if stat == previous.seen != previous.hashed:
        return WatchedFile(seen=stat, hashed=stat, sha256=data_source.fingerprint(name))
    # Unchanged since it was hashed, or still changing: then the old hash no longer counts
    # (``settled`` is false) and the file is looked at again next tick.
    return replace(previous, seen=stat)


def read_cursor(cursor: str | None) -> dict[str, WatchedFile]:
    entries = json.loads(cursor) if cursor else {}
    # A cursor of another shape (an older sensor's bare hashes): start afresh.
    return {
        name: WatchedFile(
            seen=FileStat(*entry["seen"]),
            hashed=FileStat(*entry["hashed"]) if entry["hashed"] else None,
            sha256=entry["sha256"],
        )
        for name, entry in entries.items()
        if isinstance(entry, dict)
    }


def write_cursor(files: dict[str, WatchedFile]) -> str:
    return json.dumps({name: asdict(file) for name, file in files.items()}, separators=(",", ":"))


def new_version(name: str, sha256: str) -> AssetMaterialization:
    return AssetMaterialization(FILE_KEYS[name], tags={DATA_VERSION_TAG: sha256})


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Records a raw CSV file's new sha256 once the file has stopped changing. "
    "Launches no run; declarative automation acts on what it records.",
)
def raw_files_sensor(context: SensorEvaluationContext, data_source: DataSource):
    return evaluate(context.cursor, data_source)


# Apart from the decorated sensor, so that mutation testing (docs/testing.md), which leaves
# decorated functions alone, reaches it.
def evaluate(cursor: str | None, data_source: DataSource) -> SensorResult:
    """One tick: the tables' new versions, the next cursor, and why nothing was reported."""
    previous = read_cursor(cursor)
    listing = data_source.list_files()
    files: dict[str, WatchedFile] = {}
    reported, waiting, refused = [], [], []
    for table in RAW_TABLES:
        try:
            names = table_files(table, listing)
        except RawFileError as error:
            # Not loadable as it is; the run that tries says the same, and what to do.
            refused.append(str(error))
            continue
        if not names:
            waiting.append(
                f"{table.file_name} (or day files in {table.name}/)" if table.daily else table.file_name
            )
            continue
        watched = {name: watch(data_source, name, previous.get(name)) for name in names}
        files.update(watched)
        if not all(file.settled for file in watched.values()):
            continue
        # The table's version: a new one when a file changed, or a day was added or removed.
        version = combined_fingerprint({name: file.sha256 for name, file in watched.items()})
        before = {name: previous[name].sha256 for name in table_files(table, list(previous))}
        if combined_fingerprint(before) != version:
            reported.append(new_version(table.file_name, version))
    changing = [name for name, file in files.items() if not file.settled]
    reasons = [f"Waiting for {', '.join(waiting)} in the data source."] if waiting else []
    if changing:
        reasons.append(
            f"Waiting for {', '.join(changing)} to hold still: a file is read once its size and "
            "modification time are the same on two ticks."
        )
    reasons.extend(refused)
    # Returned rather than set on the context, so a test can pass it to the next evaluation.
    return SensorResult(
        asset_events=reported,
        cursor=write_cursor(files),
        skip_reason=None if reported else " ".join(reasons) or "No raw file changed.",
    )
