"""The waits a user notices, and what the dashboard costs, measured side by side.

    python bench/small_waits.py [--epochs 3] [--pairs 3]

Prints, each beside its budget:
- the dataset's warm load time (budget 0.5 s);
- warm prediction of one uploaded 224x224 JPEG through the one preprocessing path (budget 20 ms);
- every page's first paint in a new browser session once the server is warm (budget 2 s), beside
  the same figure for a one-line Streamlit page served in the same run (the floor no page of any
  Streamlit app can beat on this machine: 1.5-2.3 s on a 2-core AVX2 EPYC) and the ratio to it;
- what watching costs: the fast preset started from the Train page with the page open in Chromium
  on this machine, against the same run with its tab closed, in ``--pairs`` pairs on one server;
  the ratio of the medians (budget 1.15, issue #18), and the tab-closed runs against the CLI's
  (budget 1.05: the server's own share when the students' browsers run elsewhere);
- the live chart's update rate while training (budget >= 1 a second);
- peak RSS of a training worker and RSS of the server with three users connected (budget below).
Needs Chromium and playwright, like the browser tests.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

run_main = importlib.import_module("_common").run_main  # also puts the project on sys.path

import numpy as np
from PIL import Image

from signlab.data import load_dataset
from signlab.errors import RunError
from signlab.inference import predict
from signlab.preprocess import prepare
from signlab.runs import open_run

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["/", "/guide", "/data", "/train", "/evaluate", "/kernels", "/classify", "/runs", "/sweeps"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
BUDGET_WORKER_MB, BUDGET_SERVER_MB = 1500, 1500


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process and its children (MB), from /proc."""
    total = 0.0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                   text=True).stdout.split()]
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def start_server(runs_dir: Path, script: str = "serve.py") -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SIGNLAB_RUNS_DIR": str(runs_dir), "SIGNLAB_JOB_LIMIT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not start")


def first_paints(browser, url: str, paths: list[str]) -> list[tuple[str, float]]:
    """Seconds from navigation to the first title, each path in a new browser session."""
    paints = []
    for path in paths:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = ctx.new_page()
        t = time.perf_counter()
        pg.goto(url + path)
        pg.wait_for_selector("h1", timeout=60_000)
        paints.append((path, time.perf_counter() - t))
        ctx.close()
    return paints


def floor_paint(browser, tmp: Path, n: int = 5) -> float:
    """Median first paint of a one-line Streamlit page (a title only), served and opened as ours are."""
    script = tmp / "floor.py"
    script.write_text('import streamlit as st\nst.title("floor")\n')
    proc, url = start_server(tmp, str(script))
    try:  # the first visit warms the server, as PAGES' warm-up does for ours, and is left out
        return statistics.median(s for _, s in first_paints(browser, url, ["/"] * (n + 1))[1:])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)


