"""The changed project's ``defs``, for a code server of test_staleness.py's own.

Loaded only in that code server's process: it changes ``INGEST_CODE_VERSION`` for good.
"""

from dagster_project.definitions import defs as project_defs
from dagster_project.defs.ingest import assets as ingest
from tests.changed_loader import NEW_LOADER_VERSION, with_rebuilt_raw_orders

ingest.INGEST_CODE_VERSION = NEW_LOADER_VERSION
defs = with_rebuilt_raw_orders(project_defs)
