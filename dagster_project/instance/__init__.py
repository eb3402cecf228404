"""How this project's runs are started and watched: what the instance and the code server use.

- ``run_launcher.py``: the run launcher ``deploy/dagster.yaml`` names, Dagster's default plus the
  worker health check that run monitoring needs.
- ``sqlite_storage.py``: the instance class ``deploy/dagster.yaml`` names, Dagster's with an SQLite
  storage whose event log keeps its index database open.
- ``warm_worker.py``: in a code server, runs fork from a process that has imported the libraries.
"""
