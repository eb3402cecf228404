"""The local PostgreSQL cluster `make serve` keeps in its state folder, when no server is given.

It listens on 127.0.0.1 only, over TCP only (no Unix socket to collide with a system cluster),
and asks for a password (scram-sha-256): a random one, made on first use and kept in the
git-ignored state folder, never in the repo.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dagster_project.settings import PostgresServer

# PostgreSQL refuses to run as root; as root, we run it as the user Debian's package creates.
SERVER_USER = "postgres"
SUPERUSER = "dagster"
DATABASE = "dagster"
INSTALL_HINT = (
    "Install Debian's package with 'sudo apt-get install postgresql' (or 'make postgres' as "
    "root, or your system's package), or name a server you have in DAGSTER_PG_HOST or DAGSTER_PG_URL."
)


class LocalPostgresError(RuntimeError):
    """The local cluster cannot be created or started here."""


def server_binaries() -> Path:
    """The folder holding initdb and postgres: Debian's newest, else the ones on PATH."""
    # Debian keeps the server programs off PATH, one folder per major version.
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = [Path(found).parent] if (found := shutil.which("initdb")) else []
    for folder in [*versions, *on_path]:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise LocalPostgresError(
        "PostgreSQL's server programs (initdb, postgres) are not installed: looked in "
        f"/usr/lib/postgresql/*/bin and on PATH. {INSTALL_HINT}"
    )


@dataclass(frozen=True)
class ServerUser:
    """Who the server runs as: ourselves, or SERVER_USER when we are root."""

    uid: int
    gid: int

    @classmethod
    def for_this_process(cls) -> ServerUser:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise LocalPostgresError(
                f"PostgreSQL refuses to run as root, and there is no '{SERVER_USER}' user to run "
                f"it as. {INSTALL_HINT} (the package creates the user)."
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    @property
    def is_us(self) -> bool:
        return self.uid == os.geteuid()

    def popen_arguments(self) -> dict:
        return {} if self.is_us else {"user": self.uid, "group": self.gid, "extra_groups": []}


@dataclass(frozen=True)
class LocalCluster:
    """The cluster in ``state_dir``: ``postgres/`` (PGDATA, the server's user's) and its password."""

    state_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def password_file(self) -> Path:
        # Beside the data, not in it: the data belongs to the server's user, the password to us.
        return self.state_dir / "postgres-password"

    def password(self) -> str:
        if not self.password_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    def server(self, port: int) -> PostgresServer:
        return PostgresServer("127.0.0.1", port, SUPERUSER, self.password(), DATABASE)

    def ensure_created(self, user: ServerUser) -> None:
        """initdb once: the superuser SUPERUSER, with the password, and scram everywhere."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        binaries = server_binaries()
        password = self.password()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not user.is_us:
            _check_reachable(self.data_dir)
            os.chown(self.data_dir, user.uid, user.gid)
        # initdb reads the password from a file, as the server's user, who cannot read ours.
        with tempfile.TemporaryDirectory() as scratch:
            initial = Path(scratch) / "password"
            initial.write_text(password)
            for path in (Path(scratch), initial):
                os.chown(path, user.uid, user.gid)
            completed = subprocess.run(
                [
                    str(binaries / "initdb"),
                    f"--pgdata={self.data_dir}",
                    f"--username={SUPERUSER}",
                    f"--pwfile={initial}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                cwd=scratch,
                capture_output=True,
                text=True,
                **user.popen_arguments(),
            )
        if completed.returncode != 0:
            raise LocalPostgresError(
                f"initdb could not create the cluster in {self.data_dir}:\n{completed.stderr.strip()}\n"
                f"Remove {self.data_dir} once the cause is fixed, and start again."
            )

    def command(self, port: int) -> list[str]:
        return [
            str(server_binaries() / "postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={port}",
            "-c",
            "unix_socket_directories=",
        ]


def _check_reachable(folder: Path) -> None:
    """The server's user must be able to pass through every folder above its data."""
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise LocalPostgresError(
                f"PostgreSQL runs as the '{SERVER_USER}' user, who cannot enter {parent} (it is "
                f"closed to other users), so it cannot reach {folder}. Set JAFFLE_SERVE_DIR to a "
                f"folder it can reach (under /tmp or /srv, for example), or 'chmod o+x {parent}'."
            )


def ensure_database(server: PostgresServer) -> None:
    """Create the database Dagster uses, on first start."""
    import psycopg2

    if not re.fullmatch(r"\w+", server.database):
        raise LocalPostgresError(f"The local database name {server.database!r} must be a plain word.")
    connection = psycopg2.connect(
        host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
    )
    try:
        connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        with connection.cursor() as cursor:
            cursor.execute("select 1 from pg_database where datname = %s", [server.database])
            if cursor.fetchone() is None:
                cursor.execute(f"create database {server.database}")
    finally:
        connection.close()


def accepts_connections(server: PostgresServer, database: str = "postgres") -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            dbname=database,
            connect_timeout=3,
        ).close()
    except psycopg2.OperationalError:
        return False
    return True
