# `make run` and `make test` are the two commands; the rest are the steps they share.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9
MANIFEST := jaffle_shop/target/manifest.json
DBT_SOURCES := $(shell find jaffle_shop -path jaffle_shop/target -prune -o \( -name '*.sql' -o -name '*.yml' \) -print)
SCALE ?= 1
ENGINE ?= duckdb
# $(call flag,NAME,--option): --option when NAME=1, nothing when NAME is unset or 0; any other value
# stops make, naming the variable, rather than being read one way or the other.
flag = $(if $(filter-out 0 1,$($(1))),$(error $(1)=$($(1)): use $(1)=1 or leave it unset),$(if $(filter 1,$($(1))),$(2)))
# `make spark`'s server: its port, and the folder of its tables, metastore and log.
SPARK_PORT ?= 15002
SPARK_DIR ?= $(CURDIR)/.spark
# Spark's pieces, wanted only when Spark runs: JAFFLE_ENV=spark or ENGINE=spark.
SPARK_NEEDS := $(VENV)/.spark-synced java $(VENV)/.spark-archive

# The venv's tools come first, so `dbt` is always the locked one (dagster-dbt runs `dbt` from PATH).
export PATH := $(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
UI_PORT ?= 3000
# The project's own Dagster home, unless you set DAGSTER_HOME. deploy/dagster.yaml holds its settings.
PROJECT_DAGSTER_HOME := $(CURDIR)/.dagster_home
INSTANCE_TEMPLATE := deploy/dagster.yaml
ifeq ($(strip $(DAGSTER_HOME)),)
export DAGSTER_HOME := $(PROJECT_DAGSTER_HOME)
endif
# make writes instance settings only into its own home: a DAGSTER_HOME you set is yours alone.
ifeq ($(abspath $(DAGSTER_HOME)),$(PROJECT_DAGSTER_HOME))
INSTANCE_CONFIG := $(PROJECT_DAGSTER_HOME)/dagster.yaml
else
INSTANCE_CONFIG := your-dagster-home
endif

.PHONY: run test lint materialize chart bench setup browser clean your-dagster-home serve stop postgres \
	compose java spark spark-stop data sql mutants

# `dg dev` is `dagster dev` (which still works) without its warning that `dg dev` supersedes it.
# --no-check-yaml: the project has no component YAML to check, and the check costs 1.5 s per start.
# serve.dev runs it in a process group of its own and, on Ctrl-C, stops that whole group within
# 10 s: dg dev's processes each spend seconds tearing down Python after they have stopped.
run: setup $(if $(filter spark,$(JAFFLE_ENV)),$(SPARK_NEEDS))
	JAFFLE_OPEN_CHART=$${JAFFLE_OPEN_CHART:-1} python -m dagster_project.serve.dev \
	  dg dev --no-check-yaml --host 127.0.0.1 --port $(UI_PORT)

# Tests run on one worker per core, and at least three (pytest-xdist): on 2 cores about a third of
# the suite waits for servers to start and queues to be polled, and a third worker fills that time
# (docs/testing.md). A module goes to one worker, the Spark modules together, the longest first
# (tests/conftest.py). The 25 slowest steps are listed at the end: where the suite's time goes.
TEST_WORKERS ?= $(shell python3 -c 'import os; print(max(3, os.cpu_count() or 1))' 2>/dev/null || echo 3)
test: setup browser postgres compose $(SPARK_NEEDS)
	pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# Mutation testing (docs/testing.md): mutmut mutates the modules that hold the promises and runs
# the fast tests that reach each mutant, both named in pyproject.toml ([tool.mutmut]). Results are
# kept in mutants/, so a second run tests only the functions that changed.
mutants: setup
	mutmut run
	mutmut export-cicd-stats >/dev/null
	@python -c 'import json; s = json.load(open("mutants/mutmut-cicd-stats.json")); k = s["killed"] + s["timeout"]; n = s["total"] - s["skipped"]; print(f"Mutation score: {k} of {n} mutants killed ({k / n:.1%}). The others: mutmut results.")'

# The production shape on this machine: PostgreSQL, code server, daemon and webserver, each a
# process of its own (docs/deploying.md). Ctrl-C, or `make stop` from another terminal, stops them.
serve: setup postgres
	python -m dagster_project.serve

stop: $(VENV)/.synced
	python -m dagster_project.serve stop

# A Spark Connect server on 127.0.0.1:$(SPARK_PORT) (README, "Spark"). Ctrl-C, or `make spark-stop`
# from another terminal, stops it.
spark: setup $(SPARK_NEEDS)
	python -m dagster_project.serve.spark_connect --port $(SPARK_PORT) --dir $(SPARK_DIR)

spark-stop: $(VENV)/.synced
	python -m dagster_project.serve.spark_connect stop --port $(SPARK_PORT) --dir $(SPARK_DIR)

# ruff for the Python, sqlfluff (jinja templater, DuckDB dialect) for the dbt models.
lint: $(VENV)/.synced
	ruff check .
	ruff format --check .
	cd jaffle_shop && sqlfluff lint models

# ALLOW_SHRINK=1 passes the run config allow_shrink: true (a raw file much smaller than the table
# it replaces is accepted).
materialize: setup
	python -m dagster_project.cli.materialize $(call flag,ALLOW_SHRINK,--allow-shrink)

# Generated data: SCALE=100 writes 10,000 customers into data/scale-100 (git-ignored). DAILY=1 writes
# orders and payments as a file per day (raw_orders/YYYY-MM-DD.csv, raw_payments/YYYY-MM-DD.csv)
# into data/scale-100-daily instead.
data: $(VENV)/.synced
	python -m dagster_project.cli.datagen --scale $(SCALE) --out data/scale-$(SCALE)$(call flag,DAILY,-daily) $(call flag,DAILY,--daily)

# The DuckDB shell (duckdb-cli, locked with the duckdb library) on the project's DuckDB file.
sql: $(VENV)/.synced
	@python -m dagster_project.cli.sql_shell

chart: setup
	python -m dagster_project.cli.open_chart

bench: setup $(if $(filter spark,$(ENGINE)),$(SPARK_NEEDS))
	python -m bench --scale $(SCALE) --engine $(ENGINE)

setup: $(VENV)/.synced $(MANIFEST) $(INSTANCE_CONFIG)

# The system's Python is checked first, so a machine that cannot build the venv stops with the one
# command that fixes it. A venv that failed half-way (Debian without python3-venv leaves one without
# pip) is removed, or the next `make` would take it as made.
$(VENV)/bin/python:
	@$(PYTHON) dagster_project/system_check.py python
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# pip installs uv into the venv, so python3 and make are all a fresh machine needs.
# --compile-bytecode: uv installs sources only, and where PYTHONDONTWRITEBYTECODE is set (as on
# this project's machines and in many images) Python never caches what it compiles, so every
# process compiled Dagster, dbt and SQLAlchemy again: 1.5 to 2 s of each start of the code server,
# each run, each dbt call and each test's subprocess (docs/benchmarks.md, "Bytecode"). It costs
# about 10 s once, here.
$(VENV)/.synced: pyproject.toml uv.lock | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --quiet --frozen --inexact --compile-bytecode --python $(BIN)/python
	touch $@

# The `spark` extra (pyspark with its Connect client, dbt-spark) is about 1 GB, so only Spark's
# commands install it. --inexact, as above, so neither sync removes what the other installed.
$(VENV)/.spark-synced: $(VENV)/.synced
	$(BIN)/uv sync --quiet --frozen --inexact --compile-bytecode --extra spark --python $(BIN)/python
	touch $@

# Spark's class archive (dagster_project/serve/spark_connect.py), recorded as pyspark is installed
# (half a minute here), so the first `make spark` serves in seconds. A later Java records its own
# at its first start.
$(VENV)/.spark-archive: $(VENV)/.spark-synced | java
	python -m dagster_project.serve.spark_connect record
	touch $@

# Built once here, so that importing the code never runs `dbt parse`.
$(MANIFEST): $(VENV)/.synced profiles.yml $(DBT_SOURCES)
	python -m dagster_project.cli.prepare

# The project's home holds no settings of anyone else's, so it follows the template.
$(PROJECT_DAGSTER_HOME)/dagster.yaml: $(INSTANCE_TEMPLATE)
	mkdir -p $(@D)
	cp $(INSTANCE_TEMPLATE) $@

# Never written: without a dagster.yaml, Dagster runs on its defaults, so say how to get ours.
your-dagster-home:
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || echo "DAGSTER_HOME ($(DAGSTER_HOME)) has no dagster.yaml," \
	  "so Dagster runs without this project's settings (a 1 s run queue, dead runs failed" \
	  "by themselves); to use them: mkdir -p $(DAGSTER_HOME) && cp $(CURDIR)/$(INSTANCE_TEMPLATE) $(DAGSTER_HOME)/" >&2

# The browser test drives the system's Chromium or Chrome (system_check.py says where it looks),
# never a downloaded browser build. As root on Debian or Ubuntu, make installs Debian's Chromium.
browser: $(VENV)/.synced
	@python dagster_project/system_check.py browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  fi
	@python dagster_project/system_check.py browser >/dev/null

# Spark runs on the system's Java 17 or newer, never a downloaded JDK. As root on Debian or Ubuntu,
# make installs Debian's headless Java 17.
java: $(VENV)/.synced
	@python dagster_project/system_check.py java >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	  fi
	@python dagster_project/system_check.py java >/dev/null

# The Compose file is checked (tests/test_deploy_files.py) with Debian's docker-compose, which
# needs no Docker daemon for that. As root on Debian or Ubuntu, make installs it.
compose:
	@command -v docker-compose >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	  else \
	    echo "make test checks deploy/compose.yaml with docker-compose: install it with" \
	         "'sudo apt-get install docker-compose' (or your system's package)." >&2; exit 1; \
	  fi

# `make serve` and its tests run a local PostgreSQL from Debian's packages, unless
# DAGSTER_PG_HOST or DAGSTER_PG_URL names a server.
postgres:
	@test -n "$$DAGSTER_PG_HOST$$DAGSTER_PG_URL" || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "make serve needs PostgreSQL's server: install it with 'sudo apt-get install postgresql'" \
	         "(or your system's package), or name a server in DAGSTER_PG_HOST or DAGSTER_PG_URL." >&2; exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) mutants jaffle_shop/target jaffle_shop/logs data/jaffle.duckdb data/charts .dagster_home test-artifacts .serve .spark
