"""The dashboard's job manager: local workers, the job limit, a restarted server, a failing run.

Faults (a killed worker, a crash between claim and start, two servers) are in test_store.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from signlab.config import TrainConfig
from signlab.jobs import JobManager
from signlab.runs import create_run, list_runs
from signlab.store import HOLDING, RunState
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
        seen_running = max(seen_running, sum(s in HOLDING for s in states))
        assert sum(s in HOLDING for s in states) <= 2, states
        waiting = [r for r in runs if r.status()["status"] == RunState.QUEUED]
        for pos, r in enumerate(jm.queued(), start=1):  # every waiting job knows its place
            assert jm.queue_position(r) in (pos, pos - 1, None)  # a worker may claim between the reads
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
    run = create_run(TrainConfig(model="logreg", epochs=1, max_steps=10), tmp_path, status="queued")
    jm2 = JobManager(tmp_path, limit=1)
    assert jm2.queue_position(run) == 1
    wait_for(lambda: (jm2.tick() or True) and run.status()["status"] == "completed", 120,
             what="the queued run to complete")


def test_worker_crash_shows_reason(tmp_path: Path):
    """A worker that fails (here: its dataset source is missing) ends 'failed' with the reason."""
    jm = JobManager(tmp_path, limit=1)
    run = jm.submit(TrainConfig(model="logreg", epochs=1, data=str(tmp_path / "no-such-folder")))
    wait_for(lambda: (jm.tick() or True) and run.status()["status"] == "failed", 60, what="failed")
    assert "no-such-folder" in run.status()["message"]
