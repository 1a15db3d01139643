"""The dashboard's job manager: local workers, the job limit, a restarted server, a failing run.

Faults (a killed worker, a crash between claim and start, two servers) are in test_store.py."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event

from signlab.config import TrainConfig
from signlab.jobs import JobManager, worker_linger_seconds
from signlab.launch import live_children
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
            p = jm.queue_position(r)  # workers may claim one or two ahead of it between the reads
            assert p is None or 1 <= p <= pos, (p, pos)
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


def test_a_warm_worker_takes_the_next_runs_at_once_then_leaves(tmp_path: Path, monkeypatch):
    """The Train page starts a worker ahead of the click (JobManager.warm). The run submitted next
    is claimed by it (no second worker starts), a run queued after it went idle is taken by the same
    worker, and it leaves once the queue has been empty for its linger."""
    # 12 s: with 6, a stall of 4 s in this process (a busy CI machine) let the worker leave between the runs
    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "12")
    jm = JobManager(tmp_path, limit=1)
    before = {p.pid for p in live_children()}
    assert jm.warm() is True
    assert jm.warm() is False  # the page reruns: its worker is starting, so no second one
    assert JobManager(tmp_path, limit=1).warm() is False  # a worker is already starting
    (warm,) = [p for p in live_children() if p.pid not in before]
    assert "--linger" in warm.args and "12" in warm.args
    store = jm.store
    wait_for(lambda: len(store.workers(kind="worker")) == 1, 120, what="the warm worker to register")
    assert JobManager(tmp_path, limit=1).warm() is False  # an idle worker is there

    holders = []
    for i in range(2):
        run = jm.submit(TrainConfig(model="logreg", epochs=1, max_steps=5, seed=i))
        assert {p.pid for p in live_children()} - before == {warm.pid}, "a second worker started"
        wait_for(lambda: (jm.tick() or True) and run.status()["status"] == "completed", 120,
                 what=f"run {i} to complete")
        holders += [h["worker"] for h in store.history(run.id) if h["to_state"] == "claimed"]
        if i == 0:
            time.sleep(1.5)  # the worker is idle now, and stays
            assert warm.poll() is None
    assert len(holders) == 2 and holders[0] == holders[1], holders
    assert warm.wait(60) == 0  # once idle for 12 s
    assert store.workers(kind="worker") == []


@pytest.mark.parametrize("after_reads", [1, 2, 3])
def test_a_run_claimed_while_tick_reads_starts_no_second_worker(tmp_path: Path, db_url, after_reads):
    """The idle worker claims the waiting run while tick is reading the store (after its first,
    second or third query). Tick reads one snapshot, so it sees the run either waiting with the
    worker spare or taken: in neither case does a worker start. (Read in separate queries, a claim
    after the second query started a second worker: CI's failure of the test above, stop 40.)"""
    jm = JobManager(tmp_path, limit=1, db=db_url)
    store = jm.store
    store.register_worker("w-idle", "worker", slots=1, device="cpu")
    run = create_run(TrainConfig(model="logreg", epochs=1), tmp_path, status="queued")
    started, reads = [], []
    jm._spawn_worker = lambda: started.append(1)
    ticking = threading.get_ident()

    def worker_claims_now(conn, cursor, statement, *args):
        nonlocal started
        if threading.get_ident() != ticking:
            return  # another thread's query on the shared engine is not one of tick's reads
        if started is None or not statement.lstrip().upper().startswith("SELECT"):
            return  # the claim's own queries (PostgreSQL reads and writes with one engine), or a write
        reads.append(statement)
        if len(reads) == after_reads:  # another process's claim and beat, in between tick's reads
            kept, started = started, None
            assert store.claim("w-idle", 1).run_id == run.id
            store.worker_beat("w-idle", current=run.id)
            started = kept

    engine = store._read
    sa_event.listen(engine, "after_cursor_execute", worker_claims_now)
    try:
        assert jm.tick() == 0
    finally:
        sa_event.remove(engine, "after_cursor_execute", worker_claims_now)
    assert len(reads) >= after_reads and started == []
    assert store.get(run.id)["status"] == RunState.CLAIMED


def test_a_sweep_launched_here_is_not_taken_for_a_starting_worker(tmp_path: Path):
    """A sweep the server launched for the same runs folder registers as a "sweep", never as a job
    worker; counted as a worker still starting, it kept every run queued meanwhile from a worker."""
    import subprocess
    import sys

    from signlab import launch

    # a process whose command line is the server's sweep's: python -m signlab sweep --runs-dir ROOT
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "sweep", "--runs-dir",
                             str(tmp_path.resolve()), "--study", "s"])
    with launch._LOCK:
        launch._CHILDREN.append(fake)
    try:
        # "in", not "==": a worker an earlier test's manager started (in this pytest process, for its
        # own runs folder) may still linger for more runs, and failed this test when run after it
        assert fake in launch.live_children("sweep") and fake not in launch.live_children("worker")
        jm = JobManager(tmp_path, limit=2)
        started = []
        jm._spawn_worker = lambda: started.append(1)
        create_run(TrainConfig(model="logreg", epochs=1), tmp_path, status="queued")
        assert jm.tick() == 1 and started == [1]
    finally:
        fake.kill()
        fake.wait()


