"""Workers: processes that take queued runs from the run store and train them.

``python -m signlab worker`` runs one anywhere that sees the database and the runs folder: the
dashboard starts them on its own machine, and on a cluster each GPU machine runs its own. A worker
claims the oldest queued run (the store enforces the job limit across every worker and server),
trains it in this process under a lease, and claims the next. With ``slots`` > 1 it starts that
many single-slot worker processes and waits for them.

A worker started for the dashboard (``--exit-when-idle --linger SECONDS``) warms up first
(:func:`warm_up`) and waits that long for the next run before it exits, so a student who clicks
Train again, or opened the Train page a moment before, does not wait for Python and torch to
start: on a 2-core CPU that was 7-9 s between the click and the first point of the loss curve
(docs/speed-research.md, Part 10).

A worker that dies (SIGKILL, a lost machine) stops renewing its leases; the run store then gives
its runs back: a claimed run to the queue, a running one to ``interrupted`` and, once, back to the
queue to continue from its last finished epoch.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import api
from .data import check_source_allowed
from .errors import RunError, SignlabError, error_words
from .interrupt import ShutDown, handling
from .jobs import default_job_limit
from .launch import cpu_share, spawn, spawn_piped, worker_args
from .paths import runs_root
from .runs import Run, RunWriter, run_path
from .store import CONTINUATION_FAILED, RunState, lease_seconds, new_worker_id, store_for

IDLE_POLL = 0.5  # seconds between claims while the queue is empty or every slot is taken
AWAY_POLL = 5.0  # at most this long between tries while the run database is away
SLOT_RESTART, SLOT_RESTART_MAX = 1.0, 60.0  # seconds before a dead slot starts again: doubled while it dies at once


def check_clock(store) -> None:
    """RunError when this machine's clock differs from the run database's by a quarter of a lease or
    more (:meth:`signlab.store.RunStore.clock_offset`). Leases are stamped and read in the database's
    time (``RunStore._now``), but the times a worker writes into a run's folder (its log, a sweep's
    trials) are this machine's, and the pages set them beside the database's."""
    offset = store.clock_offset()
    if abs(offset) >= lease_seconds() / 4:
        way = "behind" if offset < 0 else "ahead of"
        raise RunError(f"this machine's clock is {abs(offset):.0f} s {way} the run database's: the times it "
                       "writes into its runs would be off on the other machines; set the clock right (NTP: "
                       "timedatectl set-ntp true) and start the worker again")


def _folder_missing(root: Path, store, run_id: str) -> bool:
    """True when ``run_id``'s folder is not here and neither is any other of the run database's runs:
    a share that did not mount, or ``--runs-dir`` not the class's folder. A worker there failed
    every student's queued run, "was deleted (in another tab or window)"."""
    if (root / run_id).is_dir():
        return False
    if not root.is_dir():
        return True
    return not any((root / r["run_id"]).is_dir() for r in store.rows(limit=50) if r["run_id"] != run_id)


def warm_up() -> None:
    """Pay the one-time costs of a fresh process before a run is waiting for them.

    The first optimiser a process creates imports ``torch._dynamo`` (torch's optimisers wrap their
    methods in ``torch._disable_dynamo``, which imports it on first call): about 3 s on a 2-core
    CPU, measured, and otherwise spent after the run's claim, while the student watches an empty
    chart. On a CPU with native bf16 it also settles ``precision auto`` for the default preset's
    network (:func:`signlab.trainer.measure_precision`: 0.3-0.8 s, once per machine, then read
    from the cache folder).
    """
    import torch

    from .config import DEFAULT_PRESET, preset
    from .labels import IMAGE_SIZE
    from .models import build_model
    from .trainer import measure_precision

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    cfg = preset(DEFAULT_PRESET)
    measure_precision(cfg, build_model(cfg), torch.zeros(cfg.batch_size, 1, IMAGE_SIZE, IMAGE_SIZE))


