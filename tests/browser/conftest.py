"""Browser tests: the real app (``streamlit run app.py``) driven in Debian's Chromium by playwright.

One server for the session, on a free local port with a temporary runs folder that already holds
two small trained runs. Every test saves a screenshot of the page it ends on under
``test-artifacts/screenshots/``; a failing step says which step failed and what the page showed.

Chromium missing: the tests are skipped with the reason, except in CI (``CI`` set), where that is
a failure.
"""
from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("SIGNLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


# test file -> xdist group, balanced by the files' measured times (--durations, 2 workers)
BROWSER_GROUPS = {
    "test_load_browser.py": "browser1", "test_app_browser.py": "browser1", "test_auth_browser.py": "browser1",
    "test_insight_browser.py": "browser1", "test_live_chart_browser.py": "browser1",
    "test_newcomer_browser.py": "browser2", "test_pages_browser.py": "browser2",
    "test_calibrate_browser.py": "browser2", "test_classify_browser.py": "browser2",
}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            # with pytest-xdist (--dist loadgroup) each file's tests run in one worker, one after
            # another, sharing that worker's server and Chromium; the files make two groups of about
            # equal time, so two workers each take one (as one group in one worker they added up to
            # most of the suite's 15 minutes by --durations; in two groups they take 6.6 minutes alone)
            item.add_marker(pytest.mark.xdist_group(BROWSER_GROUPS.get(Path(str(item.fspath)).name, "browser1")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}; CI must run the browser tests")
        pytest.skip(f"Chromium is missing at {CHROMIUM} (apt-get install chromium)")
    try:
        importlib.import_module("playwright")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the playwright package is missing; CI must run the browser tests")
        pytest.skip("the playwright package is missing (pip install playwright)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """A runs folder with a logistic regression and a short ConvNet run already trained."""
    from signlab import api
    from signlab.config import TrainConfig
    from signlab.data import load_dataset

    d = tmp_path_factory.mktemp("browser-runs")
    ds = load_dataset()
    api.train(TrainConfig(model="logreg", epochs=1, augment=False, log_every=20), d, run_id="logreg-ready",
              dataset=ds)
    # one short epoch: the kernel history then holds epochs 0 and 1 for the Kernels slider. Without
    # test-time shifts: their five passes over the test set took 14 of this fixture's 23 s (one
    # thread), paid by both browser workers before their first test (tests/test_speed_recipe.py
    # covers them)
    api.train(TrainConfig(model="convnet", epochs=1, max_steps=60, batch_size=128, lr=3e-3, log_every=5, tta=False),
              d, run_id="convnet-ready", dataset=ds)
    return d


@pytest.fixture(scope="session")
def server(runs_dir, chromium_path) -> str:
    port = _free_port()
    env = {**os.environ, "SIGNLAB_RUNS_DIR": str(runs_dir), "SIGNLAB_JOB_LIMIT": "1", "PYTHONUNBUFFERED": "1"}
    log = open(runs_dir.parent / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {(runs_dir.parent / 'streamlit.log').read_text()[-2000:]}")
    else:
        raise RuntimeError("streamlit did not become healthy in 60 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    # each worker the server started runs in a session of its own (a restart must not kill training): the
    # server's end left them training what a failed test left running, beside the rest of the suite
    from _helpers import stop_workers

    stop_workers(runs_dir)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; its final screenshot goes to test-artifacts/screenshots/<test>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    try:
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
        pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    finally:
        ctx.close()
