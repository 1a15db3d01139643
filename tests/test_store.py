"""The run store on both backends (SQLite and a real PostgreSQL server): the state machine, claims
under the job limit, leases, many workers and servers on one queue, faults, resumes, stale
requests and bad files that must never break the others."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from signlab.cli import main
from signlab.config import TrainConfig
from signlab.errors import QuotaError, RunError, SignlabError
from signlab.jobs import JobManager
from signlab.runs import create_held_run, create_run, list_runs, new_run_id, open_run
from signlab.store import HOLDING, LeaseLost, RunState, RunStore, store_for
from tests._wait import wait_for

TINY = dict(model="logreg", epochs=1, max_steps=2, batch_size=64, augment=False, log_every=1, device="cpu")


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # workers share 2 cores with the test runner
    # a dead holder is found out within seconds; 3 s was once too short for a live worker starting
    # up beside a second pytest worker (its lease ran out and its run ended "interrupted")
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "5")


def _worker(runs_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "signlab", "worker", "--runs-dir", str(runs_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _all_at_once(target, n: int, timeout: float = 120) -> None:
    """Run ``target(k)`` for k in range(n), each in its own thread, and wait for all of them."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def _max_overlap(store) -> int:
    """The most claims open at one instant, from the audit trail (claim to release)."""
    events = []
    open_claims: dict[tuple[str, int], float] = {}
    for h in store.history():
        key = (h["run_id"], h["attempt"])
        if h["to_state"] == "claimed" or (h["from_state"], h["to_state"]) == ("paused", "running"):
            open_claims[key] = h["at"]
            events.append((h["at"], 1))
        elif h["to_state"] == "paused" or (h["from_state"] in ("claimed", "running")
                                           and h["to_state"] not in [s.value for s in HOLDING]):
            events.append((h["at"], -1))  # a paused run gives its slot back (store._TAKES_SLOT)
    level = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):  # a release before a claim at the same instant
        level += d
        peak = max(peak, level)
    return peak


# ----------------------------------------------------------------------------- the state machine
def test_transitions_are_compare_and_set(tmp_path, db_url):
    store = store_for(tmp_path, db_url)
    run = create_run(TrainConfig(**TINY), tmp_path, run_id="r1")
    assert store.get("r1")["status"] == RunState.QUEUED
    first = store.claim("w1", limit=1)
    assert first is not None and first.run_id == "r1" and first.attempt == 1
    assert store.claim("w2", limit=5) is None  # nothing else queued
    store.update(first, RunState.RUNNING, epochs_completed=0)
    with pytest.raises(RunError, match="cannot go from running to queued"):
        store.update(first, RunState.QUEUED)
    stale = type(first)("r1", 0, "w1")
    with pytest.raises(LeaseLost):  # a holder with an old attempt number cannot write
        store.update(stale, RunState.COMPLETED)
    store.update(first, RunState.COMPLETED, val_accuracy=0.5)
    row = run.status()
    assert row["status"] == "completed" and row["val_accuracy"] == 0.5 and row["worker"] is None
    with pytest.raises(LeaseLost):  # a finished run is held by no one
        store.heartbeat(first)
    assert [h["to_state"] for h in store.history("r1")] == ["queued", "claimed", "running", "completed"]


def test_claims_keep_the_limit_and_the_order(tmp_path, db_url):
    store = store_for(tmp_path, db_url)
    for i in range(4):
        create_run(TrainConfig(**TINY), tmp_path, run_id=f"q{i}")
        time.sleep(0.01)
    assert store.queue() == ["q0", "q1", "q2", "q3"] and store.queue_position("q2") == 3
    a, b = store.claim("w", 2), store.claim("w", 2)
    assert (a.run_id, b.run_id) == ("q0", "q1")
    assert store.claim("w", 2) is None  # the limit: two hold a slot
    assert store.queue_position("q2") == 1 and store.queue_position("q0") is None
    store.update(a, RunState.RUNNING)
    store.update(a, RunState.STOPPED)
    assert store.claim("w", 2).run_id == "q2"