def wait_idle(page) -> None:
    page.wait_for_selector("h1", timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _finished(runs_dir: Path, before: set[str]) -> Path | None:
    """The run started after ``before`` was listed, once the run store says it ended."""
    for d in runs_dir.iterdir():
        if d.is_dir() and d.name not in before:
            try:
                state = open_run(d.name, runs_dir).status().get("status")
            except RunError:  # its folder is still being written
                continue
            if state in ("completed", "failed", "stopped", "diverged"):
                return d
    return None


def watch_pair(browser, url: str, runs_dir: Path, epochs: int) -> dict:
    """The fast preset started from the Train page twice: watched to the end, then with its tab closed.

    The end is read from the run store, not the page, so the watching page does only what a
    student's would; the watched page's live chart is sampled (its last step, an attribute read that
    costs no layout) every 0.2 s.
    """
    out: dict = {}
    for closed in (False, True):
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(url + f"/train?preset=fast&epochs={epochs}")
        wait_idle(pg)
        time.sleep(2)  # let the page settle: the comparison is of training beside it
        before = {d.name for d in runs_dir.iterdir()} if runs_dir.exists() else set()
        pg.get_by_role("button", name="Start").click()
        t_end = time.time() + 60
        while not ({d.name for d in runs_dir.iterdir()} - before) and time.time() < t_end:
            time.sleep(0.1)  # the run exists once its folder does: only then may the tab close
        if closed:
            pg.close()
        seen, last, t_end = [], None, time.time() + 900
        while (done := _finished(runs_dir, before)) is None and time.time() < t_end:
            if not closed:
                x = pg.evaluate("() => { const c = document.querySelector('canvas.signlab-live-chart');"
                                " return c ? c.dataset.lastX : null; }")
                if x and x != last:
                    seen.append(time.time())
                    last = x
            time.sleep(0.2)
        if not closed:
            pg.close()
            out["gaps"] = list(np.diff(seen))
        if done is None:
            raise RuntimeError("a dashboard run did not end in 15 minutes")
        out["closed" if closed else "watched"] = open_run(done.name, runs_dir).status()["train_seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=3, help="watched and tab-closed runs to compare (median)")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []

    t = time.perf_counter()
    ds = load_dataset()
    warm = time.perf_counter() - t
    rows.append(("dataset warm load", f"{warm * 1000:.0f} ms", "<= 500 ms"))

    tmp = Path(tempfile.mkdtemp(prefix="signlab-bench-"))
    runs_dir = tmp / "runs"
    t = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "signlab", "train", "--epochs", str(args.epochs), "--runs-dir",
                          str(runs_dir), "--json", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    cli_rec = json.loads(cli.stdout.strip().splitlines()[-1])
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    run = open_run(cli_rec["run_id"], runs_dir)

    # warm prediction of an uploaded photo-sized JPEG
    buf = io.BytesIO()
    Image.fromarray(ds.test.images[0]).resize((224, 224)).convert("RGB").save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    model = run.load_model()
    predict(model, [prepare(data).image28])
    times = []
    for _ in range(50):
        t = time.perf_counter()
        predict(model, [prepare(data, "upload.jpg").image28])
        times.append(time.perf_counter() - t)
    rows.append(("warm prediction of one 224x224 JPEG (median of 50)", f"{1000 * statistics.median(times):.1f} ms",
                 "<= 20 ms"))

    from playwright.sync_api import sync_playwright

    proc, url = start_server(runs_dir)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            warmup = b.new_page()
            for path in PAGES:  # warm the server: imports, caches, the dataset
                warmup.goto(url + path)
                wait_idle(warmup)
            paints = first_paints(b, url, PAGES)
            floor = floor_paint(b, tmp)
            worst = max(paints, key=lambda x: x[1])
            median = statistics.median(s for _, s in paints)
            rows.append(("first paint, slowest page (" + worst[0] + ")", f"{worst[1] * 1000:.0f} ms", "<= 2000 ms"))
            rows.append(("first paint, median over 9 pages", f"{median * 1000:.0f} ms", "<= 2000 ms"))
            rows.append(("first paint of a one-line Streamlit page (floor)", f"{floor * 1000:.0f} ms", ""))
            rows.append(("first paint: median page / floor", f"{median / floor:.2f}", ""))
            users = [b.new_page() for _ in range(3)]
            for u, path in zip(users, ["/", "/evaluate", "/kernels"]):
                u.goto(url + path)
                wait_idle(u)
            rows.append(("server RSS with 3 users connected", f"{rss_mb(proc.pid):.0f} MB", f"<= {BUDGET_SERVER_MB} MB"))

            # the same run from the dashboard, watched and unwatched, in pairs on this one server
            pairs = [watch_pair(b, url, runs_dir, args.epochs) for _ in range(args.pairs)]
            b.close()
        updates = [u for pair in pairs for u in pair["gaps"]]
        watched = statistics.median(pair["watched"] for pair in pairs)
        closed = statistics.median(pair["closed"] for pair in pairs)
        for i, pair in enumerate(pairs, 1):
            rows.append((f"pair {i}: watched / tab closed (train seconds)",
                         f"{pair['watched']:.1f} / {pair['closed']:.1f} s", f"{pair['watched'] / pair['closed']:.3f}"))
        rows.append((f"watching cost: median watched / median closed, {len(pairs)} pairs", f"{watched / closed:.3f}",
                     "<= 1.15"))
        gaps = np.array(updates) if updates else np.array([float("nan")])
        rows.append(("training from the CLI (train seconds)", f"{cli_rec['train_seconds']:.1f} s", ""))
        # the server's own share when the students' browsers run elsewhere
        rows.append(("dashboard, tab closed / CLI", f"{closed / cli_rec['train_seconds']:.3f}", "<= 1.05"))
        rows.append(("live chart: median seconds between updates", f"{float(np.median(gaps)):.2f} s", "<= 1 s"))
        rows.append(("live chart: 90th percentile seconds between updates", f"{float(np.percentile(gaps, 90)):.2f} s",
                     ""))
        rows.append(("training worker peak RSS (CLI run)", f"{worker_peak:.0f} MB", f"<= {BUDGET_WORKER_MB} MB"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        # workers run in their own session and outlive the server: never leave one training
        subprocess.run(["pkill", "-f", f"signlab worker --runs-dir {runs_dir}"], check=False)
    print(f"\n{'measure':<58}{'value':>14}   budget")
    for name, value, budget in rows:
        print(f"{name:<58}{value:>14}   {budget}")


if __name__ == "__main__":
    run_main(main)