def test_the_database_away_is_a_missed_head_start_and_a_one_line_error(tmp_path: Path, monkeypatch):
    """Reads, like writes, turn a database that is away into a SignlabError naming it: warm() then
    returns False (a missed head start), and a page shows one line, not sqlalchemy's traceback."""
    import sqlalchemy as sa

    from signlab.errors import SignlabError

    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "30")
    jm = JobManager(tmp_path, limit=1)
    store = jm.store
    monkeypatch.setattr(store, "_read", sa.create_engine("postgresql://nobody@127.0.0.1:1/nodb"))
    jm._spawn_worker = lambda: pytest.fail("a worker was started without reading the store")
    assert jm.warm() is False
    with pytest.raises(SignlabError, match="run database .* is not available"):
        store.capacity()
    with pytest.raises(SignlabError, match="is not available"):
        store.queue()


def test_capacity_counts_only_runs_a_job_worker_can_take(tmp_path: Path):
    """A sweep's new trial waits for its own sweep worker: no job worker starts for it."""
    jm = JobManager(tmp_path, limit=2)
    jm.store.add("trial-1", kind="trial", study="s")
    assert jm.store.capacity().waiting == 0 and jm.store.queue() == ["trial-1"]
    started = []
    jm._spawn_worker = lambda: started.append(1)
    assert jm.tick() == 0 and started == []
    jm.store.add("run-1")
    assert jm.store.capacity().waiting == 1 and jm.tick() == 1


def test_warm_starts_nothing_without_local_workers_lingering_or_a_free_slot(tmp_path: Path, monkeypatch):
    before = len(live_children())
    assert JobManager(tmp_path, limit=1, start_workers=False).warm() is False  # a cluster's server
    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "0")
    assert JobManager(tmp_path, limit=1).warm() is False
    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "30")
    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, status="running")  # the one slot is taken
    assert JobManager(tmp_path, limit=1).warm() is False
    assert len(live_children()) == before


@pytest.mark.parametrize("value, seconds", [("30", 30.0), ("0", 0.0), ("-5", 0.0), ("nan", 120.0),
                                            ("soon", 120.0), ("1e9", 86_400.0)])
def test_worker_linger_seconds_reads_the_environment(monkeypatch, value, seconds):
    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", value)
    assert worker_linger_seconds() == seconds


def test_a_worker_finishing_a_released_run_counts_as_spare(tmp_path: Path, monkeypatch):
    """After a run is released the worker still evaluates it on the test set, with the run as its
    current one; a Train page that reruns then must not start a second worker."""
    monkeypatch.setenv("SIGNLAB_WORKER_LINGER", "30")
    jm = JobManager(tmp_path, limit=2)
    run = create_run(TrainConfig(model="logreg", epochs=1), tmp_path, status="completed")
    jm.store.register_worker("w-evaluating", "worker", slots=1, device="cpu")
    jm.store.worker_beat("w-evaluating", current=run.id)
    before = len(live_children())
    assert jm.warm() is False
    assert len(live_children()) == before


@pytest.mark.parametrize("epochs", [0, 201, 10**400])
def test_continue_from_a_page_checks_the_epochs_as_the_command_line_does(tmp_path: Path, epochs):
    """The Train page's Continue box allowed 1 to 100 epochs and the command line 1 to 200, and the
    page's path (JobManager.submit_continue) checked nothing: both now read the epochs setting."""
    from signlab.errors import ConfigError

    run = create_run(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path, run_id="done")
    jm = JobManager(tmp_path, limit=1, start_workers=False)
    with pytest.raises(ConfigError, match="^epochs: .* is out of range; allowed 1 to 200"):
        jm.submit_continue(run.id, epochs)
    assert jm.store.get("done")["status"] == RunState.QUEUED  # checked before the run is looked at