def test_owners_take_turns_in_the_queue(tmp_path, db_url):
    """A class on one slot: alice queues three runs, then bob two and the teacher one. First come,
    first served trained all of alice's before bob's first; now each owner's next run takes its
    turn, the owner served longest ago first, and the queue the page shows is the order they start."""
    store = store_for(tmp_path, db_url)
    for rid, owner in [("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("b1", "bob"), ("b2", "bob"),
                       ("t1", "teacher")]:
        create_run(TrainConfig(**TINY), tmp_path, run_id=rid, owner=owner)
        time.sleep(0.01)
    assert store.queue() == ["a1", "b1", "t1", "a2", "b2", "a3"]
    assert [store.queue_position(r) for r in ("a1", "t1", "a3")] == [1, 3, 6]
    order = []
    while (c := store.claim("w", limit=1)) is not None:
        order.append(c.run_id)
        if c.run_id == "a1":  # alice queues another while her first trains: it goes after bob's and the teacher's
            create_run(TrainConfig(**TINY), tmp_path, run_id="a4", owner="alice")
            assert store.queue() == ["b1", "t1", "a2", "b2", "a3", "a4"]  # alice was served last
        store.update(c, RunState.RUNNING)
        store.update(c, RunState.COMPLETED)
    assert order == ["a1", "b1", "t1", "a2", "b2", "a3", "a4"]


def test_an_instructor_starts_a_queued_run_next(tmp_path, db_url):
    """A teacher with a class on one slot could not start the run to show the class before the
    students' turns: no page or command moved a run in the queue. Start next puts it at the head
    (the latest moved first), it goes first from there, and only an instructor may do it."""
    from signlab.access import AccessError, Policy, User, start_next

    store = store_for(tmp_path, db_url)
    for rid, owner in [("a1", "alice"), ("a2", "alice"), ("b1", "bob"), ("t1", "teacher")]:
        create_run(TrainConfig(**TINY), tmp_path, run_id=rid, owner=owner)
        time.sleep(0.01)
    assert store.queue() == ["a1", "b1", "t1", "a2"]
    pol = Policy(instructors=("teacher",), show_classmates=True)
    teacher, alice = User("teacher", "instructor"), User("alice")
    with pytest.raises(AccessError, match="only an instructor can start a run ahead of the queue"):
        start_next(alice, "a2", pol, tmp_path)  # her own run: still not before her classmates' turns
    with pytest.raises(AccessError, match="there is no run"):
        start_next(User("carol"), "a2", Policy(instructors=("teacher",)), tmp_path)
    assert store.queue() == ["a1", "b1", "t1", "a2"]
    assert start_next(teacher, "a2", pol, tmp_path) == 1
    assert store.queue() == ["a2", "a1", "b1", "t1"]
    assert start_next(teacher, "t1", pol, tmp_path) == 1  # the latest moved goes first
    assert store.queue() == ["t1", "a2", "a1", "b1"]
    order = []
    while (c := store.claim("w", limit=1)) is not None:
        order.append(c.run_id)
        with pytest.raises(RunError, match=f"run {c.run_id} is not waiting in the queue: it is claimed"):
            store.move_first(c.run_id)
        store.update(c, RunState.RUNNING)
        store.update(c, RunState.COMPLETED)
    assert order == ["t1", "a2", "b1", "a1"]  # then the turns: alice, served just now, after bob
    # queued again to continue, a moved run takes its turn like any other: alice was served last
    store.enqueue_continue("a2", 1)
    create_run(TrainConfig(**TINY), tmp_path, run_id="b2", owner="bob")
    assert store.queue() == ["b2", "a2"]


def test_concurrent_claims_never_exceed_the_limit(tmp_path, db_url):
    """16 threads race for 30 queued runs with a limit of 3: every run is claimed exactly once."""
    store = store_for(tmp_path, db_url)
    for i in range(30):
        create_run(TrainConfig(**TINY), tmp_path, run_id=f"c{i:02d}")
    claimed: list[str] = []
    lock = threading.Lock()

    def racer(n: int) -> None:
        while True:
            c = store.claim(f"t{n}", limit=3)
            if c is None:
                if not store.queue():
                    return
                time.sleep(0.005)
                continue
            with lock:
                claimed.append(c.run_id)
            store.update(c, RunState.RUNNING)
            store.update(c, RunState.COMPLETED)

    _all_at_once(racer, 16)
    assert sorted(claimed) == [f"c{i:02d}" for i in range(30)]
    assert _max_overlap(store) <= 3


def test_starts_at_one_instant_never_pass_the_job_quota(tmp_path, db_url):
    """Eight tabs of one student press Start together under a quota of 2 runs at a time: the quota
    is counted in the insert's own transaction, so exactly two are queued, the rest refused with the
    quota's words, and no folder is left without its row. (A count before the insert let all pass.)"""
    store = store_for(tmp_path, db_url)
    create_run(TrainConfig(**TINY), tmp_path, run_id="other", owner="bob")  # another owner's run does not count
    made, refused = [], []
    gate = threading.Barrier(8)

    def tab(_: int) -> None:
        gate.wait()
        try:
            made.append(create_run(TrainConfig(**TINY), tmp_path, owner="alice", max_active=2).id)
        except QuotaError as err:
            refused.append(str(err))

    _all_at_once(tab, 8, 60)
    assert len(made) == 2 and len(refused) == 6
    assert all("you have 2 runs queued or training, and the limit is 2" in m for m in refused)
    assert sorted(r["run_id"] for r in store.rows(owner="alice")) == sorted(made)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted([*made, "other"])
    # a continuation is a start too: with both still queued, a finished run of alice's may not be continued
    run, claim = create_held_run(TrainConfig(**TINY), "me", tmp_path, owner="alice")
    store.update(claim, RunState.RUNNING)
    store.update(claim, RunState.COMPLETED)
    with pytest.raises(QuotaError, match="limit is 2"):
        store.enqueue_continue(run.id, 1, max_active=2)
    store.request(made[0], "stop")
    store.enqueue_continue(run.id, 1, max_active=2)
    assert store.get(run.id)["status"] == RunState.QUEUED


def test_three_openers_of_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Two openers of a brand-new SQLite file race to switch it to WAL; neither may be refused.

    CI once failed here: two sweep workers started together and one exited 2 with "database is
    locked" from ``PRAGMA journal_mode=WAL``. Separate connections (threads with their own stores)
    lock exactly as separate processes do; before the fix about a third of the rounds failed.
    """
    errors: list[str] = []
    for i in range(60):
        url = f"sqlite:///{tmp_path}/r{i}/signlab.db"
        barrier = threading.Barrier(3)

        def opener(_: int) -> None:
            barrier.wait()
            try:
                store = RunStore(url)
                store.counts()
                store.dispose()
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(str(err))

        _all_at_once(opener, 3, 60)
    assert errors == []


# ----------------------------------------------------------------------------- workers and servers
def test_two_servers_and_three_workers_drain_thirty_runs(tmp_path, db_url):
    """Two job managers (dashboard servers) and three worker processes on one database: each of 30
    queued runs trains exactly once, and the job limit (3) is never exceeded. (Ten runs a worker
    is enough for every worker to claim while the others train.)"""
    limit = 3
    managers = [JobManager(tmp_path, limit=limit, db=db_url) for _ in range(2)]
    ids = [managers[i % 2].submit(TrainConfig(**TINY, seed=i), name=f"job {i}").id for i in range(30)]
    workers = [_worker(tmp_path, "--exit-when-idle", "--json", "--limit", str(limit)) for _ in range(3)]
    store = managers[0].store

    def drained() -> bool:
        for m in managers:
            m.tick()
        return not store.queue() and not any(store.get(i)["status"] in HOLDING for i in ids)

    wait_for(drained, 300, what="30 runs to be trained", interval=0.5)
    outs = [w.communicate(timeout=60)[0] for w in workers]
    finished = [json.loads(line) for out in outs for line in out.splitlines() if line.startswith("{")]
    assert all(set(f) >= {"run_id", "status"} for f in finished)
    for rid in ids:
        row = store.get(rid)
        assert row["status"] == RunState.COMPLETED, (rid, row["message"])
        run = open_run(rid, tmp_path)
        assert sum(m["type"] == "fit_start" for m in run.metrics()) == 1, f"{rid} trained more than once"
        assert [h["to_state"] for h in store.history(rid)].count("running") == 1
    assert _max_overlap(store) <= limit
    assert len(list_runs(tmp_path)) == 30


def test_a_crash_between_claim_and_start_loses_nothing(tmp_path, db_url):
    """A worker dies right after its claim: the lease runs out, the run waits in the queue again,
    and the next worker trains it once."""
    run = create_run(TrainConfig(**TINY), tmp_path, run_id="fragile")
    crashed = _worker(tmp_path, "--exit-when-idle", env={"SIGNLAB_FAULT": "after_claim"})
    assert crashed.wait(60) == 3 and "injected fault" in crashed.stderr.read()
    assert run.status()["status"] == RunState.CLAIMED  # nobody has noticed yet
    wait_for(lambda: run.store.expire_leases() or run.status()["status"] == RunState.QUEUED, 30,
             what="the lease to run out")  # then the run waits in the queue again
    good = _worker(tmp_path, "--exit-when-idle", "--json")
    out, _ = good.communicate(timeout=120)
    assert json.loads(out.splitlines()[-1]) == {"run_id": "fragile", "status": "completed"}
    assert sum(m["type"] == "fit_start" for m in run.metrics()) == 1
    states = [h["to_state"] for h in run.store.history("fragile")]
    assert states == ["queued", "claimed", "queued", "claimed", "running", "completed"]


def test_a_run_that_kills_every_worker_before_it_starts_fails_after_a_few(tmp_path, db_url, monkeypatch):
    """A run whose loading killed each worker that took it (out of memory before its first step) was
    queued again in its place every time, with no count: it held the head of a one-slot queue, and
    killed every worker, for good. Now it fails after AUTO_CONTINUES + 1 such deaths and the queue
    moves on; a worker shut down on purpose (SIGTERM, hand_back) is not counted."""
    from signlab.store import AUTO_CONTINUES

    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "5")
    store = store_for(tmp_path, db_url)
    create_run(TrainConfig(**TINY), tmp_path, run_id="heavy")
    time.sleep(0.01)
    create_run(TrainConfig(**TINY), tmp_path, run_id="next")
    claim = store.claim("w-term", 1)
    store.hand_back(claim)  # shut down before it started: waits again, not counted
    assert store.get("heavy")["continues"] == 0 and store.queue() == ["heavy", "next"]
    for k in range(AUTO_CONTINUES + 1):
        claim = store.claim(f"w{k}", 1)
        assert claim.run_id == "heavy"
        store.expire_leases(time.time() + 60)  # its worker died: the lease runs out
    row = store.get("heavy")
    assert row["status"] == RunState.FAILED and row["message"].startswith(
        f"failed: the training process stopped unexpectedly {AUTO_CONTINUES + 1} times before training began"), row
    assert store.queue() == ["next"] and store.claim("w-last", 1).run_id == "next"


def test_a_killed_worker_is_continued_by_another(tmp_path, db_url):
    """SIGKILL mid-epoch: the lease expires, the run is interrupted and continued by another worker
    from its last finished epoch (at most one epoch is lost)."""
    cfg = TrainConfig(model="mlp", epochs=4, batch_size=64, log_every=5, augment=False, device="cpu")
    run = create_run(cfg, tmp_path, run_id="victim")
    first = _worker(tmp_path, "--exit-when-idle")
    wait_for(lambda: any(m["type"] == "batch" and m["epoch"] >= 2 for m in run.metrics()), 180,
             what="a batch of epoch 2")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    # read after the kill: an epoch can end between a read and the signal
    done_before = run.status()["epochs_completed"]
    assert done_before >= 1
    # nobody renews its lease now: once it runs out, the run is interrupted and queued to continue
    wait_for(lambda: run.store.expire_leases() or run.status()["status"] == RunState.QUEUED, 30,
             what="the lease to run out")
    second = _worker(tmp_path, "--exit-when-idle", "--json")
    out, err = second.communicate(timeout=240)
    assert json.loads(out.splitlines()[-1])["status"] == "completed", err
    row = run.status()
    assert row["status"] == RunState.COMPLETED and row["epochs_completed"] == 4
    states = [h["to_state"] for h in run.store.history("victim")]
    assert "interrupted" in states and states[-1] == "completed"
    epochs = [m["epoch"] for m in run.metrics() if m["type"] == "epoch"]
    assert sorted(set(epochs)) == [1, 2, 3, 4] and len(epochs) - 4 <= 1  # at most one epoch trained twice
    starts = [m["start_epoch"] for m in run.metrics() if m["type"] == "fit_start"]
    # from the epoch of its weights: the store's count, or one ahead (the weights are saved before the row)
    assert starts[0] == 0 and len(starts) == 2 and starts[1] in (done_before, done_before + 1), (starts, done_before)
    assert run.config.epochs == 4 and not list(run.dir.glob(".*.tmp"))


def test_a_worker_shut_down_with_sigterm_hands_its_run_back_to_the_queue(tmp_path, db_url):
    """SIGTERM (an operator restarting the workers, systemd, docker) stopped the run being trained as
    if its student had pressed Stop: "its process was told to quit at once", never queued again, and
    the worker's --json said nothing of it. Now the run waits in its place to continue from its last
    finished epoch, the worker says so, and the next worker trains it to its end."""
    cfg = TrainConfig(model="mlp", epochs=4, batch_size=64, log_every=5, augment=False, device="cpu")
    run = create_run(cfg, tmp_path, run_id="restarted")
    first = _worker(tmp_path, "--exit-when-idle", "--json")
    wait_for(lambda: any(m["type"] == "batch" and m["epoch"] >= 2 for m in run.metrics()), 180,
             what="a batch of epoch 2")
    first.send_signal(signal.SIGTERM)
    time.sleep(0.002)  # and again, as systemd signals the whole group: it broke off the hand-back, and
    first.send_signal(signal.SIGTERM)  # the run stayed "running" under a dead worker until its lease ran out
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    said = json.loads(out.splitlines()[-1])
    row = run.status()  # handed back at once: not after the lease ran out
    done = row["epochs_completed"]
    assert row["status"] == RunState.QUEUED and done >= 1, row
    assert said == {"run_id": "restarted", "status": "queued"}  # as any run's end is said
    assert row["message"] == ("the training process was shut down (its worker was stopped); it is queued to "
                              f"continue from epoch {done}, whose weights are kept"), row["message"]
    assert row["resume_epochs"] == 4 - done and "stopped" not in [h["to_state"] for h in run.store.history("restarted")]
    second = _worker(tmp_path, "--exit-when-idle", "--json")
    out, err = second.communicate(timeout=240)
    assert json.loads(out.splitlines()[-1])["status"] == "completed", err
    assert run.status()["epochs_completed"] == 4
    epochs = [m["epoch"] for m in run.metrics() if m["type"] == "epoch"]
    assert sorted(set(epochs)) == [1, 2, 3, 4] and len(epochs) - 4 <= 1


def test_a_worker_shut_down_between_its_claim_and_training_hands_the_run_back(tmp_path, monkeypatch):
    """A SIGTERM after the claim and before training began (the worker's beat, the run's folder, the
    lease's start) left the run claimed by a gone worker: taken back only when its lease ran out, and
    counted as a crash, which the cap on such deaths turns into a failure."""
    from signlab import worker
    from signlab.interrupt import ShutDown

    run = create_run(TrainConfig(**TINY), tmp_path, run_id="early")

    def shut_down(name: str) -> None:
        if name == "after_claim":
            raise ShutDown

    monkeypatch.setattr(worker, "_fault_point", shut_down)
    said = []
    assert worker.run_worker(tmp_path, exit_when_idle=True, on_finish=said.append) == 0
    row = run.status()
    assert row["status"] == RunState.QUEUED and row["continues"] == 0, row
    assert said == [{"run_id": "early", "status": "queued", "message": row["message"]}]


def test_a_run_with_finished_epochs_is_not_called_failed_by_the_cap_on_deaths_before_training(tmp_path):
    """The cap on workers dying before a run trains shares its count with deaths while training: a run
    that crashed three times while training, then lost a worker while loading, ended "failed: ... 4
    times before training began", weights of epoch 2 beside it. It is left interrupted, as after its
    last automatic continuation."""
    from signlab.store import AUTO_CONTINUES, runs_table

    store = store_for(tmp_path)
    create_run(TrainConfig(model="logreg", epochs=5), tmp_path, run_id="tired")
    claim = store.claim("w", 1)
    with store._tx() as conn:
        conn.execute(runs_table.update().where(runs_table.c.run_id == "tired").values(
            epochs_completed=2, continues=AUTO_CONTINUES))
    assert claim is not None and store.expire_leases(time.time() + 600) == ["tired"]
    row = store.get("tired")
    assert row["status"] == RunState.INTERRUPTED and "failed" not in row["message"], row
    assert "the weights of epoch 2 are kept and the run can be continued" in row["message"]


def _train_held(tmp_path: Path, at_event) -> tuple[dict, object]:
    """Train a queued TINY run in this process through ``api.train_claimed``, calling
    ``at_event(event, run)`` from a callback; returns the record and the run."""
    from signlab.api import train_claimed

    run = create_run(TrainConfig(**TINY), tmp_path)
    claim = run.store.claim("test-holder", 1)
    assert claim is not None and claim.run_id == run.id
    return train_claimed(run, claim, [lambda event, trainer: at_event(event, run)]), run


def test_a_heartbeat_just_after_the_run_finished_is_not_a_lost_lease(tmp_path, db_url):
    """A beat landing between the holder's final update and the end of its heartbeat thread found
    the run held by no one and read that as "taken over": the worker reported a completed run as
    interrupted and skipped its test accuracy (seen once in CI). Here every beat (each second) lands
    in that moment: a callback waits 1.5 s after the run has ended."""
    from signlab.events import FitEnd

    record, run = _train_held(tmp_path, lambda e, r: time.sleep(1.5) if isinstance(e, FitEnd) else None)
    assert run.status()["status"] == RunState.COMPLETED
    assert record["status"] == "completed", record
    assert record["test_accuracy"] is not None  # evaluated: the holder knew it still owned the run


def test_a_worker_training_for_longer_than_two_leases_stays_live(tmp_path, db_url, monkeypatch):
    """A worker writes its own row between runs only; the lease's heartbeat keeps it live while it
    trains. (Without it a worker dropped out of the live workers after two leases of training: the job
    manager took it for one still starting and started no worker for the next run, and the Sweeps
    page said "Starting the worker…" in the middle of a trial.)"""
    from signlab.store import workers_table

    store = store_for(tmp_path)
    store.register_worker("w-busy", "worker", slots=1, device="cpu")
    create_run(TrainConfig(**TINY), tmp_path, run_id="long", status="queued")
    claim = store.claim("w-busy", 1)
    store.worker_beat("w-busy", current=claim.run_id)  # as signlab.worker does after a claim
    with store._tx() as conn:  # its last own beat, three leases ago: it has been training since
        conn.execute(workers_table.update().values(heartbeat=time.time() - 15))
    assert store.workers(kind="worker") == []
    store.heartbeat(claim)
    assert [w["worker_id"] for w in store.workers(kind="worker")] == ["w-busy"]
    assert store.capacity().spare == 0  # live and busy: not spare, not "starting"


def test_a_lease_taken_mid_run_stops_the_holder_and_reads_interrupted(tmp_path, db_url):
    """The other side of the test above: a lease that really is taken (it ran out and the server
    took the run back) is still found by the next beat, and the holder stops writing."""
    from signlab.events import BatchEnd

    def take_it(event, run) -> None:
        if isinstance(event, BatchEnd) and event.step == 1:
            assert run.store.expire_leases(now=time.time() + 3600) == [run.id]  # as if it ran out
            time.sleep(1.5)  # the next beat (each second) finds it taken

    record, run = _train_held(tmp_path, take_it)
    assert record["status"] == "interrupted" and "lost its lease" in record["message"]
    assert record["test_accuracy"] is None
    assert not any(m["type"] == "fit_end" for m in run.metrics())  # nothing written after the loss


def test_two_resumes_at_once_one_is_refused(tmp_path, db_url, capsys):
    cfg = TrainConfig(**{**TINY, "max_steps": None, "epochs": 1})
    assert main(["train", "--model", "logreg", "--epochs", "1", "--no-augment", "--device", "cpu",
                 "--runs-dir", str(tmp_path), "--json", "--quiet"]) == 0
    rid = json.loads(capsys.readouterr().out.splitlines()[-1])["run_id"]
    del cfg
    procs = [subprocess.Popen([sys.executable, "-m", "signlab", "train", "--resume", rid, "--epochs", "2",
                               "--runs-dir", str(tmp_path), "--json", "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=240) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[2] == 2)
    assert refused[1].count("\n") == 1 and refused[1].startswith("signlab: ") and "continue" in refused[1]
    run = open_run(rid, tmp_path)
    epochs = [m["epoch"] for m in run.metrics() if m["type"] == "epoch"]
    assert epochs == [1, 2, 3] and run.status()["epochs_completed"] == 3


def test_stale_stop_or_pause_never_acts_on_a_later_resume(tmp_path, db_url, capsys):
    assert main(["train", "--model", "logreg", "--epochs", "1", "--no-augment", "--device", "cpu",
                 "--runs-dir", str(tmp_path), "--json", "--quiet"]) == 0
    rid = json.loads(capsys.readouterr().out.splitlines()[-1])["run_id"]
    run = open_run(rid, tmp_path)
    for action in ("stop", "pause"):  # pressed after the run had finished
        assert run.request(action) == RunState.COMPLETED
        assert run.status()["control"] is None
    assert main(["train", "--resume", rid, "--epochs", "2", "--runs-dir", str(tmp_path), "--json", "--quiet"]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert rec["status"] == "completed" and rec["epochs"] == 3
    # a stop pressed while a held run trains is cleared by the next claim
    held, claim = create_held_run(TrainConfig(**TINY), "h", tmp_path, run_id="held")
    held.request("stop")
    held.store.update(claim, RunState.RUNNING)
    held.store.update(claim, RunState.STOPPED)
    assert held.status()["control"] is None


def test_pause_resume_and_stop_a_queued_job(tmp_path, db_url):
    jm = JobManager(tmp_path, limit=1, db=db_url)
    run = jm.submit(TrainConfig(model="mlp", epochs=20, batch_size=32, log_every=5, augment=False, device="cpu"))
    waiting = jm.submit(TrainConfig(**TINY))
    assert jm.queue_position(waiting) in (1, 2)  # 2 until the worker claims the first
    wait_for(lambda: (jm.tick() or True) and any(m["type"] == "batch" for m in run.metrics()), 120,
             what="the first batch")
    assert jm.queue_position(waiting) == 1
    assert jm.cancel(waiting) == RunState.STOPPED  # a queued run never starts
    run.request("pause")
    wait_for(lambda: run.status()["status"] == RunState.PAUSED, 30, what="paused")
    n = len(run.metrics())
    time.sleep(1.5)
    assert len(run.metrics()) == n, "a paused worker kept training"
    run.request("resume")
    wait_for(lambda: run.status()["status"] == RunState.RUNNING and len(run.metrics()) > n, 30, what="resumed")
    jm.cancel(run)
    wait_for(lambda: run.status()["status"] == RunState.STOPPED, 60, what="stopped")
    jm.tick()
    time.sleep(1)
    assert not waiting.metrics(), "a cancelled run was started"


def test_a_run_paused_past_the_class_limit_stops_and_keeps_its_epochs(tmp_path, small_dataset, monkeypatch):
    """A paused run keeps its worker process, with the model and the data in memory: one student
    who paused and left held it for as long as the server ran. Past the class's max_pause_minutes
    (1 s here) it stops, keeps its finished epochs and can be continued; the page said so while it
    was paused."""
    from signlab import api
    from signlab.events import EpochEnd

    monkeypatch.setattr(api, "pause_limit_seconds", lambda root: 1.0)
    store = store_for(tmp_path)
    said = []

    def pause_after_the_first_epoch(event, trainer) -> None:
        if isinstance(event, EpochEnd) and event.epoch == 1:
            store.request("paused", "pause")
        row = store.get("paused")
        if row["status"] == RunState.PAUSED and not said:
            said.append(row["message"])

    cfg = TrainConfig(model="logreg", epochs=200, batch_size=64, augment=False, log_every=1, device="cpu")
    rec = api.train(cfg, tmp_path, callbacks=[pause_after_the_first_epoch], dataset=small_dataset, run_id="paused")
    assert rec["status"] == "stopped" and rec["message"].startswith("stopped, paused for over 1 s, "), rec
    assert said == ["paused; press Resume to go on (after 1 s paused it stops, keeping its last finished epoch)"]
    row = store.get("paused")
    assert row["status"] == RunState.STOPPED and 1 <= row["epochs_completed"] < 200
    assert open_run("paused", tmp_path).has_weights()
    store.enqueue_continue("paused", 1)  # and Continue trains on from there


class _Trainer:
    """What api.ControlWatcher asks of a Trainer: stop, and a clock to pause."""

    stop_requested, reason = False, None

    def stop(self, reason="stopped by request"):
        self.stop_requested, self.reason = True, reason

    @contextlib.contextmanager
    def off_the_clock(self):
        yield


def test_a_pause_past_the_limit_at_an_epochs_end_stops_once(tmp_path, monkeypatch):
    """A pause asked at an epoch's last batch: the limit stopped the trainer, the epoch's end event
    came next with the pause still asked, and a second whole pause began (121 s for a 60-s limit,
    seen on a class server). Once stopping, the watcher lets every event through."""
    from signlab import api

    monkeypatch.setattr(api, "pause_limit_seconds", lambda root: 0.3)
    paused = []

    class Writer:
        run = type("R", (), {"dir": tmp_path / "run"})()

        def set_state(self, state, message=""):
            paused.append(message)

        def resume(self):
            return False

    class Lease:
        control, lost = "pause", threading.Event()

        def beat(self):
            return None

    watcher, trainer = api.ControlWatcher(Writer(), Lease(), poll_seconds=0.01), _Trainer()
    watcher("the epoch's last batch", trainer)
    assert trainer.reason == "stopped, paused for over 1 s," and len(paused) == 1
    watcher("the epoch's end", trainer)  # the pause is still asked: no second pause
    assert len(paused) == 1


def test_a_paused_run_whose_lease_is_taken_leaves_its_pause_at_once(tmp_path, monkeypatch):
    """A paused run's process stalled past its lease (a suspended laptop, a database outage) and another
    process took the run back: the pause request stayed on the lost lease, and the watcher, reading it
    first, stayed paused for the whole pause limit (for good with none) while the server counted it as a
    worker still starting. It now stops at its next poll."""
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "2")
    from signlab import api
    from signlab.runs import RunWriter
    from signlab.store import Heartbeat

    monkeypatch.setattr(api, "pause_limit_seconds", lambda root: 0)  # no limit: the pause alone never ends
    run = create_run(TrainConfig(**TINY), tmp_path, run_id="r1")
    store = store_for(tmp_path)
    claim = store.claim("worker-a", limit=1)
    store.update(claim, RunState.RUNNING, epochs_completed=1)
    lease = Heartbeat(store, claim)  # its thread not started: the watcher beats it
    store.request("r1", "pause")
    lease.beat()
    assert lease.control == "pause"

    trainer = _Trainer()
    watcher = api.ControlWatcher(RunWriter(run, claim, lease), lease, poll_seconds=0.02)
    paused = threading.Thread(target=watcher, args=("a batch's end", trainer), daemon=True)
    paused.start()
    wait_for(lambda: store.get("r1")["status"] == RunState.PAUSED, 10, what="the run to pause")
    store.expire_leases(now=time.time() + 100)  # another process takes it back
    assert store.get("r1")["status"] != RunState.PAUSED
    paused.join(10)
    assert not paused.is_alive() and lease.lost.is_set() and trainer.stop_requested


def test_a_paused_run_gives_its_slot_to_the_queue_and_resumes_when_one_is_free(tmp_path, db_url):
    """On a class server with one slot, a student who paused a run and left stopped everyone's queue:
    a paused run keeps its process and lease but no slot, and Resume waits for a free one, before
    the runs queued after it."""
    store = store_for(tmp_path, db_url)
    for rid in ("alice", "bob", "carol"):
        create_run(TrainConfig(**TINY), tmp_path, run_id=rid)
        time.sleep(0.01)
    a = store.claim("wa", limit=1)
    assert a.run_id == "alice" and a.limit == 1
    store.update(a, RunState.RUNNING)
    assert store.claim("wb", limit=1) is None  # alice trains: the one slot is taken
    store.request("alice", "pause")
    store.update(a, RunState.PAUSED)
    assert store.capacity().holding == 0
    b = store.claim("wb", limit=1)
    assert b is not None and b.run_id == "bob"  # bob trains while alice is paused
    store.update(b, RunState.RUNNING)
    store.request("alice", "resume")
    assert store.get("alice")["status"] == RunState.PAUSED
    assert store.capacity().holding == 2  # alice waits for the slot, so carol may not take it
    assert store.claim("wc", limit=1) is None
    assert store.resume(a) is False and store.get("alice")["message"] == "resuming as soon as a slot is free"
    assert store.resume(a) is False  # asked again while it waits: still paused
    store.update(b, RunState.COMPLETED)
    assert store.claim("wc", limit=1) is None  # the freed slot is alice's
    assert store.resume(a) is True and store.get("alice")["status"] == RunState.RUNNING
    store.update(a, RunState.COMPLETED)
    assert store.claim("wc", limit=1).run_id == "carol"
    assert _max_overlap(store) == 1
    with pytest.raises(LeaseLost):  # a finished run's pause is over for good
        store.resume(a)


def test_a_run_queued_behind_a_paused_one_trains_meanwhile(tmp_path):
    """The same through real workers: the job manager starts a second worker for the waiting run
    (the paused run's worker is not spare), and the paused run goes on after it."""
    jm = JobManager(tmp_path, limit=1)
    paused = jm.submit(TrainConfig(model="mlp", epochs=20, batch_size=32, log_every=5, augment=False, device="cpu"))
    wait_for(lambda: (jm.tick() or True) and any(m["type"] == "batch" for m in paused.metrics()), 120,
             what="the first batch")
    paused.request("pause")
    wait_for(lambda: paused.status()["status"] == RunState.PAUSED, 30, what="paused")
    waiting = jm.submit(TrainConfig(**TINY))
    wait_for(lambda: (jm.tick() or True) and waiting.status()["status"] == RunState.COMPLETED, 180,
             what="the run queued behind a paused one to finish")
    n = len(paused.metrics())
    paused.request("resume")
    wait_for(lambda: paused.status()["status"] == RunState.RUNNING and len(paused.metrics()) > n, 60,
             what="resumed")
    jm.cancel(paused)
    wait_for(lambda: paused.status()["status"] == RunState.STOPPED, 60, what="stopped")
    assert _max_overlap(paused.store) == 1


# ----------------------------------------------------------------------------- bad files and ids
def test_bad_files_never_break_listing_or_the_queue(tmp_path, db_url, capsys):
    """Each bad folder from the issue: listing, the `runs` command and the queue keep working."""
    def folder(name: str, **files: object) -> Path:
        d = tmp_path / name
        d.mkdir()
        for fname, content in files.items():
            (d / fname.replace("_", ".")).write_text(content if isinstance(content, str) else json.dumps(content))
        return d

    good_cfg = TrainConfig(**TINY).to_dict()
    folder("meta-date", config_json=good_cfg, meta_json={"created": "2026-11-30"})
    folder("meta-list", config_json=good_cfg, meta_json=[1])
    folder("status-string", config_json=good_cfg, status_json="running")
    folder("torn-config", config_json='{"model": "logr')
    folder("huge-number", config_json={**good_cfg, "seed": 10 ** 400}, status_json={"epochs_completed": 10 ** 400})
    bad_model = create_run(TrainConfig(**TINY), tmp_path, run_id="unknown-model")
    (bad_model.dir / "config.json").write_text(json.dumps({**good_cfg, "model": "no-such-model"}))
    good = create_run(TrainConfig(**TINY), tmp_path, run_id="good-one")

    warnings: list[str] = []
    listed = {r.id: r.summary() for r in list_runs(tmp_path, warn=warnings.append)}
    assert set(listed) >= {"meta-date", "meta-list", "status-string", "torn-config", "huge-number",
                           "unknown-model", "good-one"}
    assert listed["torn-config"]["status"] == "failed" and len(warnings) >= 2
    assert listed["status-string"]["status"] == "interrupted"
    assert main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)) == len(listed)
    # the queue: the run whose model is unknown fails with its own message, the good one trains
    worker = _worker(tmp_path, "--exit-when-idle", "--json")
    out, err = worker.communicate(timeout=180)
    records = {json.loads(line)["run_id"]: json.loads(line)["status"] for line in out.splitlines()}
    assert records["unknown-model"] == "failed" and records["good-one"] == "completed", err
    assert "no-such-model" in open_run("unknown-model", tmp_path).status()["message"]
    assert good.status()["status"] == RunState.COMPLETED
    # an unreadable run can be deleted from the listing
    from signlab.runs import delete_run

    delete_run("torn-config", tmp_path)
    assert "torn-config" not in {r.id for r in list_runs(tmp_path)}


def test_run_ids_do_not_collide(tmp_path, db_url, monkeypatch):
    # 10,000 ids in the same second or two collide with odds of about 1 in 22,000 (40 random bits);
    # 100,000 did so once in 220 runs, and this test failed by chance (it did, 2026-12-04)
    ids = {new_run_id("fastcnn") for _ in range(10_000)}
    assert len(ids) == 10_000
    # and a collision is no error: a generated id whose row or folder exists is replaced
    import signlab.runs as runs_mod

    first = create_run(TrainConfig(**TINY), tmp_path).id
    (tmp_path / "20261204-000000-logreg-00000000aa").mkdir()  # a folder without its row
    picks = iter([first, "20261204-000000-logreg-00000000aa", "20261204-000000-logreg-00000000bb"])
    with monkeypatch.context() as m:
        m.setattr(runs_mod, "new_run_id", lambda model: next(picks))
        assert create_run(TrainConfig(**TINY), tmp_path).id == "20261204-000000-logreg-00000000bb"
    made: list[str] = []
    errors: list[Exception] = []

    def press_start(n: int) -> None:
        try:
            for _ in range(10):
                made.append(create_run(TrainConfig(**TINY), tmp_path).id)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    _all_at_once(press_start, 10)
    assert not errors and len(set(made)) == 100
    assert len(store_for(tmp_path, db_url).queue()) == 102


def test_a_listing_while_a_run_is_made_neither_steals_nor_breaks_it(tmp_path, db_url, monkeypatch):
    """A page that lists the runs (anyone's Runs page, Home) while a student presses Start.

    The run's folder used to appear, config.json written, before its row: a listing in that moment
    imported it as an ownerless "interrupted" run, and then the Start itself failed with "run ...
    already exists" and deleted the folder (seen in CI's four-sessions browser test).
    """
    import signlab.runs as runs_mod

    real_write = runs_mod.atomic_write_json
    listed = threading.Event()

    def write_then_list(path, data):
        real_write(path, data)
        if Path(path).name == "config.json":  # the folder now looks like a run: another page lists
            threading.Thread(target=lambda: (list_runs(tmp_path), listed.set()), daemon=True).start()
            listed.wait(2)  # the old order let the listing finish (and import) here; now it waits for the row

    monkeypatch.setattr(runs_mod, "atomic_write_json", write_then_list)
    run = create_run(TrainConfig(**TINY), tmp_path, owner="ann")
    monkeypatch.setattr(runs_mod, "atomic_write_json", real_write)
    assert listed.wait(30)
    row = store_for(tmp_path, db_url).get(run.id)
    assert (row["owner"], row["kind"], row["status"]) == ("ann", "train", RunState.QUEUED)
    assert [r.id for r in list_runs(tmp_path)] == [run.id] and (run.dir / "config.json").is_file()


def test_a_listing_while_a_run_is_deleted_does_not_bring_it_back(tmp_path, db_url, monkeypatch):
    import shutil

    from signlab.runs import delete_run

    run, claim = create_held_run(TrainConfig(**TINY), "holder", tmp_path)
    store = store_for(tmp_path, db_url)
    store.update(claim, RunState.RUNNING)
    store.update(claim, RunState.COMPLETED)
    real_rmtree = shutil.rmtree

    def list_then_remove(path, *args, **kwargs):  # another page lists the runs just then
        list_runs(tmp_path)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", list_then_remove)
    delete_run(run.id, tmp_path)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert store.get(run.id) is None and not run.dir.exists()
    assert list(tmp_path.glob(".deleting-*")) == []


def test_runs_command_and_queue_flag(tmp_path, db_url, capsys):
    assert main(["train", "--model", "logreg", "--epochs", "1", "--max-steps", "2", "--queue", "--json",
                 "--runs-dir", str(tmp_path)]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(rec) == {"run_id", "run_dir", "status"} and rec["status"] == "queued"
    assert Path(rec["run_dir"]).is_dir()
    assert main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["run_id"] == rec["run_id"] and rows[0]["status"] == "queued"
    assert set(rows[0]) >= {"run_id", "name", "status", "model", "test_accuracy", "created"}
    assert main(["train", "--queue", "--resume", rec["run_id"]]) == 2


# ----------------------------------------------------------------------------- the database setting
def test_a_plain_path_in_signlab_db_is_a_sqlite_file(tmp_path, monkeypatch):
    """``SIGNLAB_DB=/srv/runs.db`` is what a user types; SQLAlchemy would answer "Could not parse
    SQLAlchemy URL", naming neither the setting nor the fix."""
    from signlab.store import db_url_for

    target = tmp_path / "elsewhere" / "class.db"
    target.parent.mkdir()
    monkeypatch.setenv("SIGNLAB_DB", str(target))
    assert db_url_for(tmp_path / "runs") == f"sqlite:///{target.resolve()}"
    store = store_for(tmp_path / "runs")
    run = create_run(TrainConfig(**TINY), tmp_path / "runs", run_id="in-the-named-file")
    assert store.get(run.id) is not None and target.is_file()


def test_a_named_database_in_a_folder_that_does_not_exist_is_refused(tmp_path, monkeypatch, capsys):
    """``SIGNLAB_DB=/srv/singlab/runs.db`` (a typo): the folder was made, an empty database in it,
    and every page showed no runs. The command exits 2 naming the folder, and nothing is made; the
    default database (in the runs folder) is still made on first use."""
    target = tmp_path / "typo" / "class.db"
    monkeypatch.setenv("SIGNLAB_DB", str(target))
    with pytest.raises(SignlabError, match=r"SIGNLAB_DB or --db\): the folder .*typo does not exist"):
        store_for(tmp_path / "runs")
    for args in (["train", "--epochs", "1", "--max-steps", "1", "--runs-dir", str(tmp_path / "runs")],
                 ["runs", "--json"]):  # runs, with no runs folder, listed nothing and exited 0
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "typo does not exist; create it, or correct the path" in err, err
    assert not (tmp_path / "typo").exists()
    from tests.test_cli_guards import _dashboard_refuses

    _dashboard_refuses(monkeypatch, tmp_path / "runs", "SIGNLAB_DB or --db", "typo does not exist")
    monkeypatch.delenv("SIGNLAB_DB")
    assert store_for(tmp_path / "fresh" / "runs").get("nothing") is None
    assert (tmp_path / "fresh" / "runs" / "signlab.db").is_file()


def test_a_continuation_stopped_before_it_starts_leaves_the_run_as_it_was(tmp_path):
    """Continue, then Stop before a worker took it: a completed run read "stopped: cancelled before
    it started", beside its epochs and test accuracy. It goes back to completed, its words kept; a
    continuation that was taken (and then queued again after its holder vanished) is stopped instead,
    keeping its newer epochs."""
    run, claim = create_held_run(TrainConfig(epochs=2), "trainer", tmp_path, run_id="done")
    store = run.store
    store.update(claim, RunState.RUNNING, epochs_completed=2)
    store.update(claim, RunState.COMPLETED, message="trained 2 epochs", test_accuracy=0.93)
    store.enqueue_continue("done", 3)
    assert store.get("done")["status"] == RunState.QUEUED and store.get("done")["target_epochs"] == 5
    assert store.request("done", "stop") == RunState.COMPLETED
    row = store.get("done")
    assert row["status"] == RunState.COMPLETED and row["target_epochs"] == 2 and row["test_accuracy"] == 0.93
    assert row["message"] == "trained 2 epochs; its continuation was cancelled before it started"
    store.enqueue_continue("done", 3)  # again: the words are said once (each round added them again)
    assert store.request("done", "stop") == RunState.COMPLETED
    assert store.get("done")["message"] == "trained 2 epochs; its continuation was cancelled before it started"
    # claimed by a worker that vanished before it started training: nothing of it ran, so it is as before
    store.enqueue_continue("done", 3)
    store.claim("w0", 1)
    assert store.expire_leases(now=time.time() + 3600) == ["done"]
    assert store.get("done")["status"] == RunState.QUEUED
    assert store.request("done", "stop") == RunState.COMPLETED
    row = store.get("done")
    assert row["target_epochs"] == 2 and row["test_accuracy"] == 0.93 and row["message"].startswith("trained 2 epochs;")
    # taken by a worker, which vanished after an epoch: queued again, then stopped, it keeps epoch 3
    store.enqueue_continue("done", 3)
    taken = store.claim("w", 1)
    store.update(taken, RunState.RUNNING, epochs_completed=3)
    assert store.expire_leases(now=time.time() + 3600) == ["done"]
    assert store.get("done")["status"] == RunState.QUEUED
    assert store.request("done", "stop") == RunState.STOPPED
    assert store.get("done")["message"] == "cancelled before it continued; the weights of epoch 3 are kept"


def test_a_worker_of_two_slots_reports_each_finished_run(tmp_path):
    """``worker --slots 2 --json`` prints one JSON line per run its two children finished, as a
    one-slot worker does (it printed nothing: the children wrote only to workers.log); without
    ``--json`` it says on stderr how each run ended."""
    ids = [create_run(TrainConfig(**TINY, seed=i), tmp_path, run_id=f"s{i}").id for i in range(3)]
    out, err = _worker(tmp_path, "--exit-when-idle", "--json", "--slots", "2").communicate(timeout=300)
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(lines, key=lambda r: r["run_id"]) == [{"run_id": rid, "status": "completed"} for rid in ids], err
    more = [create_run(TrainConfig(**TINY, seed=9), tmp_path, run_id="s9").id]
    # a run that fails says why, as a one-slot worker says it (its dataset is not one the server may read)
    bad = create_run(TrainConfig(**TINY, data=str(tmp_path / "elsewhere")), tmp_path, run_id="bad").id
    out, err = _worker(tmp_path, "--exit-when-idle", "--slots", "2").communicate(timeout=300)
    assert out == "" and f"run {more[0]}: completed" in err.splitlines(), err
    why = [line for line in err.splitlines() if line.startswith(f"run {bad}: failed (")]
    assert why and "elsewhere" in why[0], err


@pytest.mark.parametrize("action, state, words", [
    ("stop", RunState.STOPPED, "stopped: its training process stopped unexpectedly before it acted on the stop; "
                               "the weights of epoch 2 are kept"),
    ("pause", RunState.INTERRUPTED, "interrupted while paused: its training process stopped unexpectedly"),
])
def test_a_stop_or_pause_outlives_a_holder_that_died_before_acting_on_it(tmp_path, db_url, action, state, words):
    """A worker frozen, its run stopped by the instructor (or paused by its student), then killed:
    the lease ran out, the request was dropped, the run went back to the queue and trained to its end
    ("completed" beside "stopped by teacher"), or a paused run trained on with nobody pressing Resume."""
    run = create_run(TrainConfig(model="logreg", epochs=5), tmp_path, run_id="r", owner="alice",
                     status=RunState.QUEUED)
    store = run.store
    claim = store.claim("w", 1)
    store.update(claim, RunState.RUNNING, epochs_completed=2)
    if action == "pause":  # paused and waiting, its slot given up
        store.request("r", "pause")
        store.update(claim, RunState.PAUSED)
    else:
        store.request("r", "stop", by="teacher")
    assert store.expire_leases(now=time.time() + 3600) == ["r"]
    row = store.get("r")
    assert row["status"] == state and row["epochs_completed"] == 2, row
    assert row["message"].startswith(words), row["message"]
    assert store.claim("w2", 1) is None  # nothing queued: it is not trained again unasked
    if action == "stop":
        assert row["stopped_by"] == "teacher"
    # its user may continue it, as any finished run
    store.enqueue_continue("r", 3)
    assert store.claim("w3", 1).run_id == "r"


def test_the_store_keeps_how_often_a_run_was_taken_up_again_and_from_where(tmp_path, db_url):
    """What the Train page says of a run whose process died or was shut down (views.taken_up_text): how
    often it was queued again and from which epoch it went on, until its user continues it."""
    run = create_run(TrainConfig(model="logreg", epochs=5), tmp_path, run_id="r", owner="alice",
                     status=RunState.QUEUED)
    store = run.store
    claim = store.claim("w", 1)
    store.update(claim, RunState.RUNNING, epochs_completed=2)
    assert store.expire_leases(now=time.time() + 3600) == ["r"]  # its process died
    assert store.get("r")["taken_up"] == {"times": 1, "epoch": 2}
    claim = store.claim("w2", 1)
    store.hand_back(claim)  # shut down (SIGTERM) before it trained: no crash, taken up all the same
    assert store.get("r")["taken_up"] == {"times": 2, "epoch": 2}
    claim = store.claim("w3", 1)
    store.update(claim, RunState.RUNNING, epochs_completed=5)
    store.update(claim, RunState.COMPLETED, message="trained 5 epochs")
    assert store.get("r")["taken_up"] == {"times": 2, "epoch": 2}  # said beside its result too
    store.enqueue_continue("r", 1)  # its user's own continuation: a new story
    assert store.get("r")["taken_up"] is None
    store.request("r", "stop")  # cancelled before it started: the run as it was, its story too
    assert store.get("r")["status"] == RunState.COMPLETED and store.get("r")["taken_up"] == {"times": 2, "epoch": 2}
    fresh = create_run(TrainConfig(model="logreg", epochs=2), tmp_path, run_id="f", status=RunState.QUEUED)
    store.claim("w4", 1, run_id=fresh.id)
    assert store.expire_leases(now=time.time() + 7200) == ["f"]  # died before training: from its start
    assert store.get("f")["taken_up"] == {"times": 1, "epoch": 0}


def test_a_stop_too_late_to_act_leaves_a_completed_run_stopped_by_no_one(tmp_path, db_url):
    """A teacher's walk: an instructor's Stop pressed as a student's run ended left it "completed" with
    ``stopped_by`` naming the instructor (``runs --json``); a Pause as late, ``paused_by``."""
    run = create_run(TrainConfig(model="logreg", epochs=2), tmp_path, run_id="r", owner="alice",
                     status=RunState.QUEUED)
    store = run.store
    claim = store.claim("w", 1)
    store.update(claim, RunState.RUNNING, epochs_completed=1)
    store.request("r", "stop", by="teacher")
    assert store.get("r")["stopped_by"] == "teacher"  # said while it stops
    store.update(claim, RunState.COMPLETED, epochs_completed=2, message="trained 2 epochs")
    row = store.get("r")
    assert row["status"] == RunState.COMPLETED and row["stopped_by"] is None, row
    # a Pause as late: paused by no one either
    fresh = create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="p", owner="alice",
                       status=RunState.QUEUED)
    claim = store.claim("w2", 1, run_id=fresh.id)
    store.update(claim, RunState.RUNNING)
    store.request("p", "pause", by="teacher")
    assert store.get("p")["paused_by"] == "teacher"
    store.update(claim, RunState.COMPLETED, epochs_completed=1, message="trained 1 epoch")
    assert store.get("p")["paused_by"] is None


def test_a_pending_stop_or_pause_on_a_run_never_started_leaves_it_as_a_user_expects(tmp_path, db_url):
    """A completed run continued, taken by a worker that died before starting it, with Stop pressed:
    it ended "stopped" with the continuation's target, where a Stop while still queued gives the
    completed run back. A Pause before the first epoch left an interrupted run with nothing to
    continue, told to continue it."""
    run, claim = create_held_run(TrainConfig(model="logreg", epochs=2), "trainer", tmp_path, run_id="done")
    store = run.store
    store.update(claim, RunState.RUNNING, epochs_completed=2)
    store.update(claim, RunState.COMPLETED, message="trained 2 epochs", test_accuracy=0.93)
    store.enqueue_continue("done", 3)
    store.claim("w", 1)
    store.request("done", "stop")
    assert store.expire_leases(now=time.time() + 3600) == ["done"]
    row = store.get("done")
    assert row["status"] == RunState.COMPLETED and row["target_epochs"] == 2 and row["test_accuracy"] == 0.93, row
    assert row["message"] == "trained 2 epochs; its continuation was cancelled before it started"
    fresh = create_run(TrainConfig(model="logreg", epochs=2), tmp_path, run_id="fresh", status=RunState.QUEUED)
    taken = store.claim("w2", 1)
    store.update(taken, RunState.RUNNING)
    store.request("fresh", "pause")
    assert store.expire_leases(now=time.time() + 3600) == ["fresh"]
    row = fresh.status()
    assert row["status"] == RunState.STOPPED and "start it again on Train" in row["message"], row
    assert store.claim("w3", 1) is None


def test_a_trial_whose_sweep_worker_died_before_it_started_is_cancelled(tmp_path, db_url, monkeypatch):
    """kill -9 of a sweep left its trial "waiting in the queue" for good: job workers never take a new
    trial (its sweep trains it), it sat at the head of the queue and counted against its owner's quota.
    Told apart per worker: another live worker of the same study keeps its own trial."""
    from signlab import store as store_module

    monkeypatch.setattr(store_module, "lease_seconds", lambda: 0.5)
    make = dict(kind="trial", auto_continue=False, owner="bob", status=RunState.QUEUED, study="s")
    orphan = create_run(TrainConfig(model="logreg"), tmp_path, run_id="orphan", **make)
    create_run(TrainConfig(model="logreg"), tmp_path, run_id="alive", **make)
    store = orphan.store
    store.register_worker("sweep-live", "sweep", study="s")
    store.register_worker("sweep-dead", "sweep", study="s", current_run="orphan")
    time.sleep(1.5)  # both trials queued longer than two leases ago, and the dead worker silent as long
    store.worker_beat("sweep-live", current_run="alive")  # the live worker names the trial it waits with
    assert store.expire_leases() == ["orphan"]
    row = store.get("orphan")
    assert row["status"] == RunState.STOPPED and "the sweep worker that made it stopped" in row["message"], row
    assert store.queue() == ["alive"]


def test_a_holder_whose_lease_ran_out_is_no_spare_worker(tmp_path, db_url):
    """kill -9 of a worker mid-run: its run was queued again after one lease, but the dead worker's
    row still looked alive (heartbeat within two leases) and spare (its run no longer held), so no
    worker was started for another lease while the page said "waiting for a free slot"."""
    run = create_run(TrainConfig(model="logreg", epochs=3), tmp_path, run_id="r", status=RunState.QUEUED)
    store = run.store
    store.register_worker("w-dead", "worker", slots=1)
    claim = store.claim("w-dead", 1)
    store.worker_beat("w-dead", current=claim.run_id)
    store.update(claim, RunState.RUNNING, epochs_completed=1)
    assert store.capacity().spare == 0
    assert store.expire_leases(now=time.time() + 3600) == ["r"]
    cap = store.capacity()
    assert store.get("r")["status"] == RunState.QUEUED and cap.waiting == 1
    assert cap.spare == 0 and cap.workers == []  # so a job manager starts a worker for it now
    store.worker_beat("w-dead", current=None)  # it was only asleep: its next beat brings it back
    assert [w["worker_id"] for w in store.capacity().workers] == ["w-dead"]


def test_a_run_its_worker_died_under_keeps_its_place_in_the_queue(tmp_path, db_url):
    """Interrupted and queued again to continue, a run was queued anew: its owner's run queued after
    it went first. Its words were the worker's id and "can be continued; queued to continue"."""
    first = create_run(TrainConfig(model="logreg", epochs=8), tmp_path, run_id="first", owner="bob")
    store = first.store
    claim = store.claim("w1", 1)
    assert claim.run_id == "first"
    store.update(claim, RunState.RUNNING, epochs_completed=5)
    create_run(TrainConfig(model="logreg", epochs=8), tmp_path, run_id="later", owner="bob")
    assert store.expire_leases(now=time.time() + 3600) == ["first"]
    assert store.queue() == ["first", "later"]
    row = store.get("first")
    assert row["message"] == ("the training process stopped unexpectedly; it is queued to continue from epoch 5, "
                              "whose weights are kept"), row["message"]
    assert "w1" in {h["worker"] for h in store.history("first")}  # who it was stays in the history


def test_a_run_taken_back_from_its_holder_goes_first_in_the_queue(tmp_path, db_url):
    """Queued again after its worker died or was shut down, a run took its owner's turn: the owner had
    just been served, so a classmate's run queued after the restart went ahead of a half-trained one
    ("in its place", the README said). It was at the head, training: it goes back there."""
    store = store_for(tmp_path, db_url)
    create_run(TrainConfig(model="logreg", epochs=3), tmp_path, run_id="bob-run", owner="bob")
    claim = store.claim("w1", 1)
    store.update(claim, RunState.RUNNING, epochs_completed=1)
    store.hand_back(claim)  # a worker shut down: systemd restarting the class's workers
    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="carol-run", owner="carol")
    assert store.queue() == ["bob-run", "carol-run"]
    claim = store.claim("w2", 1)
    assert claim.run_id == "bob-run"
    store.update(claim, RunState.RUNNING, epochs_completed=2)
    assert store.expire_leases(now=time.time() + 3600) == ["bob-run"]  # and a worker that died
    assert store.queue() == ["bob-run", "carol-run"]


