"""`make serve`'s deployment, started by tests: its PostgreSQL and the folder it keeps state in."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dagster_project.serve.local_postgres import LocalPostgresError, server_binaries
from dagster_project.serve.services import Deployment, free_port
from dagster_project.settings import load_serve_settings
from tests.helpers import ProjectEnv, add_instance_settings


def ensure_postgresql_installed() -> None:
    """Debian's PostgreSQL, installed when we are root; otherwise fail naming the package."""
    try:
        server_binaries()
    except LocalPostgresError as missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail(str(missing), pytrace=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True)


def serve_dir() -> Path:
    # pytest's temporary folders are closed to other users, and as root PostgreSQL runs as the
    # `postgres` user, who must reach its cluster: this folder is open to pass through (0711).
    state = Path(tempfile.mkdtemp(prefix="jaffle-serve-"))
    state.chmod(0o711)
    return state


@contextmanager
def serving(
    project: ProjectEnv,
    artifacts: Path,
    deployment_class: type[Deployment] = Deployment,
    instance_settings: str = "",
) -> Iterator[Deployment]:
    """`make serve`'s services on ``project``'s warehouse and data, each started and ready.

    PostgreSQL is a new local cluster unless DAGSTER_PG_* name a server. ``instance_settings``
    are added to the production dagster.yaml, as a user editing it would.
    """
    state = serve_dir()
    given = {name: value for name, value in os.environ.items() if name.startswith("DAGSTER_PG_")}
    settings = load_serve_settings(
        {**given, "JAFFLE_SERVE_DIR": str(state), "DAGSTER_WEBSERVER_PORT": str(free_port())}
    )
    if settings.postgres is None:
        ensure_postgresql_installed()
    deployment = deployment_class(settings, base_env={**os.environ, **project.variables})
    try:
        deployment.prepare()
        add_instance_settings(deployment.dagster_home, instance_settings)
        for name in deployment.services:
            deployment.start(name)
        yield deployment
    finally:
        deployment.stop_all()
        shutil.copytree(deployment.logs, artifacts, dirs_exist_ok=True)
        shutil.rmtree(state, ignore_errors=True)
