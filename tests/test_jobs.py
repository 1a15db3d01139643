"""The dashboard's job queue: worker processes, the job limit, faults (SIGKILL, server restart)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from signlab.config import TrainConfig
from signlab.jobs import JobManager
from signlab.runs import list_runs, open_run
from tests._wait import wait_for


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # workers share 2 cores with the test runner


def test_four_sessions_against_a_limit_of_two(tmp_path: Path):
    """4 jobs, limit 2: never more than 2 run, every job runs exactly once, all complete."""
    jm = JobManager(tmp_path, limit=2)
    runs = [jm.submit(TrainConfig(model="logreg", epochs=1, max_steps=40, seed=i, log_every=5)) for i in range(4)]
    seen_running = 0

    def all_done():
        nonlocal seen_running
        jm.tick()
        states = [r.status()["status"] for r in runs]
        seen_running = max(seen_running, sum(s in ("running", "paused") for s in states))
        assert sum(s in ("running", "paused") for s in states) <= 2, states
        waiting = [r for r in runs if r.raw_status().get("status") == "queued"]
        for pos, r in enumerate(jm.queued(), start=1):  # every waiting job knows its place
            assert jm.queue_position(r) == pos
        return all(s == "completed" for s in states) and not waiting

    wait_for(all_done, 180, what="4 jobs to complete")
    assert seen_running >= 1
    for r in runs:
        starts = [m for m in r.metrics() if m["type"] == "fit_start"]
        assert len(starts) == 1, f"{r.id} started {len(starts)} times"
        assert r.has_weights()
    assert len(list_runs(tmp_path)) == 4


def test_queue_survives_a_new_manager(tmp_path: Path):
    """A job queued by one server process is started by another (a restarted server)."""
    JobManager(tmp_path, limit=1)  # the first server: queues, then "dies" without ticking
    from signlab.runs import create_run

    run = create_run(TrainConfig(model="logreg", epochs=1, max_steps=10), tmp_path, status="queued")
    jm2 = JobManager(tmp_path, limit=1)
    assert jm2.queue_position(run) == 1
    jm2.tick()
    wait_for(lambda: run.status()["status"] == "completed", 120, what="the queued run to complete")


def test_sigkill_mid_epoch_then_continue(tmp_path: Path):
    """SIGKILL a worker mid-epoch: 'interrupted', last finished epoch kept and loadable, continue works."""
    jm = JobManager(tmp_path, limit=1)
    run = jm.submit(TrainConfig(model="mlp", epochs=20, batch_size=32, log_every=5, augment=False))
    wait_for(lambda: run.raw_status().get("epochs_completed", 0) >= 1, 180, what="the first epoch")
    # kill it between epochs 1 and 2, mid-epoch: wait for a batch record after the epoch record
    wait_for(lambda: any(m["type"] == "batch" and m["epoch"] >= 2 for m in run.metrics()), 60,
             what="a batch of epoch 2")
    pid = run.raw_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: run.status()["status"] == "interrupted", 30, what="status interrupted")
    jm.tick()  # the manager records it in status.json
    st = open_run(run.id, tmp_path).status()
    assert st["status"] == "interrupted"
    done = st["epochs_completed"]
    assert done >= 1
    model = run.load_model()  # the last finished epoch's weights load
    assert sum(p.numel() for p in model.parameters()) > 0
    # every file of the run is whole: JSON parses, the log's lines parse (a torn last line is skipped)
    for name in ("config.json", "meta.json", "status.json", "optimizer.json"):
        json.loads((run.dir / name).read_text())
    assert not list(run.dir.glob(".*.tmp")), "a temporary file was left behind"
    jm.submit_continue(run.id, 1)
    wait_for(lambda: (jm.tick() or True) and run.status()["status"] == "completed", 180, what="the continuation")
    assert run.status()["epochs_completed"] == done + 1


def test_stop_and_pause(tmp_path: Path):
    jm = JobManager(tmp_path, limit=1)
    run = jm.submit(TrainConfig(model="mlp", epochs=20, batch_size=32, log_every=5, augment=False))
    wait_for(lambda: any(m["type"] == "batch" for m in run.metrics()), 120, what="the first batch")
    run.request("pause")
    wait_for(lambda: run.status()["status"] == "paused", 30, what="paused")
    n = len(run.metrics())
    time.sleep(1.5)
    assert len(run.metrics()) == n, "a paused worker kept training"
    run.request("resume")
    wait_for(lambda: run.status()["status"] == "running" and len(run.metrics()) > n, 30, what="resumed")
    jm.cancel(run)
    wait_for(lambda: run.status()["status"] == "stopped", 60, what="stopped")


def test_cancel_queued_run_never_starts(tmp_path: Path):
    jm = JobManager(tmp_path, limit=1)
    first = jm.submit(TrainConfig(model="mlp", epochs=20, batch_size=32, augment=False))
    second = jm.submit(TrainConfig(model="logreg", epochs=1))
    assert second.raw_status()["status"] == "queued"
    jm.cancel(second)
    assert second.status()["status"] == "stopped"
    jm.cancel(first)
    wait_for(lambda: first.status()["status"] in ("stopped", "interrupted"), 60, what="first stopped")
    jm.tick()
    assert not second.metrics(), "a cancelled run was started"


def test_worker_crash_shows_reason(tmp_path: Path):
    """A worker that fails (here: its dataset source is missing) ends 'failed' with the reason."""
    jm = JobManager(tmp_path, limit=1)
    run = jm.submit(TrainConfig(model="logreg", epochs=1, data=str(tmp_path / "no-such-folder")))
    wait_for(lambda: (jm.tick() or True) and run.status()["status"] == "failed", 60, what="failed")
    assert "no-such-folder" in run.status()["message"]
