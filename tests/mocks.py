"""A data source that is not a local folder, as tests' stand-in for an object store."""

import hashlib
from pathlib import Path

from dagster_project.data_source import DataSource, DataSourceError


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
        path.write_text(self.files[name], encoding="utf-8")
        return path

    def fingerprint(self, name: str) -> str:
        return hashlib.sha256(self.files[name].encode()).hexdigest()