def test_a_continuation_whose_run_changed_under_its_claim_is_refused(tmp_path, monkeypatch):
    """claim_final returned a Claim even when its compare-and-set found the row changed since it read
    it (a delete takes no claim lock): the continuation then trained a run it did not hold."""
    from signlab.store import runs_table

    store = store_for(tmp_path)
    store.add("done", RunState.COMPLETED)
    finished = store._finished

    def read_then_changed_by_another(conn, run_id, now):
        row = finished(conn, run_id, now)
        conn.execute(runs_table.update().where(runs_table.c.run_id == run_id).values(attempt=row.attempt + 7))
        return row  # the row as read, before the other writer's change

    monkeypatch.setattr(store, "_finished", read_then_changed_by_another)
    with pytest.raises(RunError, match="^run done changed while it was being claimed to continue; try again$"):
        store.claim_final("done", "w-resume", 1)


@pytest.mark.parametrize("ended_by", ["stop", "limit"])
def test_a_run_paused_at_its_last_step_then_stopped_completes(tmp_path, small_dataset, monkeypatch, ended_by):
    """A pause asked at the last epoch's last step, then a Stop (or the class's pause limit): the trainer
    finishes that epoch and reports completed, which the store refused from paused ("cannot go from
    paused to completed"). The run stayed paused, holding its slot, and when its lease ran out it read
    "interrupted ... stopped unexpectedly" with every epoch trained."""
    from signlab import api
    from signlab.events import BatchEnd

    monkeypatch.setattr(api, "pause_limit_seconds", lambda root: 0.3 if ended_by == "limit" else 0.0)
    store = store_for(tmp_path)

    def pause_at_the_last_step(event, trainer) -> None:
        if isinstance(event, BatchEnd) and trainer.step >= trainer.total_steps:
            store.request("r", "pause")

    def stop_once_paused() -> None:
        wait_for(lambda: (store.get("r") or {}).get("status") == RunState.PAUSED, 60, what="the run to pause")
        store.request("r", "stop")

    if ended_by == "stop":
        threading.Thread(target=stop_once_paused, daemon=True).start()
    rec = api.train(TrainConfig(**TINY), tmp_path, callbacks=[pause_at_the_last_step], dataset=small_dataset,
                    run_id="r")
    row = store.get("r")
    assert rec["status"] == "completed" and row["status"] == RunState.COMPLETED, (rec, row)
    assert row["epochs_completed"] == 1 and row["worker"] is None and row["control"] is None
    assert store.expire_leases(time.time() + 3600) == [] and store.get("r")["status"] == RunState.COMPLETED