def test_a_workers_device_is_used_for_the_fit_and_never_written_into_the_run(tmp_path: Path, monkeypatch,
                                                                              small_dataset):
    """`worker --device cuda` wrote cuda into the config.json of every "auto" run it trained, so a CPU
    worker that took the run's continuation failed it: the device now goes to that one fit only."""
    from signlab import api, worker

    fits: list[str] = []
    real_fit = api._fit
    monkeypatch.setattr(api, "load_dataset", lambda *a, **k: small_dataset)
    monkeypatch.setattr(api, "_fit", lambda run, cfg, *a, **k: fits.append(cfg.device) or real_fit(run, cfg, *a, **k))
    run = create_run(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False), tmp_path,
                     run_id="auto-run", status=RunState.QUEUED)
    assert worker.run_worker(tmp_path, device="cpu", exit_when_idle=True, limit=1) == 1
    assert fits == ["cpu"]
    assert run.config.device == "auto"
    assert str(run.status()["status"]) == "completed"
    # a continuation taken by a worker that names no device trains on the machine's choice
    JobManager(tmp_path, limit=1, start_workers=False).submit_continue(run.id, 1)
    assert worker.run_worker(tmp_path, exit_when_idle=True, limit=1) == 1
    assert fits == ["cpu", "auto"]
    assert str(run.status()["status"]) == "completed" and run.epochs_completed() == 2


def test_the_background_ticker_says_once_why_it_fails_and_keeps_going(tmp_path: Path, monkeypatch, caplog):
    """A fault in tick() stops the queue; the ticker swallowed it without a trace."""
    jm = JobManager(tmp_path, limit=1, start_workers=False)
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) < 6:
            raise OSError("No space left on device")

    monkeypatch.setattr(jm, "tick", tick)
    with caplog.at_level("WARNING", logger="signlab.jobs"):
        jm.start_background(interval=0.01)
        try:
            wait_for(lambda: len(calls) >= 8, timeout=30)
        finally:
            jm.stop_background()
    said = [r for r in caplog.records if r.name == "signlab.jobs"]
    assert len(said) == 1, said  # five failures in a row, one warning
    assert "background tick failed" in said[0].getMessage() and "No space left" in said[0].exc_text


@pytest.mark.parametrize("command", ["worker", "sweep"])
def test_a_worker_that_cannot_register_leaves_sigterm_as_it_was(tmp_path: Path, monkeypatch, command):
    """The workers hold SIGTERM while they run; when registering fails (the database away), the
    handler from before is back. It was installed before the registration and restored only in a
    ``finally`` after it, so a failed registration left it in place in the calling process."""
    import signal

    from signlab import sweep, worker
    from signlab.errors import SignlabError
    from signlab.store import RunStore

    def away(self, *args, **kwargs):
        raise SignlabError("the run database is not available: away")

    monkeypatch.setattr(RunStore, "register_worker", away)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SignlabError, match="away"):
        if command == "worker":
            worker.run_worker(tmp_path, exit_when_idle=True)
        else:
            sweep.run_sweep(runs_dir=tmp_path, trials=1, max_steps=1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_server_starts_its_queue_before_any_page_opens(tmp_path: Path, monkeypatch, app_caches):
    """After a restart the queue stalled until someone opened a page: the job manager's background
    thread started with the first page. serve.py (what scripts/app.sh runs) now starts it, and the
    pages then use that same one."""
    import runpy

    from signlab import ui

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNLAB_LOCAL_WORKERS", "0")  # no worker process: the thread is what is checked
    import threading

    def tickers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "signlab-jobs"}

    before = tickers()
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "serve.py"))
    (started,) = tickers() - before  # by serve.py itself, no page opened
    jm = ui.job_manager()  # what a page gets: the same manager, not a second ticker
    assert jm.runs_dir == tmp_path and jm._thread is started and tickers() - before == {started}


def test_a_stopped_ticker_has_ended_when_stop_returns(tmp_path: Path, monkeypatch):
    """stop_background waits for a tick under way: a ticker that went on after "stop" read whatever
    database SIGNLAB_DB named by then (in CI, the next test's, whose count of tick's reads it broke)."""
    jm = JobManager(tmp_path, limit=1)
    ticks = []

    def slow_tick() -> None:
        ticks.append(1)
        time.sleep(0.5)

    monkeypatch.setattr(jm, "tick", slow_tick)
    jm.start_background(interval=0.01)
    wait_for(lambda: ticks, timeout=30, what="a tick")
    jm.stop_background()
    assert not jm._thread.is_alive()  # before: the tick begun was still sleeping