def run_worker(runs_dir: Path | str | None = None, db: str | None = None, slots: int = 1,
               device: str | None = None, exit_when_idle: bool = False, limit: int | None = None,
               on_finish: Callable[[dict[str, Any]], None] | None = None,
               log: Callable[[str], None] | None = None, linger: float = 0.0) -> int:
    """Train queued runs until stopped (SIGTERM/SIGINT) or, with ``exit_when_idle``, until the queue
    has been empty for ``linger`` seconds (0: at once). Returns how many runs this worker (and its
    slot processes) finished. A lingering worker warms up (:func:`warm_up`) before its first claim,
    and leaves early if its runs folder is removed."""
    root = runs_root(runs_dir)
    limit = limit or default_job_limit()
    if slots > 1:
        return _run_slots(root, db, slots, device, exit_when_idle, limit, linger, on_finish, log)
    if db:
        os.environ["SIGNLAB_DB"] = db  # the runs this worker opens use the same database
    store = store_for(root, db)
    worker_id = new_worker_id("worker")
    say = log or (lambda s: None)
    stopping = {"now": False}

    def on_signal(signum, frame) -> None:  # finish nothing new; the current run goes back to the queue
        if stopping["now"]:  # a second SIGTERM (systemd signals the whole group, a parent passes it on)
            return  # must not break off the hand-back the first one started
        stopping["now"] = True
        raise ShutDown

    # SIGINT too: Ctrl-C on a worker in a terminal hands its run back as SIGTERM does (the run, stopped
    # "told to quit at once", waited for its student to press Continue)
    with handling(signal.SIGTERM, on_signal), handling(signal.SIGINT, on_signal):
        check_clock(store)
        store.register_worker(worker_id, "worker", slots=1, device=device or "auto")
        finished = 0
        last_beat = 0.0
        idle_since: float | None = None
        away: float | None = None  # since when the run database has been away
        try:
            if linger > 0:  # registered first: the manager counts this worker and starts no other
                warm_up()
            while not stopping["now"]:
                try:
                    if time.time() - last_beat > lease_seconds() / 4:
                        store.worker_beat(worker_id, finished=finished)
                        last_beat = time.time()
                    claim = store.claim(worker_id, limit)
                    empty = claim is None and exit_when_idle and not store.queue()
                except SignlabError as err:  # the database restarting: every worker of a class exited
                    if away is None:
                        say(f"the run database is not available ({err}); trying again")
                        away = time.monotonic()
                    time.sleep(min(AWAY_POLL, IDLE_POLL + (time.monotonic() - away) / 4))
                    continue
                if away is not None:
                    say("the run database is back")
                    away = None
                if claim is None:
                    if empty:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since >= linger or not root.is_dir():
                            break
                    else:
                        idle_since = None
                    time.sleep(IDLE_POLL)
                    continue
                idle_since = None
                if _folder_missing(root, store, claim.run_id):
                    store.hand_back(claim)  # the run waits for a worker that sees its folder
                    raise RunError(f"the runs folder {root} holds none of the run database's runs (is it "
                                   f"mounted? is --runs-dir the class's folder?); run {claim.run_id} was put "
                                   "back in the queue")
                try:
                    _beat(store, worker_id, current=claim.run_id)
                    _fault_point("after_claim")
                    record = _train_one(root, claim, device, say)
                except ShutDown:  # before training began or during it (api.train_claimed lets it through)
                    store.hand_back(claim)
                    row = store.get(claim.run_id) or {}
                    record = {"run_id": claim.run_id, "status": str(row.get("status", "queued")),
                              "message": row.get("message", "")}
                    say(f"run {claim.run_id}: {record['status']} ({record['message']})")
                    if on_finish:
                        on_finish(record)
                    raise
                finished += 1
                _beat(store, worker_id, current=None, finished=finished)
                if on_finish:
                    on_finish(record)
        except KeyboardInterrupt:
            pass
        finally:
            try:
                store.unregister_worker(worker_id)
            except SignlabError:
                pass
    return finished


def _beat(store, worker_id: str, **fields: Any) -> None:
    """The worker's own row, around a run: bookkeeping that the next loop's beat repeats. The database
    away for a moment there ended the worker, and the run it had just claimed waited out its lease and
    counted as a crash."""
    try:
        store.worker_beat(worker_id, **fields)
    except SignlabError:
        pass