def test_a_final_update_the_database_refused_keeps_the_lease_renewed(tmp_path):
    """The holder lets go of its heartbeat just before its final update; when that update failed (the
    database away), the lease was no longer renewed while the process lived on, and the run was taken
    from a live holder at the next expiry. Now the lease is kept."""
    from signlab.runs import RunWriter
    from signlab.store import Heartbeat

    run = create_run(TrainConfig(**TINY), tmp_path, run_id="r")
    claim = run.store.claim("w", 1)
    run.store.update(claim, RunState.RUNNING)
    with Heartbeat(run.store, claim, interval=0.05) as lease:
        writer = RunWriter(run, claim, lease)
        real_update = run.store.update

        def refused(*args, **kwargs):
            raise SignlabError("the run database is not available")

        run.store.update = refused
        with pytest.raises(SignlabError):
            writer.set_state(RunState.COMPLETED, message="trained")
        run.store.update = real_update
        before = run.store.get("r")["lease_until"]
        wait_for(lambda: run.store.get("r")["lease_until"] > before, 10, what="the lease to be renewed")
    assert run.store.get("r")["status"] == RunState.RUNNING and not lease.lost.is_set()


def test_two_deletes_of_one_run_at_once_the_second_is_told_it_is_gone(tmp_path, monkeypatch):
    """Two tabs (or a double click) deleting one run: both passed the owner's check, the first removed
    it, and the second's move of its folder raised a bare FileNotFoundError (a traceback in the page)."""
    from signlab import access

    create_run(TrainConfig(**TINY), tmp_path, run_id="r", status=RunState.COMPLETED, owner="alice")
    alice, pol = access.User("alice"), access.Policy()
    real_open_for, raced = access.open_for, []

    def checked_then_the_other_tab_deletes(user, run_id, action, pol, runs_dir=None):
        out = real_open_for(user, run_id, action, pol, runs_dir)
        if not raced:
            raced.append(run_id)
            access.delete(user, run_id, pol, runs_dir)
        return out

    monkeypatch.setattr(access, "open_for", checked_then_the_other_tab_deletes)
    with pytest.raises(RunError, match="^run r was already deleted$"):
        access.delete(alice, "r", pol, tmp_path)
    assert raced == ["r"] and list_runs(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".deleting-")] == []


