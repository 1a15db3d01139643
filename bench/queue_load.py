"""The run store under load, on SQLite and on a real PostgreSQL server, side by side.

1. 10,000 runs in the store: how long listing them takes (the Runs page, ``signlab runs``), a
   claim from a 10,000-row table, and one Train-page poll (the run's state plus the metric lines
   added since the last poll, on a run whose log holds 100,000 lines).
2. 4 worker processes x 200 tiny jobs: throughput through the whole state machine (claim, start,
   finish), and proof from the audit trail that each job ran exactly once.

    python bench/queue_load.py [--runs 10000] [--jobs 200] [--workers 4] [--backends sqlite postgresql]

The tiny jobs do no training: this measures the queue, not the model (see bench/small_waits.py).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import run_main  # noqa: E402

from signlab.config import TrainConfig  # noqa: E402
from signlab.runs import Run, list_runs  # noqa: E402
from signlab.store import RunState, forget_stores, runs_table, store_for  # noqa: E402
from tests._postgres import create_database, postgres_server  # noqa: E402


def _timed(fn, reps: int = 5) -> float:
    """Median seconds of ``fn()`` over ``reps`` calls."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fill(root: Path, db: str | None, n: int) -> None:
    """``n`` finished runs: a folder with config.json each, and their rows (inserted in bulk)."""
    store = store_for(root, db)
    cfg = json.dumps(TrainConfig(model="logreg").to_dict())
    now = time.time()
    rows = []
    for i in range(n):
        rid = f"bench-{i:05d}"
        (root / rid).mkdir()
        (root / rid / "config.json").write_text(cfg)
        rows.append(dict(run_id=rid, name=rid, owner=None, kind="train", study=None, model="logreg",
                         state="completed", created=now - n + i, updated=now, queued_at=None, attempt=1,
                         auto_continue=True, continues=0, worker=None, host=None, pid=None, lease_until=None,
                         control=None, resume_epochs=None, epochs_completed=1, target_epochs=1, message="",
                         info=json.dumps({"test_accuracy": 0.9})))
    with store._write.begin() as conn:  # one bulk insert: the set-up is not what is measured
        conn.execute(runs_table.insert(), rows)


def store_times(root: Path, db: str | None, n: int) -> dict[str, float]:
    store = store_for(root, db)
    fill(root, db, n)
    listed = _timed(lambda: list_runs(root), reps=3)
    rows_only = _timed(lambda: store.rows(), reps=3)
    # a claim with 10,000 rows in the table (and one queued run to take each time)
    claims = []
    for i in range(20):
        store.add(f"q-{i:03d}", RunState.QUEUED, model="logreg")
        t = time.perf_counter()
        c = store.claim("bench", limit=10_000)
        claims.append(time.perf_counter() - t)
        store.update(c, RunState.RUNNING)
        store.update(c, RunState.COMPLETED)
    # one Train-page poll on a run with a 100,000-line log: its row, then only the new lines
    run = Run(root / "bench-00000")
    line = json.dumps({"type": "batch", "step": 1, "epoch": 1, "loss": 0.5, "lr": 0.001,
                       "samples_per_second": 1000.0, "train_seconds": 1.0, "progress": 0.5}) + "\n"
    (run.dir / "metrics.jsonl").write_text(line * 100_000)
    _, offset = run.read_metrics(0)
    full_read = _timed(lambda: run.metrics(), reps=3)

    def poll() -> None:
        with open(run.dir / "metrics.jsonl", "a") as f:
            f.write(line * 10)  # what a second of training adds
        run.status()
        nonlocal offset
        _, offset = run.read_metrics(offset)

    return {"list_runs": listed, "store_rows": rows_only, "claim": statistics.median(claims),
            "poll_incremental": _timed(poll, reps=20), "poll_full_reread": full_read}


def _drain(root: str, db: str | None, out, start) -> None:
    """A tiny worker: claim, start, finish until the queue is empty."""
    forget_stores()
    store = store_for(Path(root), db)
    wid = f"bench-{secrets.token_hex(3)}"
    done = 0
    start.wait()  # every worker has started (and imported) before the clock runs
    while True:
        c = store.claim(wid, limit=64)
        if c is None:
            if not store.queue():
                break
            time.sleep(0.001)
            continue
        store.update(c, RunState.RUNNING)
        store.update(c, RunState.COMPLETED)
        done += 1
    out.put(done)


def throughput(root: Path, db: str | None, workers: int, jobs: int) -> dict[str, float]:
    store = store_for(root, db)
    total = workers * jobs
    for i in range(total):
        store.add(f"job-{i:05d}", RunState.QUEUED, model="logreg")
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = ctx.Barrier(workers + 1)
    procs = [ctx.Process(target=_drain, args=(str(root), db, out, start)) for _ in range(workers)]
    for p in procs:
        p.start()
    start.wait()
    t = time.perf_counter()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - t
    per_worker = [out.get() for _ in procs]
    history = store.history()
    starts: dict[str, int] = {}
    for h in history:
        if h["run_id"].startswith("job-") and h["to_state"] == "running":
            starts[h["run_id"]] = starts.get(h["run_id"], 0) + 1
    exactly_once = len(starts) == total and set(starts.values()) == {1}
    return {"jobs": total, "seconds": seconds, "jobs_per_second": total / seconds, "exactly_once": exactly_once,
            "per_worker": per_worker}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=200, help="tiny jobs per worker")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    results: dict[str, dict] = {}
    server = postgres_server() if "postgresql" in args.backends else None
    base = server.__enter__() if server else None
    try:
        for backend in args.backends:
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                db1 = create_database(base, f"b_{secrets.token_hex(3)}") if backend == "postgresql" else None
                db2 = create_database(base, f"b_{secrets.token_hex(3)}") if backend == "postgresql" else None
                print(f"[{backend}] {args.runs} runs in the store…", file=sys.stderr, flush=True)
                times = store_times(Path(a), db1, args.runs)
                print(f"[{backend}] {args.workers} workers x {args.jobs} tiny jobs…", file=sys.stderr, flush=True)
                tp = throughput(Path(b), db2, args.workers, args.jobs)
                results[backend] = {**times, **tp}
                forget_stores()
    finally:
        if server:
            server.__exit__(None, None, None)
    names = list(results)
    print(f"\n{'':34}" + "".join(f"{n:>14}" for n in names))
    rows = [(f"list {args.runs:,} runs (list_runs)", "list_runs", 1000, "ms"),
            ("  of which the store query", "store_rows", 1000, "ms"),
            ("claim one run (10k rows)", "claim", 1000, "ms"),
            ("Train-page poll, incremental", "poll_incremental", 1000, "ms"),
            ("  vs re-reading a 100k-line log", "poll_full_reread", 1000, "ms"),
            (f"{args.workers} workers x {args.jobs} jobs: jobs/s", "jobs_per_second", 1, ""),
            ("each job exactly once", "exactly_once", None, "")]
    for label, key, scale, unit in rows:
        cells = []
        for n in names:
            v = results[n][key]
            cells.append(f"{str(v):>14}" if scale is None else f"{v * scale:>11.1f} {unit:<2}")
        print(f"{label:34}" + "".join(cells))
    if len(names) == 2:
        a, b = names
        print(f"\n{b} / {a} (time ratio): list {results[b]['list_runs'] / results[a]['list_runs']:.2f}x, "
              f"claim {results[b]['claim'] / results[a]['claim']:.2f}x, "
              f"throughput {results[a]['jobs_per_second'] / results[b]['jobs_per_second']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    run_main(main)
