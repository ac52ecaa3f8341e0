"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl
start`` on a free loopback port, a fresh database per test, stopped at the end.

The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, newest first) or whatever
``initdb`` / ``pg_ctl`` are on ``PATH``. PostgreSQL refuses to run as root, so under root the
server runs as the unprivileged ``postgres`` user (created by the Debian package) through
``runuser``, and its folder is given to that user. Authentication is ``trust`` on loopback
only; the server listens on 127.0.0.1 and a socket inside its own folder, nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_pg_bin", "start_server"]

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_RUN_AS = "postgres"


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest version, else ``PATH``."""
    if _DEBIAN_ROOT.is_dir():
        for version in sorted(_DEBIAN_ROOT.iterdir(), key=_version_key, reverse=True):
            folder = version / "bin"
            if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
                return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running test server; ``superuser`` connects as the role that ran ``initdb``."""

    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    port: int
    superuser: str
    prefix: list[str]

    def url(self, dbname: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        tail = f"?{query}" if query else ""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}{tail}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir),
             "-m", "immediate", "-w", "-t", "30"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        msg = f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
        raise RuntimeError(msg)


def start_server(root: Path, bin_dir: Path) -> PgServer:
    """``initdb`` into ``root`` and start a server there (``root`` must be empty or absent).

    Raises:
        RuntimeError: ``initdb`` or ``pg_ctl start`` failed (their stderr is in the message).
    """
    root.mkdir(parents=True, exist_ok=True)
    data_dir, socket_dir = root / "data", root / "sock"
    socket_dir.mkdir()
    prefix: list[str] = []
    superuser = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        user = pwd.getpwnam(_RUN_AS)  # KeyError: no such user (the caller skips)
        runuser = shutil.which("runuser") or shutil.which("setpriv")
        if runuser is None:
            msg = "neither runuser nor setpriv is available to drop root for initdb"
            raise RuntimeError(msg)
        if Path(runuser).name == "runuser":
            prefix = [runuser, "-u", _RUN_AS, "--"]
        else:
            prefix = [runuser, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                      "--init-groups", "--"]  # fmt: skip
        superuser = _RUN_AS
        # Only the server's own folders change hands; their parents must be traversable
        # (the fixture uses a fresh folder under the system temp dir, mode 1777).
        for folder in (root, socket_dir):
            os.chown(folder, user.pw_uid, user.pw_gid)
    port = _free_port()
    _run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", superuser,
         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
        "initdb",
    )  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
        "-c max_connections=100 -c shared_buffers=16MB -c fsync=on -c synchronous_commit=on"
    )
    _run(
        [*prefix, str(bin_dir / "pg_ctl"), "start", "-D", str(data_dir), "-w", "-t", "60",
         "-l", str(root / "server.log"), "-o", options],
        "pg_ctl start",
    )  # fmt: skip
    return PgServer(bin_dir, data_dir, socket_dir, port, superuser, prefix)


@contextlib.contextmanager
def running_server(root: Path) -> Iterator[PgServer]:
    """A server for the duration of the block (``RuntimeError`` when there are no binaries)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        msg = "no PostgreSQL binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH"
        raise RuntimeError(msg)
    server = start_server(root, bin_dir)
    try:
        yield server
    finally:
        server.stop()