def test_a_test_accuracy_read_after_letting_go_is_not_written_onto_the_next_fit(tmp_path, small_dataset,
                                                                                 monkeypatch):
    """A worker reads the test accuracy after the run is completed (let go). Meanwhile its owner pressed
    Continue and a spare worker began the next fit, which clears the figure: the first worker's
    accuracy then landed on the new fit, whose weights it never tested."""
    from signlab import api

    store = store_for(tmp_path)
    real_evaluate = api.evaluate_run

    def continued_while_testing(run, dataset=None, *args, **kwargs):
        ev = real_evaluate(run, dataset, *args, **kwargs)
        store.enqueue_continue(run.id, 1)
        claim = store.claim("worker-2", limit=1)
        store.update(claim, RunState.RUNNING, test_accuracy=None, message="training")
        return ev

    monkeypatch.setattr(api, "evaluate_run", continued_while_testing)
    rec = api.train(TrainConfig(**TINY), tmp_path, dataset=small_dataset, run_id="r")
    row = store.get("r")
    assert rec["test_accuracy"] is not None  # the first fit's record has its figure
    assert row["status"] == RunState.RUNNING and row["attempt"] == 2 and row["test_accuracy"] is None, row


# ----------------------------------------------------------------------------- PostgreSQL: two servers at once
def _postgres_store_pair(postgres_server) -> tuple[RunStore, RunStore]:
    import secrets

    from tests._postgres import create_database

    url = create_database(postgres_server, f"t_{secrets.token_hex(4)}").replace("postgresql://",
                                                                               "postgresql+psycopg://")
    return RunStore(url), RunStore(url)


