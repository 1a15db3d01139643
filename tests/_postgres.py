"""A throw-away PostgreSQL server on a loopback port, for the tests and ``bench/queue_load.py``.

The machine's binaries (``initdb``, ``pg_ctl``) run it; ``initdb`` refuses root, so as root the
server runs as the ``postgres`` system user, in a temporary folder that user can reach.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PostgresMissing(RuntimeError):
    """initdb or pg_ctl is not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str | None:
    """``name`` on the PATH, else in Debian's versioned folder (``/usr/lib/postgresql/15/bin``, newest
    first), which is not on the PATH: a plain ``pytest`` there skipped every PostgreSQL test, saying so
    only in its summary."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)
    return next((str(d / name) for d in reversed(versions) if (d / name).is_file()), None)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yields its base URL ``postgresql://signlab@127.0.0.1:PORT`` (add ``/DBNAME``)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresMissing("PostgreSQL's initdb/pg_ctl are not installed")
    # not under pytest's tmp folder: that one is private to root, and the server runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="signlab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        folder.chmod(0o777)
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data = _free_port(), folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "signlab"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
                        "-l", str(folder / "log"), "-w", "start"], check=True, stdout=subprocess.DEVNULL)
        yield f"postgresql://signlab@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(base: str, name: str) -> str:
    """Create database ``name`` on the server at ``base``; returns its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(f"{base.replace('postgresql://', 'postgresql+psycopg://')}/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{base}/{name}"