def _train_one(root: Path, claim, device: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    try:
        run = Run(run_path(claim.run_id, root))
    except SignlabError as err:  # a row whose id cannot be a folder here: fail it, move on
        store_for(root).update(claim, RunState.FAILED, message=str(err))
        return {"run_id": claim.run_id, "status": "failed", "message": str(err)}
    say(f"run {run.id}: claimed (attempt {claim.attempt})")
    problem = _source_problem(run)
    if problem:  # a planted or old queued run: its dataset is not one this server may read
        message = f"run {run.id}: {problem}"
        RunWriter(run, claim).not_started(message)  # a continuation goes back to what it was
        say(f"run {run.id}: failed ({message})")
        return {"run_id": run.id, "status": "failed", "message": message}
    try:
        # this worker's device for runs that left the choice to the machine, for this fit only: written
        # into config.json, a run a `--device cuda` worker trained said cuda for good, and a CPU worker
        # that took its continuation failed it
        record = api.train_claimed(run, claim, device=device)
    except SignlabError as err:  # the run failed with its own message; the queue moves on
        record = _ended(root, claim, str(err))
    except Exception as err:  # noqa: BLE001 - one bad run must never stop the worker
        message = error_words(err)
        try:
            store_for(root).update(claim, RunState.FAILED, message=message)
        except SignlabError:  # no longer held: given back as it was (a continuation that could not start)
            pass
        record = _ended(root, claim, message)
    say(f"run {run.id}: {record['status']}" + (f" ({record.get('message')})" if record.get("message") else ""))
    return record


def _ended(root: Path, claim, message: str) -> dict[str, Any]:
    """The record of a run whose fit raised: failed, or, for a continuation, the state its run is in now
    (given back as it was when it could not start: the worker said "failed" of a completed run)."""
    if not claim.resume_epochs:
        return {"run_id": claim.run_id, "status": "failed", "message": message}
    try:
        row = store_for(root).get(claim.run_id) or {}
    except SignlabError:
        row = {}
    status = str(row.get("status") or "failed")
    return {"run_id": claim.run_id, "status": status,
            "message": message if status == "failed" else CONTINUATION_FAILED.removeprefix("; ") + message}


def _source_problem(run: Run) -> str | None:
    """Why this run's dataset may not be read on this server (see data.check_source_allowed), else
    None. Checked here, where the server acts on it, since a run's config.json can be written by
    anyone who can write the runs folder, not only through ``api.queue``. Unreadable settings are
    left to ``train_claimed``, which fails the run with that reason."""
    try:
        source = run.config.data
    except SignlabError:
        return None
    try:
        check_source_allowed(source)
    except SignlabError as err:
        return str(err)
    return None


def _run_slots(root: Path, db: str | None, slots: int, device: str | None, exit_when_idle: bool,
               limit: int, linger: float = 0.0, on_finish: Callable[[dict[str, Any]], None] | None = None,
               log: Callable[[str], None] | None = None) -> int:
    """``slots`` one-slot workers as child processes, each with its share of the cores, until they end.

    As from a one-slot worker, each finished run reaches ``on_finish`` (the children print it as a
    JSON line, read here) and a line saying how it ended reaches ``log``; what else the children
    write on their standard error (a warning, a crash) is passed on to this process's. With neither
    callback their output is appended to the runs folder's workers.log. Returns how many runs they
    finished. (``worker --slots 2 --json`` printed nothing when the children wrote only to the log.)
    """
    args = worker_args(root, limit, db=db, device=device, exit_when_idle=exit_when_idle, linger=linger)
    finished: list[dict[str, Any]] = []
    threads: list[threading.Thread] = []
    piped = on_finish is not None or log is not None
    lock = threading.Lock()

    def results(stream) -> None:
        for line in stream:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            with lock:  # one callback at a time, as a one-slot worker calls them
                if not isinstance(record, dict) or "run_id" not in record:
                    sys.stderr.write(line)
                    continue
                finished.append(record)
                try:
                    if log:  # with why a run did not complete, as a one-slot worker says it
                        log(f"run {record['run_id']}: {record.get('status')}" + _why(root, db, record))
                    if on_finish:
                        on_finish(record)
                except Exception:  # noqa: BLE001 - a closed pipe here must not stop draining the child's
                    pass

    def passed_on(stream) -> None:
        for line in stream:
            sys.stderr.write(line)
            sys.stderr.flush()

    def start() -> Any:
        if not piped:
            return spawn(args, root / "workers.log", env=cpu_share(slots))
        p = spawn_piped([*args, "--json"], env=cpu_share(slots))
        for f, s in ((results, p.stdout), (passed_on, p.stderr)):
            threads.append(threading.Thread(target=f, args=(s,), daemon=True))
            threads[-1].start()
        return p

    def on_term(signum, frame) -> None:  # passed on to the slots, which hand their runs back
        raise KeyboardInterrupt

    say = log or (lambda s: sys.stderr.write(s + "\n"))
    procs = [start() for _ in range(slots)]
    started = [time.monotonic()] * slots
    ended: list[float | None] = [None] * slots
    pause = [SLOT_RESTART] * slots
    try:
        with handling(signal.SIGTERM, on_term):  # by default a SIGTERM ended this process alone
            while any(p.poll() is None for p in procs) or not exit_when_idle:
                time.sleep(IDLE_POLL)
                for k, p in enumerate(procs):
                    if exit_when_idle or p.poll() is None:
                        continue
                    # a slot killed (the kernel's out-of-memory killer) or crashed is started again: the
                    # worker trained on one slot for good without a word, and never exited for systemd to
                    # restart it. One that keeps dying at once is started less and less often
                    now = time.monotonic()
                    if ended[k] is None:
                        ended[k] = now
                        pause[k] = min(SLOT_RESTART_MAX, pause[k] * 2) if now - started[k] < 60 else SLOT_RESTART
                        say(f"slot {k + 1} of this worker ended (exit code {p.returncode}); starting it again "
                            f"in {pause[k]:.0f} s")
                    if now - ended[k] >= pause[k]:
                        procs[k], started[k], ended[k] = start(), now, None
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
    for t in threads:  # the pipes close when the children end: what they printed last is read
        t.join(10)
    return len(finished)


def _why(root: Path, db: str | None, record: dict[str, Any]) -> str:
    """`` (its message)`` for a run that did not complete, read from the store (a child's JSON line
    carries only the run and its state), else ""."""
    if record.get("status") == "completed":
        return ""
    try:
        message = (store_for(root, db).get(str(record["run_id"])) or {}).get("message")
    except SignlabError:
        return ""
    return f" ({message})" if message else ""


def _fault_point(name: str) -> None:
    """Tests inject a crash here (``SIGNLAB_FAULT=after_claim``): the process dies at that moment."""
    if os.environ.get("SIGNLAB_FAULT") == name:
        sys.stderr.write(f"signlab: injected fault at {name}\n")
        sys.stderr.flush()
        os._exit(3)