def _meanwhile(store: RunStore, statement: str, action) -> dict:
    """Run ``action`` (another server's transaction) in a thread just before ``store`` sends its first
    statement beginning with ``statement``; waits up to a second for it (it may wait on this one's
    locks). Returns what it did: ``thread``, and ``result`` or ``error``."""
    from sqlalchemy import event

    done: dict = {}

    def run() -> None:
        try:
            done["result"] = action()
        except Exception as err:  # noqa: BLE001 - the test reads it
            done["error"] = err

    def before(conn, cursor, sql, params, context, executemany) -> None:
        if "thread" not in done and sql.lstrip().upper().startswith(statement):
            done["thread"] = threading.Thread(target=run, daemon=True)
            done["thread"].start()
            done["thread"].join(1.0)

    event.listen(store._write, "before_cursor_execute", before)
    return done


def test_postgresql_a_delete_never_removes_a_run_another_server_just_continued(postgres_server):
    """Between a Delete's read of the run's state and its DELETE, another server's Continue and a
    worker's claim committed (PostgreSQL reads without a lock): the row of a run a worker had begun to
    train was removed, and its folder moved away."""
    server, other = _postgres_store_pair(postgres_server)
    server.add("r", RunState.COMPLETED, owner="alice", epochs_completed=1, target_epochs=1)

    def continue_and_claim():
        other.enqueue_continue("r", 1)
        return other.claim("worker-1", limit=1)

    done = _meanwhile(server, "DELETE FROM RUNS", continue_and_claim)
    server.delete("r")
    done["thread"].join(30)
    # the delete went first: the continuation finds no run, and no worker holds one
    assert server.get("r") is None and done.get("result") is None
    assert isinstance(done.get("error"), RunError) and "not in the run database" in str(done["error"])


