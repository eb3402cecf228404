"""`make serve`: Dagster's production shape on one machine, as separate processes.

PostgreSQL (a local cluster unless the environment names a server), a gRPC code server for
`dagster_project.definitions`, `dagster-daemon run` and `dagster-webserver`, wired by
deploy/production/dagster.yaml and deploy/production/workspace.yaml: the same files a Docker or
Kubernetes deployment uses (docs/deploying.md). `services.py` starts and stops them;
`local_postgres.py` keeps the local cluster; `__main__.py` is the command line. Beside them:
`spark_connect.py` (`make spark`) and `dev.py`, which stops `make run`'s `dg dev` on Ctrl-C.
"""
