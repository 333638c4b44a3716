"""A throwaway PostgreSQL server for the tests: a pytest plugin module.

Register it with ``pytest_plugins = ["conftest_postgres"]`` in a test module (a non-root
``conftest.py`` may not do so); its fixtures are then shared by the whole session, so one server
serves every test that asks for it.

The server is a fresh cluster in a temporary directory (``initdb`` and ``pg_ctl`` from
``/usr/lib/postgresql/<version>/bin``, as Debian's ``postgresql`` package installs them; or the
folder in ``$HPO_TEST_PG_BIN``), listening on 127.0.0.1 on a free port, with ``fsync=off``. As
root it runs as the ``postgres`` user (PostgreSQL refuses to run as root). Authentication:

* the superuser ``postgres`` connects without a password (``trust``), from 127.0.0.1 only;
* the role :data:`PASSWORD_ROLE` must give :data:`PASSWORD` (``scram-sha-256``), for the tests
  that check where a password may leak.

Every fixture skips its tests, with the reason, when PostgreSQL's binaries or the ``psycopg``
driver are missing (``scripts/system-deps.sh`` installs the server when run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Name of the database that ``postgres_url`` points to.
DATABASE = "hpo_test"
#: A role that logs in with a password over TCP (scram-sha-256).
PASSWORD_ROLE = "hpo_secret_user"
#: Its password: a string that must never show up in any output (a unique-looking token).
PASSWORD = "Pw-7f3c9e21-never-print-me"

_HBA = f"""\
local   all   all                        trust
host    all   {PASSWORD_ROLE}   127.0.0.1/32   scram-sha-256
host    all   all               127.0.0.1/32   trust
"""
_START_TRIES = 3


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server; helpers to build URLs and create or drop databases."""

    host: str
    port: int
    data_dir: Path

    def url(self, database: str = DATABASE, *, user: str = "postgres",
            password: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database`` on this server."""
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg://{user}{secret}@{self.host}:{self.port}/{database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, outside a transaction (CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres",
                             dbname=database, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())  # our own literal SQL

    def create_database(self, name: str | None = None, *, owner: str = "postgres") -> str:
        """Create an empty database (a fresh name by default); return its name."""
        name = name or f"hpo_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections are still open on it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def empty_database(self, name: str) -> None:
        """Drop every table of a database (its ``public`` schema), closing its connections."""
        self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
        self.execute("DROP SCHEMA public CASCADE", "CREATE SCHEMA public", database=name)


def _bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$HPO_TEST_PG_BIN``, else the newest
    ``/usr/lib/postgresql/*/bin``."""
    if os.environ.get("HPO_TEST_PG_BIN"):
        return Path(os.environ["HPO_TEST_PG_BIN"])
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    newest = max(found, key=lambda p: int(Path(p).parent.parent.name.split(".")[0]))
    return Path(newest).parent


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs a server binary, and the uid/gid that must own its files.

    As root: ``runuser -u postgres --`` (the server refuses to run as root); else nothing.
    """
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("PostgreSQL tests run as root need the `postgres` user "
                    "(apt-get install postgresql creates it).")
    runner = shutil.which("runuser")
    prefix = [runner, "-u", "postgres", "--"] if runner else ["su", "postgres", "-s",
                                                                "/bin/sh", "-c"]
    return prefix, user.pw_uid, user.pw_gid


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(prefix: list[str], argv: list[str]) -> None:
    """Run a server binary (as the server user), raising with its output when it fails."""
    command = [*prefix, shlex.join(argv)] if prefix[:1] == ["su"] else [*prefix, *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")


def _start(bin_dir: Path, root: Path, prefix: list[str], port: int | None = None) -> int:
    """Start the server on ``port``, or on a free port (retrying if another process took it)."""
    error: Exception | None = None
    for _ in range(_START_TRIES):
        chosen = port or _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {chosen} -k {root} -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            _run(prefix, [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l",
                          str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"])
            return chosen
        except RuntimeError as exc:
            error = exc
            time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL did not start: {error}")


def _stop(bin_dir: Path, root: Path, prefix: list[str], mode: str = "immediate") -> None:
    _run(prefix, [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", mode, "-w",
                  "stop"])


def _make_cluster(bin_dir: Path) -> tuple[Path, list[str], int]:
    """initdb a cluster in a new temporary folder; return (folder, command prefix, port)."""
    prefix, uid, gid = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
    _run(prefix, [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
    (root / "data" / "pg_hba.conf").write_text(_HBA)  # the server reads it at start
    if uid is not None and gid is not None:
        os.chown(root / "data" / "pg_hba.conf", uid, gid)
    return root, prefix, _start(bin_dir, root, prefix)


@dataclass(frozen=True)
class StoppableServer(PostgresServer):
    """A server of one test's own, which the test may stop and start again (same port)."""

    bin_dir: Path
    prefix: list[str]

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down (``fast``: connections are closed, as a restart does)."""
        _stop(self.bin_dir, self.data_dir.parent, self.prefix, mode)

    def start(self) -> None:
        """Start the stopped server again, on its port."""
        _start(self.bin_dir, self.data_dir.parent, self.prefix, self.port)


def _server_binaries() -> Path:
    """Where initdb and pg_ctl are; skips the test when psycopg or the binaries are missing."""
    pytest.importorskip("psycopg", reason="the PostgreSQL tests need psycopg: "
                        "pip install 'hpo_plugins[postgres]'")
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                    "run scripts/system-deps.sh as root, or apt-get install postgresql.")
    return bin_dir


@pytest.fixture
def stoppable_postgres_server() -> Iterator[StoppableServer]:
    """A throwaway server for one test, which it may stop and restart (about 2 s to set up)."""
    bin_dir = _server_binaries()
    root, prefix, port = _make_cluster(bin_dir)
    try:
        yield StoppableServer("127.0.0.1", port, root / "data", bin_dir, prefix)
    finally:
        with contextlib.suppress(Exception):
            _stop(bin_dir, root, prefix)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session; stopped and deleted at the end."""
    bin_dir = _server_binaries()
    root, prefix, port = _make_cluster(bin_dir)
    server = PostgresServer("127.0.0.1", port, root / "data")
    try:
        server.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'",
                       f"CREATE DATABASE {DATABASE}")
        yield server
    finally:
        with contextlib.suppress(Exception):
            _stop(bin_dir, root, prefix)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/hpo_test`` (trust authentication)."""
    return postgres_server.url(DATABASE)


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards (about 0.3 s in all)."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def _reused_database(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("hpo_reused")


@pytest.fixture
def clean_postgres_url(postgres_server: PostgresServer, _reused_database: str) -> Iterator[str]:
    """An empty database for one test, emptied again afterwards (3x cheaper than a new one:
    for the many short tests of the conformance suite). Close every storage in the test."""
    yield postgres_server.url(_reused_database)
    postgres_server.empty_database(_reused_database)


@pytest.fixture
def password_database(postgres_server: PostgresServer) -> Iterator[dict[str, Any]]:
    """A new database owned by :data:`PASSWORD_ROLE`: its URL with and without the password."""
    name = postgres_server.create_database(owner=PASSWORD_ROLE)
    yield {"url": postgres_server.url(name, user=PASSWORD_ROLE, password=PASSWORD),
           "bare_url": postgres_server.url(name, user=PASSWORD_ROLE),
           "password": PASSWORD, "server": postgres_server, "database": name}
    postgres_server.drop_database(name)