def test_a_manager_keeps_the_database_it_started_with(tmp_path: Path, monkeypatch):
    """A manager looked its store up by SIGNLAB_DB at each tick: a page test's ticker, left running,
    went on in whatever database a later test set (and its reads broke that test's count, stop 55)."""
    monkeypatch.delenv("SIGNLAB_DB", raising=False)
    jm = JobManager(tmp_path / "a", limit=1)
    first = jm.store
    monkeypatch.setenv("SIGNLAB_DB", str(tmp_path / "other.db"))  # the next test's database
    assert jm.store is first and first.url.endswith(str(tmp_path / "a" / "signlab.db"))
    assert jm.tick() == 0  # nothing queued in its own database


def test_a_ticker_started_again_after_a_stop_ticks(tmp_path, monkeypatch):
    """stop_background set a flag that start_background never cleared: a ticker started again ended
    at once, and the queue stood still with no word."""
    jobs = JobManager(tmp_path, limit=1)
    ticks: list[int] = []
    monkeypatch.setattr(jobs, "tick", lambda: ticks.append(1))
    jobs.start_background(0.01)
    wait_for(lambda: ticks, 10, what="a first tick")
    jobs.stop_background()
    ticks.clear()
    jobs.start_background(0.01)
    try:
        wait_for(lambda: len(ticks) >= 2, 10, what="ticks after the restart")
    finally:
        jobs.stop_background()


def test_a_worker_that_cannot_start_leaves_the_started_run_queued_and_says_why(tmp_path: Path):
    """Start queued the run, then starting its worker failed (workers.log unwritable: made by an
    admin's worker as another user): the page said "Could not start" of a run waiting in the queue,
    and the student pressed Start again and queued it twice. The run is returned and the reason is
    there for the page; once a worker can start, the run trains."""
    jm = JobManager(tmp_path, limit=1)
    (tmp_path / "workers.log").mkdir()
    run = jm.submit(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False, device="cpu"))
    assert run.status()["status"] == RunState.QUEUED and jm.store.queue() == [run.id]
    problem = jm.try_tick()
    assert problem is not None and "workers.log" in problem, problem
    assert run.status()["status"] == RunState.QUEUED and len(list_runs(tmp_path)) == 1
    (tmp_path / "workers.log").rmdir()
    assert jm.try_tick() is None
    wait_for(lambda: run.status()["status"] == RunState.COMPLETED, 120, what="the run to train once a worker starts")


def test_workers_that_fail_at_once_are_started_again_ever_more_slowly(tmp_path: Path, monkeypatch):
    """A worker that fails as it starts (here a bad SIGNLAB_MAX_CSV_MB, set after the server started;
    a clock off the database's does the same) was started again at every tick, a Python and torch start
    each second for as long as the run waited. Each such failure doubles the wait before the next (on
    the manager's own clock, set here); the page hears why; a worker that gets going clears it."""
    from signlab import jobs

    now = [1000.0]
    monkeypatch.setattr(jobs, "_clock", lambda: now[0], raising=False)
    started: list = []
    real_spawn = jobs.spawn
    monkeypatch.setattr(jobs, "spawn", lambda *a, **k: started.append(real_spawn(*a, **k)) or started[-1])
    jm = JobManager(tmp_path, limit=1)
    monkeypatch.setenv("SIGNLAB_MAX_CSV_MB", "0")  # read by each worker as it starts: it exits 2
    run = jm.submit(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False, device="cpu"))
    spawned_at = [now[0]]  # the submit's tick started the first
    for wait in (1, 2, 4):
        assert len(started) == len(spawned_at)
        assert started[-1].wait(60) == 2
        now[0] += 0.5  # noticed at the next tick
        problem = jm.try_tick()
        assert len(started) == len(spawned_at), "started again at once"
        assert "exit code 2" in problem and "SIGNLAB_MAX_CSV_MB" in problem and f"next starts in {wait} s" in problem
        now[0] += wait - 0.1  # not yet
        jm.try_tick()
        assert len(started) == len(spawned_at)
        now[0] += 0.2
        jm.try_tick()
        spawned_at.append(now[0])
    assert len(started) == 4 and not jm.warm()  # nor does a page's warm-up start one meanwhile
    assert run.status()["status"] == RunState.QUEUED
    monkeypatch.delenv("SIGNLAB_MAX_CSV_MB")  # mended; the 4th (started with it) fails, the 5th trains
    assert started[-1].wait(60) == 2
    now[0] += 0.5
    assert jm.try_tick() is not None  # the 4th's failure
    now[0] += 8
    assert jm.try_tick() is None and len(started) == 5  # the 5th started: "the next starts in" is past
    now[0] += jobs.QUICK_EXIT + 1  # it is past its start: the count is cleared
    assert jm.try_tick() is None and jm._quick_exits == 0
    wait_for(lambda: run.status()["status"] == RunState.COMPLETED, 120, what="the run to train")
    assert len(started) == 5
    # the log's last line is said only where it is a failed command's own, and never through a link
    log = tmp_path / "workers.log"
    log.write_text("run r1: claimed (attempt 1)\n")
    assert jobs._last_line(log) == ""
    log.write_text("signlab: SIGNLAB_MAX_CSV_MB: '0' is not a whole number\n")
    assert jobs._last_line(log) == ': "signlab: SIGNLAB_MAX_CSV_MB: \'0\' is not a whole number" in workers.log'
    secret = tmp_path / "secret.txt"
    secret.write_text("signlab: the password is hunter2\n")
    log.unlink()
    log.symlink_to(secret)
    assert jobs._last_line(log) == ""


