"""Shared fixtures: the real bundled dataset (loaded once), small slices of it, CSV builders and
one short trained run that the runs, evaluate and CLI tests read.

Threads are left alone here; run the suite with ``OMP_NUM_THREADS=1`` on a small machine.
"""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from signlab.data import Dataset, Split, load_dataset  # noqa: E402

HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))


def _csv(rows, header: str | None = HEADER) -> str:
    lines = [header] if header is not None else []
    lines += [",".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _rows(n: int = 5, seed: int = 0) -> list[list[int]]:
    """``n`` valid rows: raw labels from 0..24 without 9, pixels 0..255."""
    rng = np.random.default_rng(seed)
    raw = [r for r in range(25) if r != 9]
    return [[raw[(i * 7 + seed) % 24], *rng.integers(0, 256, 784).tolist()] for i in range(n)]


class CSVFactory:
    """Builds small Sign Language MNIST CSVs (``label,pixel1..pixel784``) for tests."""

    header = HEADER
    rows = staticmethod(_rows)
    text = staticmethod(_csv)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, name: str, rows=None, header: str | None = HEADER, text: str | bytes | None = None,
              gz: bool = False) -> Path:
        if text is None:
            text = _csv(_rows() if rows is None else rows, header)
        data = text.encode() if isinstance(text, str) else text
        if gz:
            data = gzip.compress(data)
        path = self.folder / name
        path.write_bytes(data)
        return path


@pytest.fixture
def csvs(tmp_path) -> CSVFactory:
    folder = tmp_path / "csv"
    folder.mkdir()
    return CSVFactory(folder)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """The bundled dataset, parsed once (warm from the default cache after the first session)."""
    return load_dataset()


def _take(split: Split, n: int) -> Split:
    return Split(images=split.images[:n], targets=split.targets[:n], source=split.source)


@pytest.fixture(scope="session")
def small_dataset(dataset) -> Dataset:
    """The first 2,000 training and 500 test images of the real dataset: for quick training runs."""
    return Dataset(train=_take(dataset.train, 2000), test=_take(dataset.test, 500))


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def trained_run(dataset, runs_root):
    """One epoch of logistic regression on the full training set: (Run, train record)."""
    from signlab import api
    from signlab.config import TrainConfig
    from signlab.runs import open_run

    cfg = TrainConfig(model="logreg", epochs=1, augment=False, batch_size=128, seed=0)
    record = api.train(cfg, runs_root, run_id="logreg-session", dataset=dataset)
    return open_run(record["run_id"], runs_root), record


@pytest.fixture
def app_caches():
    """A fresh job manager around an AppTest that sets SIGNLAB_RUNS_DIR: the app caches one per
    process (with its background ticker), made for whatever folder the first page saw."""
    from signlab import ui

    def clear():
        ui.job_manager().stop_background()
        ui.job_manager.clear()

    clear()
    yield
    clear()


# ----------------------------------------------------------------------------- run-store databases
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server on a loopback port, for the session: yields its base URL.

    The binaries (initdb, pg_ctl) come with the machine; initdb refuses to run as root, so as root
    the server runs as the ``postgres`` system user. In CI (``CI`` set) a missing server fails the
    tests instead of skipping them: the PostgreSQL backend must be proven there.
    """
    import shutil
    import subprocess

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's initdb/pg_ctl are not installed: the PostgreSQL run-store tests cannot run")
        pytest.skip("PostgreSQL is not installed")
    import tempfile

    # not under pytest's tmp folder: that one is private to root, and the server runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="signlab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        folder.chmod(0o777)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "signlab"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
                    "-l", str(folder / "log"), "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://signlab@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, monkeypatch):
    """A fresh, empty run database of each backend, also set as ``SIGNLAB_DB`` (so workers started by
    the test use it): None for SQLite in the runs folder, or a new PostgreSQL database on the
    session's server."""
    if request.param == "sqlite":
        monkeypatch.delenv("SIGNLAB_DB", raising=False)
        yield None
        return
    import secrets

    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_server")
    name = f"t_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{base.replace('postgresql://', 'postgresql+psycopg://')}/postgres",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    monkeypatch.setenv("SIGNLAB_DB", f"{base}/{name}")
    yield f"{base}/{name}"
    from signlab.store import forget_stores

    forget_stores()
