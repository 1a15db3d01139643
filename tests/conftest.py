"""Shared fixtures: the real bundled dataset (loaded once), small slices of it, CSV builders and
one short trained run that the runs, evaluate and CLI tests read.

Threads: scripts/test.sh runs two pytest workers with ``OMP_NUM_THREADS=1`` each (two training
tests at once would otherwise oversubscribe 2 cores).
"""
from __future__ import annotations

import gzip
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from signlab.data import Dataset, Split, load_dataset  # noqa: E402

# Modules whose module-scoped fixtures are costly run whole in one pytest-xdist worker (--dist loadgroup),
# so those fixtures are built once: test_cli's bad-input cases (about 25 s, a fresh interpreter each)
# were built in both workers, measured in --durations of three runs.
ONE_WORKER_MODULES = ("test_cli.py",)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups (registered after this file)
def pytest_collection_modifyitems(config, items):
    for item in items:
        name = Path(str(item.fspath)).name
        if name in ONE_WORKER_MODULES:
            item.add_marker(pytest.mark.xdist_group(name.removesuffix(".py")))


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


@pytest.fixture(autouse=True)
def _no_warm_workers_outside_the_browser(request, monkeypatch):
    """Page tests (AppTest) open the Train page, and the Train page starts a warm worker that waits
    two minutes for a run (``JobManager.warm``): 4.3 CPU-seconds to start and warm up, about 1 more
    every 30 s of waiting, for a run that never comes (the tests outside the browser started 45
    workers with it, 33 without). Outside the browser tests, workers start when a run is queued
    and leave when the queue is empty; tests of lingering set their own value. The browser tests
    keep the product's default, as a student gets it."""
    if request.node.get_closest_marker("browser") is None:
        monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "0")


@pytest.fixture(autouse=True)
def _no_queue_ticker_left_behind():
    """A page test (AppTest) makes the app's cached job manager, whose background thread ticks the
    queue every second for the rest of the process. Its store is looked up by ``SIGNLAB_DB`` at each
    tick, so it went on reading (and timing its reads into) whatever database a later test set: a
    test that counts tick's queries on PostgreSQL saw the ticker's among them and failed in CI (stop
    55). After each test, a ticker left running is stopped and the cache cleared, as ``app_caches``
    does around the tests that ask for it."""
    yield
    if "signlab.ui" in sys.modules and any(t.name == "signlab-jobs" and t.is_alive() for t in threading.enumerate()):
        _clear_app_job_manager()


@pytest.fixture
def ctrl_c_reaches_python():
    """Ctrl-C as in a terminal's foreground: Python's own SIGINT handler. A suite started in the
    background (``cmd &``, nohup) inherits SIGINT ignored, and signlab leaves an ignored Ctrl-C
    ignored (signlab.interrupt), so the tests that press it would see nothing."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def _streamlit_logs_to_an_open_stream():
    """Streamlit makes its loggers' handlers again on the sys.stderr of the moment whenever an app's
    config is read (AppTest): inside a test that captures output (capsys), on that test's stream,
    closed after it. A later test's "missing ScriptRunContext" warning (a fixture clearing the app's
    caches) then put "--- Logging error ---" in its output, and a test of one-line errors failed.
    After each test, a handler left on a closed stream writes to the process's stderr again."""
    import logging

    yield
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("streamlit") and isinstance(logger, logging.Logger):
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                    handler.stream = sys.__stderr__  # not setStream(): it flushes the closed one first


@pytest.fixture(autouse=True)
def _no_trials_outside_the_browser(request, monkeypatch):
    """A page's estimate for a network no run has measured times a few of its steps
    (``ui._trial_speed``, a child process of 2-8 s a configuration): page tests (AppTest) open many configurations,
    and it added 12 s to each of two. tests/test_trainer.py tests the trial, and tests marked
    ``trial`` run it in a page; the browser tests keep it, as a student gets it."""
    if request.node.get_closest_marker("browser") is None and request.node.get_closest_marker("trial") is None:
        monkeypatch.setattr("signlab.ui._trial_speed", lambda key: None)
    monkeypatch.setattr("signlab.ui._TRIALS", {})  # what an earlier test timed (or patched to None) is not kept


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
    _clear_app_job_manager()
    yield
    _clear_app_job_manager()


def _clear_app_job_manager() -> None:
    """Stop the app's cached job manager's ticker and drop it from the cache."""
    from signlab import ui

    ui.job_manager().stop_background()
    ui.job_manager.clear()


# ----------------------------------------------------------------------------- run-store databases
@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on a loopback port for the session (its base URL). In CI (``CI``
    set) a missing server fails the tests instead of skipping them: the backend must be proven there."""
    from tests._postgres import PostgresMissing, postgres_server as server

    try:
        with server() as url:
            yield url
    except PostgresMissing as err:
        if os.environ.get("CI"):
            pytest.fail(f"{err}: the PostgreSQL run-store tests cannot run")
        pytest.skip(str(err))


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

    from signlab.store import forget_stores
    from tests._postgres import create_database

    url = create_database(request.getfixturevalue("postgres_server"), f"t_{secrets.token_hex(4)}")
    monkeypatch.setenv("SIGNLAB_DB", url)
    yield url
    forget_stores()


@pytest.fixture
def hand_models() -> None:
    """The hand detector runs here (ai-edge-litert and the shipped models), else the test is skipped;
    in CI (``CI`` set) it fails, naming what is missing (tests._local.needs_hand_models)."""
    from tests._local import hand_models_or_skip

    hand_models_or_skip()

