"""The waits a user notices, and what the dashboard costs, measured side by side.

    python bench/small_waits.py [--epochs 1]

Prints, each beside its budget:
- the dataset's warm load time (budget 0.5 s);
- warm prediction of one uploaded 224x224 JPEG through the one preprocessing path (budget 20 ms);
- every page's first paint in a new browser session once the server is warm (budget 2 s);
- the same training run from the command line and from the dashboard (a worker process started
  by the job manager, with a browser watching the Train page), and their ratio (budget 5%);
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

importlib.import_module("_common")  # puts the project on sys.path

import numpy as np
from PIL import Image

from signlab.config import preset
from signlab.data import load_dataset
from signlab.inference import predict
from signlab.jobs import JobManager
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


def start_server(runs_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SIGNLAB_RUNS_DIR": str(runs_dir), "SIGNLAB_JOB_LIMIT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
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


def wait_idle(page) -> None:
    page.wait_for_selector("h1", timeout=60_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []

    t = time.perf_counter()
    ds = load_dataset()
    warm = time.perf_counter() - t
    rows.append(("dataset warm load", f"{warm * 1000:.0f} ms", "<= 500 ms"))

    tmp = Path(tempfile.mkdtemp(prefix="signlab-bench-"))
    runs_dir = tmp / "runs"
    cfg = preset("fast", epochs=args.epochs)
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
            paints = []
            for path in PAGES:
                ctx = b.new_context(viewport={"width": 1400, "height": 1000})
                pg = ctx.new_page()
                t = time.perf_counter()
                pg.goto(url + path)
                pg.wait_for_selector("h1", timeout=60_000)
                paints.append((path, time.perf_counter() - t))
                ctx.close()
            worst = max(paints, key=lambda x: x[1])
            rows.append(("first paint, slowest page (" + worst[0] + ")", f"{worst[1] * 1000:.0f} ms", "<= 2000 ms"))
            rows.append(("first paint, median over 9 pages", f"{statistics.median(s for _, s in paints) * 1000:.0f} ms",
                         "<= 2000 ms"))
            users = [b.new_page() for _ in range(3)]
            for u, path in zip(users, ["/", "/evaluate", "/kernels"]):
                u.goto(url + path)
                wait_idle(u)
            rows.append(("server RSS with 3 users connected", f"{rss_mb(proc.pid):.0f} MB", f"<= {BUDGET_SERVER_MB} MB"))

            # the same run from the dashboard: Start on the Train page, a browser watching it
            watch = b.new_page()
            watch.goto(url + f"/train?preset=fast&epochs={args.epochs}")
            wait_idle(watch)
            watch.get_by_role("button", name="Start").click()
            updates, last, t_end = [], None, time.time() + 600
            while time.time() < t_end:
                txt = watch.evaluate("() => { const g = document.querySelector('.js-plotly-plot');"
                                     " const d = g && (g._fullData || g.data); return d && d[0] ? d[0].x.length : 0; }")
                if txt != last:
                    updates.append(time.time())
                    last = txt
                if "Finished" in watch.inner_text("body"):
                    break
                time.sleep(0.1)
            b.close()
        dash = [r for r in (open_run(x.name, runs_dir) for x in runs_dir.iterdir()
                            if x.is_dir() and x.name != run.id)]
        dash_rec = dash[0].status()
        # the same through the dashboard's job manager with no browser on this machine: what the
        # server's own share costs when the students' browsers run elsewhere
        jm = JobManager(runs_dir, limit=1)
        solo = jm.submit(cfg)
        while solo.status()["status"] not in ("completed", "failed", "stopped", "interrupted", "diverged"):
            jm.tick()
            time.sleep(0.5)
        solo_rec = solo.status()
        gaps = np.diff(updates) if len(updates) > 2 else np.array([float("nan")])
        rows.append(("training from the CLI (train seconds)", f"{cli_rec['train_seconds']:.1f} s", ""))
        rows.append(("training from the dashboard (train seconds)", f"{dash_rec['train_seconds']:.1f} s", ""))
        rows.append(("dashboard / CLI, browser on this machine", f"{dash_rec['train_seconds'] / cli_rec['train_seconds']:.3f}",
                     "<= 1.05"))
        rows.append(("dashboard worker, no browser on this machine (train seconds)",
                     f"{solo_rec['train_seconds']:.1f} s", ""))
        rows.append(("dashboard worker / CLI, no browser here", f"{solo_rec['train_seconds'] / cli_rec['train_seconds']:.3f}",
                     "<= 1.05"))
        rows.append(("live chart: median seconds between updates", f"{float(np.median(gaps)):.2f} s", "<= 1 s"))
        rows.append(("training worker peak RSS (CLI run)", f"{worker_peak:.0f} MB", f"<= {BUDGET_WORKER_MB} MB"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"\n{'measure':<58}{'value':>14}   budget")
    for name, value, budget in rows:
        print(f"{name:<58}{value:>14}   {budget}")


if __name__ == "__main__":
    main()
