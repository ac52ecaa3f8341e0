"""Risk-log fixtures: a real PostgreSQL server for the session, a fresh schema per test.

The server starts only when a test asks for ``pg_server`` or ``pg_url`` (the SQLite and JSONL
tests never pay for it). Tests skip, saying why, only when PostgreSQL's binaries are absent
(``make`` installs Debian's ``postgresql`` package) or psycopg is not installed.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PgServer, find_pg_bin, running_server

_NO_SERVER = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on "
    "PATH: install Debian's postgresql package (make does, as root) to run the PostgreSQL tests"
)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the whole session, stopped (and its folder removed) at the end."""
    pytest.importorskip("psycopg", reason="psycopg is the postgres extra: pip install .[postgres]")
    if find_pg_bin() is None:
        pytest.skip(_NO_SERVER)
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        import os

        if os.geteuid() == 0:
            pytest.skip("running as root, and there is no 'postgres' user to run the server as")
    # Under the system temp dir (mode 1777), not pytest's (0700): the server's user must reach it.
    root = Path(tempfile.mkdtemp(prefix="scope-guard-pg-"))
    try:
        with running_server(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of an empty schema of its own (selected by ``search_path``) for one test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return pg_server.url(options=f"-csearch_path%3D{schema}")
