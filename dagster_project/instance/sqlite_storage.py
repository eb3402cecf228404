"""Dagster's SQLite storage, with the event log's index database kept open between events.

Dagster's SQLite event log opens a new SQLAlchemy engine and connection to the index database
(``history/runs/index.db``) for every asset event, check evaluation and run status change, and
again for every check of whether a table exists. A run of every asset stores about 150 events:
those connections cost a headless run about 0.35 s on this machine (docs/benchmarks.md, "Dagster's
SQLite event log"). Here each process keeps one connection to the index database, and one
engine per run database, for its life; nothing else differs from Dagster's storage. It replaces
methods of Dagster's own class (``_connect``, ``has_table``): tests/test_sqlite_storage.py fails
if a Dagster release renames them or stops going through them.

What is kept as Dagster has it:
- Each run's own database (``<run id>.db``) is still opened and closed for each use. Closing the
  last connection writes SQLite's write-ahead log into the database file, and that change is
  what the webserver's file watcher waits for before it shows a run's new events in the UI.
- One connection per database at a time in a process: Dagster's own lock around each use.
- A process forked from one holding the connection opens its own; the parent's is never used
  or closed there (SQLite connections must not cross a fork).

``deploy/dagster.yaml`` names ``ProjectInstance``, which makes this the default storage of a
DAGSTER_HOME without a ``storage`` setting, in that home's own folder; a ``storage`` setting
(PostgreSQL in ``deploy/production/``) replaces it as it replaces Dagster's default.
"""

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, Pool, StaticPool

# Run databases whose engines a process keeps: the webserver reads many runs' databases, and an
# engine holds no connection between uses (NullPool), so this bounds memory, not files.
KEPT_RUN_ENGINES = 16
# Connections forked away from: kept referenced so that they are never closed in the child.
_INHERITED: list[object] = []


class PersistentSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, whose engines and index connection live as long as the process."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # Before Dagster's __init__, which indexes a new home's events through _connect.
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():
            _INHERITED.append(self._engines)
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            # The index: one connection, used under Dagster's lock by whichever thread holds it.
            engine = self._new_engine(shard, StaticPool if shard == INDEX_SHARD_NAME else NullPool)
            self._engines[shard] = engine
            while len(self._engines) > KEPT_RUN_ENGINES + 1:
                oldest = next(name for name in self._engines if name != INDEX_SHARD_NAME)
                self._engines.pop(oldest).dispose()
        self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            if shard not in self._initialized_dbs:
                # Creating a database opens several connections at once (Dagster's migrations),
                # which the index's one kept connection cannot serve: an engine of its own there.
                index = shard == INDEX_SHARD_NAME
                self._initdb(self._new_engine(shard, NullPool) if index else self._engine(shard))
                self._initialized_dbs.add(shard)
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _new_engine(self, shard: str, pool: type[Pool]) -> Engine:
        return create_engine(
            self.conn_string_for_shard(shard),
            poolclass=pool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )

    def dispose(self) -> None:
        super().dispose()
        if self._engines_pid == os.getpid():
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def has_table(self, table_name: str) -> bool:
        # Asked before every check evaluation is stored. A table, once there, stays.
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables


class PersistentSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, schedules, event log) with the event log above."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # Dagster's __init__ builds its own event log, which would create the index database
        # twice in a new home: the same three stores, built here instead.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PersistentSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping
    ) -> "PersistentSqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)


class ProjectInstance(DagsterInstance):
    """Dagster's instance, whose default storage is ``PersistentSqliteStorage`` in the instance's home."""

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @classmethod
    def config_defaults(cls, base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        storage = ConfigurableClassData(
            __name__, PersistentSqliteStorage.__name__, yaml.dump({"base_dir": base_dir})
        )
        return {**InstanceRef.config_defaults(base_dir), "storage": storage}
