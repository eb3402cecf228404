"""Where the raw CSV files live.

The raw assets and the sensor ask this resource for files instead of building paths
themselves, so that an object-store implementation (S3, GCS) can replace the local folder
by implementing the same four methods.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from pathlib import Path
from typing import NamedTuple

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from dagster_project.settings import resolve_path


class DataSourceError(FileNotFoundError):
    """The data source cannot provide a file it was asked for."""


class FileStat(NamedTuple):
    """What a file's listing says about it, without reading it: a changed file changes these."""

    size: int
    modified_ns: int


class DataSource(ConfigurableResource):
    """What the raw assets and the sensor need from wherever the files live.

    Assets and the sensor ask for this base class, so any implementation (or a test's mock)
    can be bound to the ``data_source`` key.
    """

    @abstractmethod
    def list_files(self) -> list[str]:
        """The file names available, sorted: paths relative to the source's root, with ``/``
        (``raw_orders.csv``, ``raw_orders/2018-01-01.csv``)."""

    @abstractmethod
    def local_path(self, name: str) -> Path:
        """A local path to the file's bytes, for DuckDB to read."""

    @abstractmethod
    def stat(self, name: str) -> FileStat:
        """The file's size and modification time, read without opening the file.

        The sensor calls this on every tick and hashes a file only when its stat has changed
        and then held still for a tick, so this must stay cheap: an object store answers it
        from the listing (size, last-modified).
        """

    @abstractmethod
    def fingerprint(self, name: str) -> str:
        """A content hash: the same bytes give the same fingerprint. Reads the whole file."""


class LocalDataSource(DataSource):
    """Raw CSV files in a folder on this machine."""

    directory: str = Field(
        description="Folder that holds raw_customers.csv, raw_orders.csv and raw_payments.csv "
        "(orders and payments may instead come as raw_orders/YYYY-MM-DD.csv, one file a day). "
        "Relative paths are relative to the repo root. Set it with JAFFLE_DATA_DIR."
    )

    _root: Path | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Checked once per run, before any asset starts, so a wrong JAFFLE_DATA_DIR fails fast
        # with one clear message instead of one per asset.
        root = resolve_path(self.directory)
        if not root.is_dir():
            raise DataSourceError(
                f"The data folder {root} does not exist (JAFFLE_DATA_DIR={self.directory!r}). "
                "Point JAFFLE_DATA_DIR at a folder holding the raw CSV files."
            )
        self._root = root

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else resolve_path(self.directory)

    def list_files(self) -> list[str]:
        """The CSV files in the folder and in its folders one level down (day files, as
        ``raw_orders/2018-01-01.csv``), named relative to it with ``/``, sorted."""
        files = [*self.root.glob("*.csv"), *self.root.glob("*/*.csv")]
        return sorted(path.relative_to(self.root).as_posix() for path in files if path.is_file())

    def local_path(self, name: str) -> Path:
        """A path DuckDB can read. An object store would download to a temporary file here."""
        path = self.root / name
        if not path.is_file():
            raise self._missing(name)
        return path

    def stat(self, name: str) -> FileStat:
        """Size and mtime from the file system, without opening the file: as cheap for 1 GB as for 1 KB."""
        try:
            status = (self.root / name).stat()
        except FileNotFoundError:
            raise self._missing(name) from None
        return FileStat(size=status.st_size, modified_ns=status.st_mtime_ns)

    def fingerprint(self, name: str) -> str:
        """A content hash: identical bytes give the same fingerprint, whatever the mtime."""
        with self.local_path(name).open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    def _missing(self, name: str) -> DataSourceError:
        return DataSourceError(
            f"{self.root / name} is missing: the data folder {self.root} has no {name}. "
            "Add the file, or point JAFFLE_DATA_DIR at the folder that has it."
        )
