"""The dashboard's side of the queue: submit runs, ask them to stop, and keep local workers going.

The queue itself, the job limit and every run's state live in the run store (:mod:`signlab.store`).
Training happens in worker processes (:mod:`signlab.worker`, ``python -m signlab worker``): on
this machine the manager starts them when runs are waiting and no idle worker is there to take
them (each exits once the queue has been empty for ``SIGNLAB_WORKER_LINGER`` seconds), and one
ahead of the first run when the Train page opens (:meth:`JobManager.warm`); on a cluster, workers on the GPU machines serve the
same database as well. Workers run in their own process session: a crash in one never touches the
server, and a server restart does not stop them.

This module knows nothing about Streamlit; :mod:`signlab.ui` calls it.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

from .config import TrainConfig, check_setting
from . import envnum
from .errors import SignlabError, error_words
from .fsutil import nofollow_opener
from .numbers import count_text, plain_line
from .launch import cpu_share, live_children, spawn, worker_args
from .paths import runs_root
from .runs import Run, create_run, open_run
from .store import Capacity, RunState, RunStore, store_for

_log = logging.getLogger(__name__)

QUICK_EXIT = 10.0  # a worker that fails this soon after its start never got to a run: start the next later
BACKOFF_MAX = 300.0  # the longest wait between such workers (1 s, doubling)
_clock = time.monotonic  # the clock of those waits (a test sets its own)


def default_job_limit() -> int:
    """``SIGNLAB_JOB_LIMIT``, else the number of GPUs, else 1 (one job uses every CPU core)."""
    env = envnum.within("SIGNLAB_JOB_LIMIT")
    if env is not None:
        return int(env)
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001
        return 1


def worker_linger_seconds() -> float:
    """How long a worker this manager starts waits for the next run before it exits
    (``SIGNLAB_WORKER_LINGER``, default 120 s; 0: at once). Waiting costs an idle process (320 MB
    measured, a short claim transaction every 0.5 s); starting one costs the next run 7-9 s on a 2-core CPU."""
    return envnum.clamped("SIGNLAB_WORKER_LINGER", 120.0)


def _last_line(log: Path) -> str:
    """``: "<the log's last line>"`` where that is a failed command's own line ("signlab: …", what a
    worker that could not start says), else "". Read without following a link (a planted one showed
    its target's last line on the Train page), and never another kind of line: the log is every
    worker's, and its lines may be of another student's run."""
    try:
        with open(log, "rb", opener=nofollow_opener) as f:
            f.seek(max(0, f.seek(0, 2) - 2000))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except (OSError, SignlabError):
        return ""
    last = lines[-1] if lines else ""
    return f': "{plain_line(last, 300)}" in {log.name}' if last.startswith("signlab: ") else ""


class JobManager:
    """Queue runs of ``runs_dir`` and keep enough local workers alive to train them."""

    def __init__(self, runs_dir: Path | str | None = None, limit: int | None = None, db: str | None = None,
                 start_workers: bool = True) -> None:
        self.runs_dir = runs_root(runs_dir)
        self.limit = limit or default_job_limit()
        self.db = db
        self.start_workers = start_workers
        self.linger = worker_linger_seconds()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()  # pages of several sessions tick from their own threads
        self._store: RunStore | None = None
        self._unstarted: str | None = None  # why try_tick last could not start a worker (logged once)
        # workers started here and not yet past QUICK_EXIT: each that fails in that time doubles the
        # wait before the next (a worker that cannot start, such as one refusing a bad setting in the
        # environment, was started again every second, a Python and torch start each time)
        self._young: list[tuple[subprocess.Popen, float]] = []
        self._quick_exits = 0
        self._retry_at = 0.0
        self._held: str | None = None  # why no worker is started now (the wait above), for try_tick

    @property
    def store(self) -> RunStore:
        """The run store this manager keeps its queue in, found on first use and kept: looked up by
        ``SIGNLAB_DB`` at each tick, a manager left running went on with whatever database the variable
        named later (a page test's ticker read a later test's PostgreSQL database, and CI failed)."""
        if self._store is None:
            self._store = store_for(self.runs_dir, self.db)
        return self._store

    # -- submitting and controlling
    def submit(self, cfg: TrainConfig, name: str | None = None, owner: str | None = None,
               max_active: int | None = None, max_runs: int | None = None) -> Run:
        """Queue a new run; it starts as soon as a slot is free. ``max_active``: the owner's job quota
        (QuotaError when they have that many runs queued or training); ``max_runs``: their run quota."""
        run = create_run(cfg, self.runs_dir, status=RunState.QUEUED, name=name, owner=owner, max_active=max_active,
                         max_runs=max_runs)
        self.try_tick()  # queued whatever happens next: a raise here said "could not start" of a queued run
        return run

    def submit_continue(self, run_id: str, epochs: int, max_active: int | None = None) -> Run:
        """Queue ``epochs`` more epochs of a finished (or interrupted) run (``max_active``: as for submit)."""
        check_setting("epochs", epochs)  # as the command line's resume checks it
        run = open_run(run_id, self.runs_dir)
        run.check_continuable(int(epochs))
        self.store.enqueue_continue(run.id, int(epochs), max_active=max_active)
        self.try_tick()
        return run

    def cancel(self, run: Run, by: str | None = None) -> RunState:
        """Stop a run: a queued one never starts, a running one stops after its current batch.
        ``by``: who asks (its owner is told when it was someone else)."""
        return self.store.request(run.id, "stop", by=by)

    # -- the queue
    def queued(self) -> list[Run]:
        """Queued runs, in the order they will start."""
        return [Run(self.runs_dir / rid) for rid in self.store.queue()]

    def queue_position(self, run: Run) -> int | None:
        """1 for the next run to start; None when the run is not waiting."""
        return self.store.queue_position(run.id)

    def tick(self) -> int:
        """Take back expired leases and start local workers for waiting runs. Returns how many started.

        A worker is started only while runs wait, a slot of the job limit is free, and no idle or
        starting worker is there to take them; the store's claim keeps the limit however many start.
        """
        store = self.store
        with self._tick_lock:
            # reaped at every tick: polled only when a worker was to be started, an exited worker stayed a
            # zombie (state Z) until the next run was queued
            live_children()
            store.expire_leases()
            if not self.start_workers:
                return 0
            self._note_exits()
            cap = store.capacity()
            if not cap.waiting:
                return 0
            n = min(cap.waiting, self.limit - cap.holding) - self._spare_workers(cap)
            if n > 0 and self._held_back():
                return 0
            for _ in range(max(0, n)):
                self._spawn_worker()
            if n > 0:
                self._held = None  # "the next starts in N s" is past: it has started
            return max(0, n)

    def try_tick(self) -> str | None:
        """:meth:`tick`, or why it could not (None when it did). A run queued just before is queued
        whatever this says: a worker that could not start (its log unwritable, the process table full,
        the database away a moment) raised "Could not start" on the page of a run that waited in the
        queue, the student pressed Start again and queued it twice. The page says the reason beside
        the waiting run instead, and the background ticker tries again every second."""
        try:
            self.tick()
            why = self._held
        except (SignlabError, OSError) as err:
            why = error_words(err)
        if why is None:
            self._unstarted = None
            return None
        if why != self._unstarted:  # said once: the Train page's poll asks twice a second
            _log.warning("no worker could be started for the queue: %s", why)
        self._unstarted = why
        return why

    def warm(self) -> bool:
        """Start a worker ahead of the next run, so that a click on Train starts training at once
        (the Train page calls this when it opens). It warms up and waits ``linger`` seconds for a
        run. Nothing starts without local workers or lingering, while an idle or starting worker is
        there (so the page's reruns start no second one), or when every slot is taken. Returns
        whether a worker was started; a failure (the database away, the log unwritable) is only a
        missed head start, so it returns False rather than raising."""
        if not self.start_workers or self.linger <= 0:
            return False
        with self._tick_lock:
            try:
                self._note_exits()
                cap = self.store.capacity()
                if self.limit - cap.holding <= 0 or self._spare_workers(cap) > 0 or self._held_back():
                    return False
                self._spawn_worker()
            except (SignlabError, OSError):
                return False
            return True

    def _spare_workers(self, cap: Capacity) -> int:
        """Workers that will take the next run: spare in the store's snapshot, or started here and not
        yet registered. Without the second case a page that reran as a run finished started a second
        worker. The processes are listed after the snapshot, so a worker that registered in between
        still counts (as starting)."""
        root = str(self.runs_dir.resolve())  # this process may have started workers for other folders
        # job workers only: a sweep this server launched for the same folder registers as a
        # "sweep", so counted here it stood for a starting job worker until it ended, and runs queued
        # meanwhile got no worker
        mine = {p.pid for p in live_children("worker") if root in p.args}
        starting = len(mine - {w["pid"] for w in cap.workers if w["host"] == socket.gethostname()})
        return cap.spare + starting

    def _spawn_worker(self) -> None:
        args = worker_args(self.runs_dir, self.limit, db=self.db, linger=self.linger)
        proc = spawn(args, self.runs_dir / "workers.log", env=cpu_share(self.limit))
        self._young.append((proc, _clock()))

    def _note_exits(self) -> None:
        """Count the workers started here that failed within QUICK_EXIT of their start, and set the
        wait before the next one (1 s, doubling up to BACKOFF_MAX); one that lives past it, or ends
        well, clears the count."""
        now = _clock()
        young = []
        for proc, started in self._young:
            code, soon = proc.poll(), now - started < QUICK_EXIT
            if code is None and soon:
                young.append((proc, started))
            elif code in (None, 0) or not soon:  # past its start (or its end seen too late to tell): mended
                self._quick_exits, self._retry_at, self._held = 0, 0.0, None
            else:
                self._quick_exits += 1
                wait = min(2.0 ** (self._quick_exits - 1), BACKOFF_MAX)
                self._retry_at = now + wait
                self._held = (f"{count_text(self._quick_exits, 'worker')} started for the queue "
                              f"{'has' if self._quick_exits == 1 else 'have'} failed at once (the last with exit "
                              f"code {code}{_last_line(self.runs_dir / 'workers.log')}); the next starts in {wait:g} s, "
                              f"and each failure doubles the wait, up to {BACKOFF_MAX:g} s")
        self._young = young

    def _held_back(self) -> bool:
        """Whether starting a worker now must wait, after workers that failed at once."""
        return bool(self._quick_exits) and _clock() < self._retry_at

    # -- background ticking (the server starts one per process)
    def start_background(self, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds in a daemon thread, so queues advance with no page open."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()  # started again after stop_background: its thread ended at once

        def loop() -> None:
            said = ""
            while not self._stop.wait(interval):
                try:
                    self.tick()
                    said = ""
                except Exception as err:  # noqa: BLE001 - a full disk or a database hiccup must not kill the ticker
                    # but it is said, once per kind of failure: a fault here stops the queue, and it
                    # was swallowed without a trace
                    if repr(err) != said:
                        said = repr(err)
                        _log.warning("the queue's background tick failed (it tries again every %g s)",
                                     interval, exc_info=True)

        self._thread = threading.Thread(target=loop, name="signlab-jobs", daemon=True)
        self._thread.start()

    def stop_background(self, wait: float = 10.0) -> None:
        """Stop the background ticking and wait (up to ``wait`` seconds) for a tick under way to end:
        a ticker still reading after "stop" went on with whatever database ``SIGNLAB_DB`` named by
        then (in the tests, the next test's)."""
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(wait)