def test_postgresql_a_stop_as_a_run_completes_loses_no_figure(postgres_server):
    """An instructor's Stop read the row, the run's own final update (val_accuracy 0.9, completed)
    committed, and the Stop's write, built from its earlier read, put back the old accuracy and left
    a completed run with a stop pending."""
    server, worker = _postgres_store_pair(postgres_server)
    server.add("r", RunState.QUEUED, owner="alice", target_epochs=1)
    claim = worker.claim("worker-1", limit=1)
    worker.update(claim, RunState.RUNNING, val_accuracy=0.5)

    def holder_completes():
        worker.update(claim, RunState.COMPLETED, message="trained 1 epoch", epochs_completed=1, val_accuracy=0.9)

    done = _meanwhile(server, "UPDATE RUNS", holder_completes)
    assert server.request("r", "stop", by="prof") == RunState.RUNNING  # the stop went first
    done["thread"].join(30)
    row = server.get("r")
    assert "error" not in done, done
    assert row["status"] == RunState.COMPLETED and row["val_accuracy"] == 0.9 and row["control"] is None, row


def test_postgresql_a_fresh_database_opened_by_four_processes_at_once(postgres_server):
    """A class server and its first workers opening a new database at one instant: CREATE TABLE is
    not safe to run concurrently on PostgreSQL, and most of them failed ("duplicate key value violates
    unique constraint pg_type_typname_nsp_index")."""
    import secrets

    from tests._postgres import create_database

    failures = []
    for _ in range(3):
        url = create_database(postgres_server, f"t_{secrets.token_hex(4)}").replace("postgresql://",
                                                                                   "postgresql+psycopg://")
        gate = threading.Barrier(4)

        def open_it() -> None:
            gate.wait()
            try:
                RunStore(url).dispose()
            except SignlabError as err:
                failures.append(str(err))

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


@pytest.mark.parametrize("url, shown", [
    ("postgresql://me:secret@db/x", "postgresql://me:***@db/x"),
    # libpq and psycopg take the password in the query too, and a user may be left out: both were shown
    # whole on every page whose run database could not be opened
    ("postgresql+psycopg://signlab@127.0.0.1:1/class?password=hunter2",
     "postgresql+psycopg://signlab@127.0.0.1:1/class?password=***"),
    ("postgresql://:s3cret@db/class", "postgresql://:***@db/class"),
    ("postgresql://u:p%40ss@h:5432/d?sslmode=require&passfile=/home/u/.pgpass",
     "postgresql://u:***@h:5432/d?passfile=***&sslmode=require"),
    ("sqlite:////tmp/runs/signlab.db", "sqlite:////tmp/runs/signlab.db"),
    ("/tmp/runs/sweeps/s1.journal", "/tmp/runs/sweeps/s1.journal"),  # a path: as it is
])
def test_a_database_urls_password_is_never_shown(url, shown):
    from signlab.store import mask_url

    assert mask_url(url) == shown


def test_a_deletion_a_killed_process_left_is_removed_by_a_later_delete(tmp_path):
    """A process killed between a Delete's commit and the folder's removal left `.deleting-…` for good:
    no listing reads it, and it counted against its owner's disk quota. A later Delete removes such
    folders once they are an hour old (a younger one may be another Delete's, under way)."""
    from signlab import runs
    from signlab.runs import delete_run

    old, young = tmp_path / ".deleting-r0-abc123", tmp_path / ".deleting-r1-def456"
    for d in (old, young):
        (d / "kernels").mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x" * 1000)
    past = time.time() - getattr(runs, "LEFT_DELETION_SECONDS", 3600.0) - 60
    os.utime(old, (past, past))
    (tmp_path / ".deleting-link").symlink_to(young)  # never followed
    os.utime(tmp_path / ".deleting-link", (past, past), follow_symlinks=False)
    create_run(TrainConfig(**TINY), tmp_path, run_id="r2", status=RunState.COMPLETED)
    delete_run("r2", tmp_path)
    assert not old.exists() and young.is_dir() and (young / "model.safetensors").is_file()
    assert (tmp_path / ".deleting-link").is_symlink() and not (tmp_path / "r2").exists()


def test_a_delete_whose_commit_fails_leaves_the_run_as_it_was(tmp_path, monkeypatch):
    """Delete moves the run's folder away inside the row's transaction. When the commit then failed (a
    full disk, the database gone) the row stayed and the folder did not: the run was hidden from every
    listing, Delete said "no such run", and it counted against its owner's runs for good; and the
    moved folder kept its old time, so the next Delete of any run removed it as a left deletion. The
    folder now comes back; a moved one is stamped with the time of its move."""
    import shutil

    from signlab.runs import delete_run

    create_run(TrainConfig(**TINY), tmp_path, run_id="kept", status=RunState.COMPLETED)
    os.utime(tmp_path / "kept", (1e9, 1e9))
    tx = RunStore._tx

    @contextlib.contextmanager
    def commit_fails(self, serialise=False):
        with tx(self, serialise) as conn:
            yield conn
            raise SignlabError("the run database is not available: disk I/O error")  # as at its commit: rolled back

    monkeypatch.setattr(RunStore, "_tx", commit_fails)
    with pytest.raises(SignlabError, match="disk I/O error"):
        delete_run("kept", tmp_path)
    monkeypatch.setattr(RunStore, "_tx", tx)
    assert [r.id for r in list_runs(tmp_path)] == ["kept"] and (tmp_path / "kept" / "config.json").is_file()
    assert not list(tmp_path.glob(".deleting-*"))
    # a commit that reached the database before the error (the connection dropped at COMMIT): no row, so
    # the folder is not brought back to be imported as an ownerless run
    @contextlib.contextmanager
    def committed_then_dropped(self, serialise=False):
        with tx(self, serialise) as conn:
            yield conn
        raise SignlabError("the run database is not available: server closed the connection unexpectedly")

    create_run(TrainConfig(**TINY), tmp_path, run_id="gone", status=RunState.COMPLETED)
    monkeypatch.setattr(RunStore, "_tx", committed_then_dropped)
    with pytest.raises(SignlabError, match="closed the connection"):
        delete_run("gone", tmp_path)
    monkeypatch.setattr(RunStore, "_tx", tx)
    assert not (tmp_path / "gone").exists() and [r.id for r in list_runs(tmp_path)] == ["kept"]

    moved = []
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: moved.append(Path(b)) or rename(a, b))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # a process killed before it removed the folder
    delete_run("kept", tmp_path)
    assert moved and moved[0].is_dir() and time.time() - moved[0].stat().st_mtime < 60


def test_a_run_continued_to_its_own_epochs_goes_on_with_its_learning_rate_schedule(tmp_path, small_dataset):
    """What a killed (or stopped) run still owed of its own epochs is trained by the next worker from its
    last finished epoch: the fit goes on, one-cycle schedule and all. A fresh schedule over the epochs
    left warmed the rate up to its peak again in the middle of the cycle."""
    from signlab import api
    from signlab.events import BatchEnd, EpochEnd

    cfg = TrainConfig(model="logreg", epochs=2, batch_size=128, augment=False, log_every=1, device="cpu",
                      schedule="onecycle")
    straight = []
    api.train(cfg, tmp_path, run_id="straight", dataset=small_dataset, evaluate_test=False,
              callbacks=[lambda e, t: straight.append(e.lr) if isinstance(e, BatchEnd) and e.epoch == 2 else None])

    def killed_after_epoch_1(event, trainer) -> None:  # as a worker that died then: epoch 1 kept
        if isinstance(event, EpochEnd) and event.epoch == 1:
            trainer.stop()

    api.train(cfg, tmp_path, run_id="cut", dataset=small_dataset, evaluate_test=False, callbacks=[killed_after_epoch_1])
    store = store_for(tmp_path)
    store.enqueue_continue("cut", 1)  # its own second epoch
    claim = store.claim("worker-2", limit=1)
    went_on = []
    api.train_claimed(open_run("cut", tmp_path), claim, dataset=small_dataset, evaluate_test=False,
                      callbacks=[lambda e, t: went_on.append(e.lr) if isinstance(e, BatchEnd) else None])
    assert len(went_on) == len(straight) > 2 and went_on == pytest.approx(straight, rel=1e-6)
    starts = [m for m in open_run("cut", tmp_path).metrics() if m["type"] == "fit_start"]
    assert [(m["start_epoch"], m["schedule_from"]) for m in starts] == [(0, 0), (1, 0)]


def test_a_run_continued_to_its_own_epochs_sees_the_data_an_uninterrupted_one_sees(tmp_path, small_dataset):
    """A run stopped after epoch 1 and continued to its own second epoch trains that epoch as the run
    that was never stopped does: the same batches, augmented the same way, the same dropout. Its data
    generator was seeded with seed + first epoch, so the continuation drew epoch 2 as a fresh run draws
    epoch 1 (its validation accuracy after epoch 2 was 62.4% against 60.6%)."""
    from signlab import api
    from signlab.events import BatchEnd, EpochEnd

    # mlp: dropout; augment: the generator's second use; fp32: bf16 is chosen by timing, which may differ
    cfg = TrainConfig(model="mlp", epochs=2, batch_size=128, augment=True, log_every=1, device="cpu",
                      precision="fp32", seed=3)
    straight: list[float] = []
    api.train(cfg, tmp_path, run_id="straight", dataset=small_dataset, evaluate_test=False,
              callbacks=[lambda e, t: straight.append(e.loss) if isinstance(e, BatchEnd) and e.epoch == 2 else None])

    def stopped_after_epoch_1(event, trainer) -> None:
        if isinstance(event, EpochEnd) and event.epoch == 1:
            trainer.stop()

    api.train(cfg, tmp_path, run_id="cut", dataset=small_dataset, evaluate_test=False,
              callbacks=[stopped_after_epoch_1])
    store = store_for(tmp_path)
    store.enqueue_continue("cut", 1)
    claim = store.claim("worker-2", limit=1)
    went_on: list[float] = []
    api.train_claimed(open_run("cut", tmp_path), claim, dataset=small_dataset, evaluate_test=False,
                      callbacks=[lambda e, t: went_on.append(e.loss) if isinstance(e, BatchEnd) else None])
    assert len(went_on) == len(straight) > 2 and went_on == pytest.approx(straight, rel=1e-5)
    ends = {rid: [m for m in open_run(rid, tmp_path).metrics() if m["type"] == "epoch"][-1]
            for rid in ("straight", "cut")}
    assert ends["cut"]["epoch"] == ends["straight"]["epoch"] == 2
    assert ends["cut"]["val_accuracy"] == pytest.approx(ends["straight"]["val_accuracy"], abs=1e-9)
    # the random state rides in the checkpoint's metadata: an older signlab reads every tensor of the
    # file as the optimizer's (its "rng.data" tensor ended that reader in int("rng"))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "cut" / "optimizer.safetensors"), "pt") as f:
        assert all(k.split(".", 1)[0].isdigit() for k in f.keys()) and "rng" in f.metadata()


