"""Training jobs for the dashboard: one worker process per run, a job limit and a visible queue.

A job is a run directory whose status is ``queued``. :meth:`JobManager.tick` starts queued runs
as ``python -m signlab train --run-id ID`` (the command line's own code) while fewer than
``limit`` are running, oldest first. Everything lives in the run directories, guarded by a file
lock, so several server processes (or a restarted one) agree on what runs, and no job is started
twice or lost. Workers run in their own process session: a crash in a worker never touches the
server, and a server restart does not stop the workers.

This module knows nothing about Streamlit; :mod:`signlab.ui` calls it.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .config import TrainConfig
from .errors import RunError
from .fsutil import atomic_write_json, storage_error
from .paths import PROJECT_ROOT, default_runs_dir
from .runs import Run, _pid_alive, create_run, list_runs, open_run


def default_job_limit() -> int:
    """``SIGNLAB_JOB_LIMIT``, else the number of GPUs, else 1 (one job uses every CPU core)."""
    env = os.environ.get("SIGNLAB_JOB_LIMIT")
    if env and env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001
        return 1


class JobManager:
    """Queue and start training workers for the runs in ``runs_dir``."""

    def __init__(self, runs_dir: Path | str | None = None, limit: int | None = None) -> None:
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self.limit = limit or default_job_limit()
        self._children: dict[int, subprocess.Popen] = {}
        self._children_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- locking: one manager at a time decides what starts
    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            f = open(self.runs_dir / ".jobs.lock", "a")
        except OSError as err:  # an unwritable runs folder: a clear StorageError, not a bare OSError
            raise storage_error(err, self.runs_dir) from err
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- submitting
    def submit(self, cfg: TrainConfig, name: str | None = None) -> Run:
        """Queue a new run; it starts as soon as a slot is free."""
        run = create_run(cfg, self.runs_dir, status="queued", name=name)
        self.tick()
        return run

    def submit_continue(self, run_id: str, epochs: int) -> Run:
        """Queue ``epochs`` more epochs of a finished (or interrupted) run."""
        run = open_run(run_id, self.runs_dir)
        with self._locked():
            st = run.status()
            if st["status"] in ("queued", "running", "paused"):
                raise RunError(f"run {run.id} is already {st['status']}")
            if not run.has_weights():
                raise RunError(f"run {run.id} has no finished epoch to continue from")
            done = int(st.get("epochs_completed", 0))
            atomic_write_json(run.dir / "status.json", {**run.raw_status(), "status": "queued", "pid": None,
                                                        "continue_epochs": int(epochs), "target_epochs": done + int(epochs),
                                                        "message": "waiting to continue", "updated": time.time()})
            (run.dir / "control.json").unlink(missing_ok=True)
        self.tick()
        return run

    def cancel(self, run: Run) -> None:
        """Stop a run: a queued one never starts, a running one stops after its current batch."""
        with self._locked():
            st = run.raw_status()
            if st.get("status") == "queued":
                atomic_write_json(run.dir / "status.json", {**st, "status": "stopped", "updated": time.time(),
                                                            "message": "cancelled before it started"})
                return
        run.request("stop")

    # -- the queue
    def active(self) -> list[Run]:
        return [r for r in list_runs(self.runs_dir) if r.status().get("status") in ("running", "paused")]

    def queued(self) -> list[Run]:
        """Queued runs, in the order they will start."""
        q = [r for r in list_runs(self.runs_dir) if r.raw_status().get("status") == "queued"]
        return sorted(q, key=lambda r: (r.raw_status().get("updated", 0), r.id))

    def queue_position(self, run: Run) -> int | None:
        """1 for the next run to start; None when the run is not waiting."""
        ids = [r.id for r in self.queued()]
        return ids.index(run.id) + 1 if run.id in ids else None

    def tick(self) -> list[str]:
        """Reap finished workers, mark dead ones, start queued runs while slots are free."""
        with self._children_lock:  # pages of several sessions tick from their own threads
            for pid, proc in list(self._children.items()):
                if proc.poll() is not None:
                    self._children.pop(pid, None)
        started: list[str] = []
        with self._locked():
            running = 0
            for run in list_runs(self.runs_dir):
                raw = run.raw_status()
                if raw.get("status") in ("running", "paused"):
                    if _pid_alive(raw.get("pid")):
                        running += 1
                    else:
                        self._mark_dead(run, raw)
            for run in self.queued():
                if running >= self.limit:
                    break
                self._launch(run)
                running += 1
                started.append(run.id)
        return started

    def _mark_dead(self, run: Run, raw: dict[str, Any]) -> None:
        """A worker vanished: say why if its log tells (a crash), else call it interrupted."""
        reason = ""
        try:
            lines = (run.dir / "worker.log").read_text(errors="replace").strip().splitlines()
            reason = next((ln for ln in reversed(lines) if ln.startswith("signlab:")), "")
        except OSError:
            pass
        run.remove_partial_writes()  # a worker killed mid-write leaves its temporary file
        done = int(raw.get("epochs_completed", 0))
        status = "failed" if reason else "interrupted"
        message = reason.removeprefix("signlab: ") if reason else (
            f"the training process stopped unexpectedly; the weights of epoch {done} are kept and the run "
            "can be continued" if done else "the training process stopped before finishing an epoch")
        atomic_write_json(run.dir / "status.json", {**raw, "status": status, "message": message,
                                                    "updated": time.time()})

    def _launch(self, run: Run) -> None:
        raw = run.raw_status()
        cmd = [sys.executable, "-m", "signlab", "train", "--runs-dir", str(self.runs_dir.resolve()), "--quiet", "--json"]
        if raw.get("continue_epochs"):
            cmd += ["--resume", run.id, "--epochs", str(int(raw["continue_epochs"]))]
        else:
            cmd += ["--run-id", run.id]
        env = dict(os.environ)
        cpus = os.cpu_count() or 1
        if run.config.device in ("auto", "cpu") and self.limit > 1:
            # share the cores: oversubscribed torch threads spin and slow every job many times over
            env["OMP_NUM_THREADS"] = str(max(1, cpus // self.limit))
        log = open(run.dir / "worker.log", "ab")
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        with self._children_lock:
            self._children[proc.pid] = proc
        new = {k: v for k, v in raw.items() if k != "continue_epochs"}
        atomic_write_json(run.dir / "status.json", {**new, "status": "running", "pid": proc.pid,
                                                    "host": os.uname().nodename, "message": "starting",
                                                    "updated": time.time()})

    # -- background ticking (the server starts one per process)
    def start_background(self, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds in a daemon thread, so queues advance with no page open."""
        if self._thread and self._thread.is_alive():
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - a full disk must not kill the ticker
                    pass

        self._thread = threading.Thread(target=loop, name="signlab-jobs", daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        self._stop.set()
