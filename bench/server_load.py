"""The dashboard under load: N simulated users browse pages and each starts a small training run.

    python bench/server_load.py [--users 1 4 8] [--port 8641] [--json]

Starts ``streamlit run app.py`` on a local port with its own temporary runs folder and
``SIGNLAB_JOB_LIMIT=1``, then for each N runs N users at once, each in its own headless Chromium
context (a separate Streamlit session): Home, Data, Train (with a one-epoch logistic regression
taken from the URL, then Start), Runs. A page's latency is the time from ``goto`` until the app is
idle: the page's title drawn and no "Running…" indicator for a moment. An error is an exception
box or a traceback in the page, or a page or Start that did not finish within the time limit.
After each round the runs are checked (one run folder per Start, none lost, none started twice)
and stopped, so the next round starts from an idle server.

Everything is bounded: a page waits at most ``--page-timeout`` seconds, a round at most
``--round-timeout``; the whole benchmark takes about 1-4 minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import run_main  # noqa: E402

from signlab.jobs import JobManager  # noqa: E402
from signlab.runs import list_runs  # noqa: E402
from signlab.store import ACTIVE, HOLDING, store_for  # noqa: E402

CHROMIUM = os.environ.get("SIGNLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
TRAIN = ("/train?model=logreg&epochs=1&batch_size=256&lr=0.01&optimizer=adam&weight_decay=0&schedule=none"
         "&augment=False&device=cpu&seed={seed}")
PAGES = ["/", "/data", "TRAIN", "/runs"]
IDLE = ("() => !!document.querySelector(\"[data-testid='stMain'] h1\") && "
        "(!document.querySelector('[data-testid=\"stStatusWidget\"]') || "
        "getComputedStyle(document.querySelector('[data-testid=\"stStatusWidget\"]')).visibility === 'hidden')")


def _port(preferred: int) -> int:
    for port in [preferred, *range(8641, 8660)]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit("no free port in 8641-8659")


def start_server(runs_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "SIGNLAB_RUNS_DIR": str(runs_dir), "SIGNLAB_JOB_LIMIT": "1", "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited:\n{log.read_text()[-2000:]}")
    stop_server(proc)
    raise SystemExit("streamlit did not become healthy in 90 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def _idle(page, timeout: float) -> None:
    """The script run is over: the title is drawn and no 'Running…' shows, twice 250 ms apart."""
    end = time.perf_counter() + timeout
    while True:
        await page.wait_for_function(IDLE, timeout=max(1.0, end - time.perf_counter()) * 1000)
        await page.wait_for_timeout(250)
        if await page.evaluate(IDLE):
            return
        if time.perf_counter() > end:
            raise TimeoutError("the page did not become idle")


async def _page_errors(page) -> str | None:
    if await page.locator("[data-testid='stException']").count():
        return "exception box"
    if "Traceback" in await page.inner_text("body"):
        return "traceback"
    return None


async def user(browser, base: str, index: int, page_timeout: float, samples: list, errors: list,
               starts: list, run_ids: list) -> None:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    try:
        for path in PAGES:
            name = "/train" if path == "TRAIN" else path
            url = base + (TRAIN.format(seed=index) if path == "TRAIN" else path)
            t = time.perf_counter()
            try:
                await page.goto(url, timeout=page_timeout * 1000)
                await _idle(page, page_timeout)
                samples.append((name, time.perf_counter() - t))
                problem = await _page_errors(page)
                if problem:
                    errors.append(f"user {index} {name}: {problem}")
            except Exception as err:  # noqa: BLE001 - a timeout or a broken page is an error of the run
                errors.append(f"user {index} {name}: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                continue
            if path == "TRAIN":
                t = time.perf_counter()
                try:
                    await page.get_by_role("button", name="Start").click(timeout=page_timeout * 1000)
                    await page.wait_for_url(re.compile(r"[?&]run="), timeout=page_timeout * 1000)
                    await page.wait_for_function(
                        "() => /Waiting for a free slot|epoch \\d|starting the worker|Finished/.test("
                        "document.body.innerText)", timeout=page_timeout * 1000)
                    starts.append(time.perf_counter() - t)
                    run_ids.append(re.search(r"[?&]run=([^&]+)", page.url).group(1))
                    problem = await _page_errors(page)
                    if problem:
                        errors.append(f"user {index} Start: {problem}")
                except Exception as err:  # noqa: BLE001
                    errors.append(f"user {index} Start: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
    finally:
        await ctx.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def settle(runs_dir: Path, timeout: float = 30) -> None:
    """Stop every run of the round and wait until no process holds one (the next round starts idle);
    workers still alive after that are ended."""
    jm = JobManager(runs_dir, limit=1)
    for run in list_runs(runs_dir):
        if run.status().get("status") in ACTIVE:
            jm.cancel(run)
    store = store_for(runs_dir)
    end = time.time() + timeout
    while time.time() < end:
        if not any(r["status"] in HOLDING for r in store.rows()):
            return
        time.sleep(0.3)
    for w in store.workers():  # still holding a run after the stop request: end the workers of this host
        if w.get("host") == socket.gethostname() and w.get("pid"):
            try:
                os.kill(int(w["pid"]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


async def run_round(browser, base: str, runs_dir: Path, n: int, page_timeout: float, round_timeout: float) -> dict:
    samples: list = []
    errors: list = []
    starts: list = []
    run_ids: list = []
    before = {r.id for r in list_runs(runs_dir)}
    t = time.perf_counter()
    tasks = [user(browser, base, i, page_timeout, samples, errors, starts, run_ids) for i in range(n)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=round_timeout)
    except asyncio.TimeoutError:
        errors.append(f"the round did not finish in {round_timeout:.0f} s")
    wall = time.perf_counter() - t
    new = [r for r in list_runs(runs_dir) if r.id not in before]
    started_twice = [r.id for r in new if sum(m.get("type") == "fit_start" for m in r.metrics()) > 1]
    lat = [s for _, s in samples]
    by_page = {p: round(statistics.median([s for q, s in samples if q == p]), 2)
               for p in dict.fromkeys(q for q, _ in samples)}
    settle(runs_dir)
    return {"users": n, "page_loads": len(lat), "median_s": round(statistics.median(lat), 2) if lat else None,
            "p95_s": round(_pct(lat, 95), 2) if lat else None, "max_s": round(max(lat), 2) if lat else None,
            "start_median_s": round(statistics.median(starts), 2) if starts else None,
            "errors": len(errors), "error_list": errors, "runs_created": len(new), "starts": len(run_ids),
            "started_twice": started_twice, "median_by_page_s": by_page, "wall_s": round(wall, 1),
            "load_average": round(os.getloadavg()[0], 1)}


async def main_async(args) -> list[dict]:
    from playwright.async_api import async_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="signlab-load-"))
    port = _port(args.port)
    proc = start_server(runs_dir, port, runs_dir.parent / f"{runs_dir.name}.log")
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                # warm-up: the first visitor loads the dataset into the server's cache
                ctx = await browser.new_context()
                page = await ctx.new_page()
                t = time.perf_counter()
                await page.goto(base + "/", timeout=args.page_timeout * 1000)
                await _idle(page, args.page_timeout)
                print(f"warm-up (first Home, dataset load): {time.perf_counter() - t:.1f} s", file=sys.stderr)
                await ctx.close()
                for n in args.users:
                    r = await run_round(browser, base, runs_dir, n, args.page_timeout, args.round_timeout)
                    results.append(r)
                    print(f"N={n}: {r['page_loads']} page loads, median {r['median_s']} s, p95 {r['p95_s']} s, "
                          f"{r['errors']} errors, {r['runs_created']} runs ({r['wall_s']} s)", file=sys.stderr)
            finally:
                await browser.close()
    finally:
        stop_server(proc)
        settle(runs_dir, timeout=10)
        shutil.rmtree(runs_dir, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--port", type=int, default=8641)
    ap.add_argument("--page-timeout", type=float, default=60.0)
    ap.add_argument("--round-timeout", type=float, default=100.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = time.time()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results))
        return
    pages = ", ".join("/train" if p == "TRAIN" else p for p in PAGES)
    print(f"\nsignlab server under load (job limit 1; {os.cpu_count()} CPUs; each user opens {pages} "
          "and starts a 1-epoch logreg run)")
    print(f"{'users':>5} {'page loads':>10} {'median s':>9} {'p95 s':>7} {'max s':>7} {'Start s':>8} {'errors':>6} "
          f"{'runs':>6} {'load avg':>8}")
    for r in results:
        print(f"{r['users']:>5} {r['page_loads']:>10} {r['median_s']:>9} {r['p95_s']:>7} {r['max_s']:>7} "
              f"{r['start_median_s']!s:>8} {r['errors']:>6} {str(r['runs_created']) + '/' + str(r['users']):>6} "
              f"{r['load_average']:>8}")
    for r in results:
        print(f"  N={r['users']} median by page: " + ", ".join(f"{k} {v} s" for k, v in r["median_by_page_s"].items()))
        for e in r["error_list"]:
            print(f"  N={r['users']} error: {e}")
        if r["started_twice"]:
            print(f"  N={r['users']} started twice: {r['started_twice']}")
    print(f"total {time.time() - t:.0f} s")


if __name__ == "__main__":
    run_main(main)
