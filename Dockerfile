# The project's image. The code server, the daemon and the webserver all run it, each with a command
# of its own (deploy/compose.yaml, deploy/helm/values.yaml): the daemon and the webserver need the
# project too, because the instance's run launcher is the project's (dagster_project.instance.run_launcher).
# .dockerignore keeps local state out: make serve's PostgreSQL and its password, the venv, DuckDB.
FROM python:3.11-slim
WORKDIR /opt/jaffle
COPY . .
# The locked environment without the test tools, compiled to bytecode (the Makefile says why); the
# dbt manifest is built here, once, so that loading the code never runs `dbt parse`.
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv sync --frozen --no-dev --compile-bytecode \
    && .venv/bin/python -m dagster_project.cli.prepare
ENV PATH=/opt/jaffle/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p $DAGSTER_HOME && cp deploy/production/dagster.yaml $DAGSTER_HOME/
