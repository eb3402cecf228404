"""How this project's runs are started and watched: what the instance and the code server use.

- ``run_launcher.py``: the run launcher ``deploy/dagster.yaml`` names, Dagster's default plus the
  worker health check that run monitoring needs.
- ``warm_worker.py``: in a code server, runs fork from a process that has imported the libraries.
"""
