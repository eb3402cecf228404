"""A data source that is not a local folder, as tests' stand-in for an object store."""

import hashlib
import zlib
from pathlib import Path

from dagster_project.defs.ingest.data_source import DataSource, DataSourceError, FileStat


class InMemoryDataSource(DataSource):
    """Files held in memory; ``local_path`` spools one to disk, as an S3 client would."""

    files: dict[str, str]
    spool_dir: str

    def list_files(self) -> list[str]:
        return sorted(self.files)

    def local_path(self, name: str) -> Path:
        if name not in self.files:
            raise DataSourceError(f"The in-memory data source has no {name}.")
        path = Path(self.spool_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.files[name], encoding="utf-8")
        return path

    def stat(self, name: str) -> FileStat:
        if name not in self.files:
            raise DataSourceError(f"The in-memory data source has no {name}.")
        content = self.files[name].encode()
        # The mock has no clock: new content stands for a new modification time, as a new
        # object in a store gets a new last-modified.
        return FileStat(size=len(content), modified_ns=zlib.crc32(content))

    def fingerprint(self, name: str) -> str:
        return hashlib.sha256(self.files[name].encode()).hexdigest()