def test_a_worker_whose_runs_folder_is_not_the_classs_puts_the_run_back_and_stops(tmp_path, db_url, monkeypatch):
    """A worker on a machine whose share of the runs folder did not mount (an empty mount point) took
    each queued run and failed it: "was deleted (in another tab or window)", for every student. It
    puts the run back in its place, uncounted, and stops, saying why."""
    from signlab import worker

    shared, empty = tmp_path / "shared", tmp_path / "unmounted"
    shared.mkdir()
    empty.mkdir()
    db = db_url or f"sqlite:///{tmp_path / 'class.db'}"
    monkeypatch.setenv("SIGNLAB_DB", db)
    runs = [create_run(TrainConfig(**TINY), shared, run_id=f"r{k}", owner=f"student{k}") for k in range(2)]
    with pytest.raises(RunError, match=f"the runs folder {empty} holds none of the run database's runs"):
        worker.run_worker(empty, db, exit_when_idle=True)
    for run in runs:
        row = run.status()
        assert row["status"] == RunState.QUEUED and row["continues"] == 0, row
    assert runs[0].store.queue() == ["r0", "r1"]
    # the class's folder: trained
    assert worker.run_worker(shared, db, exit_when_idle=True) == 2
    assert [r.status()["status"] for r in runs] == [RunState.COMPLETED] * 2


def test_an_idle_worker_waits_out_the_database_going_away(tmp_path, monkeypatch):
    """An idle worker exited (2, "the run database ... is not available") when PostgreSQL restarted:
    every worker of a class, and nothing trained until someone started them again. It says so once,
    tries again, and trains what is queued once the database is back."""
    from signlab import worker

    run = create_run(TrainConfig(**TINY), tmp_path, run_id="later")
    real, fails = RunStore.claim, {"left": 3}

    def away(self, *args, **kwargs):
        if fails["left"]:
            fails["left"] -= 1
            raise SignlabError("the run database postgresql://class is not available: the database system "
                               "is starting up")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "claim", away)
    said: list[str] = []
    assert worker.run_worker(tmp_path, exit_when_idle=True, log=said.append) == 1
    assert run.status()["status"] == RunState.COMPLETED
    assert sum("is not available" in s for s in said) == 1 and "the run database is back" in said, said


def test_a_worker_whose_clock_is_off_refuses_to_start(tmp_path, monkeypatch):
    """A worker whose clock was 60 s behind the database server's had each run it claimed taken back
    as expired, then failed "out of memory while loading it?". It refuses to start, saying why."""
    from signlab import worker

    monkeypatch.setattr(RunStore, "clock_offset", lambda self: -60.0)
    with pytest.raises(RunError, match="this machine's clock is 60 s behind the run database's"):
        worker.run_worker(tmp_path, exit_when_idle=True)
    monkeypatch.setattr(RunStore, "clock_offset", lambda self: 0.5)
    assert worker.run_worker(tmp_path, exit_when_idle=True) == 0


def test_postgresql_the_clock_offset_is_read_from_the_server(postgres_server):
    import secrets

    from tests._postgres import create_database

    url = create_database(postgres_server, f"t_{secrets.token_hex(4)}")
    store = RunStore(url)
    assert abs(store.clock_offset()) < 1.0  # the same machine's clock
    assert RunStore(f"sqlite:///{Path(os.environ.get('TMPDIR', '/tmp')) / secrets.token_hex(4)}.db").clock_offset() == 0.0


def test_postgresql_a_store_whose_clock_is_off_takes_back_no_live_run(postgres_server, monkeypatch):
    """Only workers checked their clock. A dashboard server (or a TA's `signlab runs`) whose clock ran a
    lease ahead of the database's read every live lease as run out and took the class's runs back,
    each second; a holder whose clock was behind stamped its lease already run out. Every store now
    stamps and reads leases in the database's time, measured once when it opens."""
    import secrets
    import types

    from signlab import store as store_module
    from tests._postgres import create_database

    url = create_database(postgres_server, f"t_{secrets.token_hex(4)}")
    honest = RunStore(url)
    honest.add("live", RunState.QUEUED)
    claim = honest.claim("worker-1", 1)
    assert claim is not None and claim.run_id == "live"
    honest.update(claim, RunState.RUNNING)
    for skew in (+300.0, -300.0):  # this process's clock five minutes ahead, then behind
        clock = types.SimpleNamespace(sleep=time.sleep, monotonic=time.monotonic, perf_counter=time.perf_counter,
                                      time=lambda skew=skew: time.time() + skew)
        monkeypatch.setattr(store_module, "time", clock)
        skewed = RunStore(url)
        assert abs(skewed.clock_offset() - skew) < 1.0
        assert skewed.expire_leases() == []  # ahead: it read the lease as run out
        skewed.heartbeat(claim)  # behind: it stamped a lease already run out
        monkeypatch.undo()
        assert honest.expire_leases() == [] and honest.get("live")["status"] == RunState.RUNNING, skew
    # and a clock set right after the store opened (NTP's step, minutes after a boot) moves nothing
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(
        sleep=time.sleep, monotonic=time.monotonic, perf_counter=time.perf_counter, time=lambda: time.time() + 300))
    assert honest.expire_leases() == [] and honest.get("live")["status"] == RunState.RUNNING


def test_ctrl_c_on_a_one_slot_worker_hands_its_run_back(tmp_path):
    """Ctrl-C on a worker in a terminal stopped its run for good ("told to quit at once"), waiting for
    its student to press Continue, where SIGTERM and a two-slot worker handed it back to the queue."""
    cfg = TrainConfig(model="mlp", epochs=4, batch_size=64, log_every=5, augment=False, device="cpu")
    run = create_run(cfg, tmp_path, run_id="pressed")
    # Python's own Ctrl-C handling in the child (a suite started in the background ignores SIGINT)
    first = subprocess.Popen([sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
                              "signal.default_int_handler); from signlab.cli import main; sys.exit(main(sys.argv[1:]))",
                              "worker", "--runs-dir", str(tmp_path), "--exit-when-idle", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(m["type"] == "batch" and m["epoch"] >= 2 for m in run.metrics()), 180,
             what="a batch of epoch 2")
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    row = run.status()
    assert row["status"] == RunState.QUEUED and row["epochs_completed"] >= 1, row
    assert json.loads(out.splitlines()[-1]) == {"run_id": "pressed", "status": "queued"}
    assert "stopped" not in [h["to_state"] for h in run.store.history("pressed")]


def test_a_slot_of_a_worker_that_dies_is_started_again(tmp_path):
    """``worker --slots 2``: a slot killed (the out-of-memory killer) was never replaced; the worker
    trained on one slot for good, without a word, and never exited for systemd to restart it."""
    store = store_for(tmp_path)
    parent = _worker(tmp_path, "--slots", "2", "--limit", "2")
    try:
        wait_for(lambda: len(store.workers("worker")) == 2, 120, what="two slots")
        victim = store.workers("worker")[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(store.workers("worker")) == 2 and victim not in {w["pid"] for w in store.workers("worker")},
                 120, what="the dead slot started again")
        assert parent.poll() is None
    finally:
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=60)
    assert "slot " in err and "ended (exit code -9); starting it again" in err, err
    assert not [w for w in store.workers("worker") if w["pid"] != victim]  # the slots ended with it


def test_a_runs_folder_of_a_named_database_refuses_its_own_sqlite_file_when_none_is_named(
        postgres_server, tmp_path, monkeypatch, capsys):
    """A teacher at the server's shell left SIGNLAB_DB out: ``runs`` made a new signlab.db in the class's
    runs folder, every run read as interrupted, and ``stop`` of a run training said "nothing to stop:
    the run is interrupted" and exited 0. The folder now says which database its runs live in (its URL
    without the password), and a command that names none is refused with it."""
    import secrets

    from signlab import cli
    from signlab.store import DATABASE_NOTE, forget_stores
    from tests._postgres import create_database

    url = create_database(postgres_server, f"t_{secrets.token_hex(4)}")
    url += "?password=s3cret"  # never written into the note (the test server trusts any password)
    monkeypatch.setenv("SIGNLAB_DB", url)
    run = create_run(TrainConfig(**TINY), tmp_path, run_id="training", status=RunState.QUEUED)
    store_for(tmp_path).claim("worker-1", limit=1)
    note = (tmp_path / DATABASE_NOTE).read_text()
    assert note.startswith("postgresql") and "s3cret" not in note
    monkeypatch.delenv("SIGNLAB_DB")
    forget_stores()
    for argv in (["runs", "--runs-dir", str(tmp_path)], ["stop", "training", "--runs-dir", str(tmp_path)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"signlab: the runs in {tmp_path} live in the database postgresql"), err
        assert "SIGNLAB_DB (or --db) to it, with its password" in err and "s3cret" not in err
    assert not (tmp_path / "signlab.db").exists()
    monkeypatch.setenv("SIGNLAB_DB", url)  # named: the run is there, training
    forget_stores()
    assert run.status()["status"] == RunState.CLAIMED
    # a class moved back to the folder's own file names it once; the note goes, and none is needed after
    monkeypatch.setenv("SIGNLAB_DB", str(tmp_path / "signlab.db"))
    forget_stores()
    store_for(tmp_path)
    assert not (tmp_path / DATABASE_NOTE).exists()
    monkeypatch.delenv("SIGNLAB_DB")
    forget_stores()
    assert cli.main(["runs", "--runs-dir", str(tmp_path)]) == 0


def test_a_runs_folders_database_note_is_never_read_or_written_through_a_link(tmp_path, monkeypatch):
    """The note is a file of the runs folder like any other: a planted link is neither written through
    (it would replace another file of the server's user) nor read (its target's text would be shown
    in the refusal)."""
    from signlab.store import DATABASE_NOTE, forget_stores

    runs, elsewhere = tmp_path / "runs", tmp_path / "db"
    runs.mkdir()
    elsewhere.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("postgresql://admin:hunter2@db/private\n")
    (runs / DATABASE_NOTE).symlink_to(secret)
    monkeypatch.delenv("SIGNLAB_DB", raising=False)
    forget_stores()
    store_for(runs)  # the link is no note: nothing refused, nothing shown
    forget_stores()
    monkeypatch.setenv("SIGNLAB_DB", str(elsewhere / "class.db"))
    store_for(runs)
    assert secret.read_text() == "postgresql://admin:hunter2@db/private\n"  # not written through
    note = runs / DATABASE_NOTE
    assert not note.is_symlink() and note.read_text().strip() == f"sqlite:///{(elsewhere / 'class.db').resolve()}"
    monkeypatch.delenv("SIGNLAB_DB")
    forget_stores()
    with pytest.raises(SignlabError, match=r"live in the database sqlite:///.*class\.db .*set SIGNLAB_DB \(or --db\) "
                                            r"to it; without it"):  # a SQLite file has no password to give
        store_for(runs)
    # another database named: refused, not taken over (a shell with last term's SIGNLAB_DB rewrote the
    # note, and the refusals named that database from then on)
    monkeypatch.setenv("SIGNLAB_DB", str(elsewhere / "other.db"))
    forget_stores()
    with pytest.raises(SignlabError, match=r"class\.db .*not sqlite:///.*other\.db; to move them to it, delete"):
        store_for(runs)
    assert "class.db" in note.read_text()
    # a folder the first run makes: its store was opened before it existed, and it got no note
    fresh = tmp_path / "fresh-runs"
    monkeypatch.setenv("SIGNLAB_DB", str(elsewhere / "fresh.db"))
    forget_stores()
    create_run(TrainConfig(**TINY), fresh, run_id="first")
    assert (fresh / DATABASE_NOTE).read_text().strip().endswith("fresh.db")
    forget_stores()