def test_a_worker_that_exited_is_reaped_at_the_next_tick(tmp_path: Path):
    """tick() polled its children only when a worker was to be started: an exited worker stayed a
    zombie until the next run was queued."""
    from signlab import launch

    jm = JobManager(tmp_path, limit=1)
    child = launch.spawn(["--help"], tmp_path / "workers.log")  # a child of this process that exits at once
    wait_for(lambda: open(f"/proc/{child.pid}/stat").read().split(") ")[1][0] == "Z", 60, what="it to exit")
    jm.tick()  # nothing is queued
    assert not Path(f"/proc/{child.pid}").exists() and child.returncode == 0


def test_a_worker_that_cannot_start_is_logged_once_not_at_every_poll(tmp_path: Path, caplog):
    """The Train page's poll calls try_tick twice a second: a lasting cause was logged at each."""
    import logging

    jm = JobManager(tmp_path, limit=1)
    (tmp_path / "workers.log").mkdir()
    create_run(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path)
    with caplog.at_level(logging.WARNING, logger="signlab.jobs"):
        said = [jm.try_tick() for _ in range(5)]
    assert len(set(said)) == 1 and said[0] is not None
    assert sum("no worker could be started" in r.getMessage() for r in caplog.records) == 1


def test_a_database_away_as_a_worker_notes_its_run_does_not_end_the_worker(tmp_path: Path, monkeypatch, small_dataset):
    """A worker notes in its own row the run it has just claimed, and the count it has finished. The
    run database away for a moment at either note ended the worker, and the run it had claimed waited
    out its lease and counted as a crash; those notes are bookkeeping the next loop's beat repeats."""
    from signlab import api, worker
    from signlab.errors import SignlabError
    from signlab.store import RunStore

    monkeypatch.setattr(api, "load_dataset", lambda *a, **k: small_dataset)
    runs = [create_run(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False), tmp_path,
                       run_id=f"run-{i}", status=RunState.QUEUED) for i in range(2)]
    beat, refused = RunStore.worker_beat, []

    def away(self, worker_id, **fields):
        if "current" in fields:  # the notes around a run, each refused once
            key = "claimed" if fields["current"] else "finished"
            if key not in refused:
                refused.append(key)
                raise SignlabError("the run database sqlite:///runs.db is not available: database is locked")
        return beat(self, worker_id, **fields)

    monkeypatch.setattr(RunStore, "worker_beat", away)
    assert worker.run_worker(tmp_path, exit_when_idle=True, limit=1) == 2
    assert sorted(refused) == ["claimed", "finished"]
    assert all(str(r.status()["status"]) == "completed" and r.status()["attempt"] == 1 for r in runs)


def test_a_worker_reports_a_continuation_that_could_not_start_as_given_back(tmp_path: Path, monkeypatch, small_dataset):
    """A continuation whose fit could not be built goes back to its run's state (completed); the worker
    still reported it "failed", in its log and its --json line."""
    from signlab import api, worker

    monkeypatch.setattr(api, "load_dataset", lambda *a, **k: small_dataset)
    run = create_run(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False), tmp_path,
                     run_id="kept", status=RunState.QUEUED)
    assert worker.run_worker(tmp_path, exit_when_idle=True, limit=1) == 1
    JobManager(tmp_path, limit=1, start_workers=False).submit_continue(run.id, 1)

    def broken(config):
        raise RuntimeError("size mismatch for layer.weight")

    monkeypatch.setattr(api, "build_model", broken)
    records, said = [], []
    assert worker.run_worker(tmp_path, exit_when_idle=True, limit=1, on_finish=records.append, log=said.append) == 1
    assert records == [{"run_id": "kept", "status": "completed",
                        "message": "its continuation could not start: RuntimeError: size mismatch for layer.weight"}], records
    assert str(run.status()["status"]) == "completed" and not [s for s in said if "failed" in s], said
