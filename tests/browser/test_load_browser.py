"""Load and faults in a real browser, each against its own server and runs folder.

* Four browser sessions press Start at once against a job limit of 2: never more than 2 run, the
  others are told they wait and their place in the queue, every job runs exactly once, and the
  Home page still loads while they train.
* The server is SIGKILLed mid-training and started again on the same runs folder: the worker (in
  its own process session) trains on, the new server shows the run's true state, every listed run
  opens whole. Then the worker itself is SIGKILLed mid-epoch: its lease runs out and another worker
  continues the run from its last finished epoch; Stop, then "Continue training", finishes it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

from _helpers import Server, assert_no_exception, step, wait_idle

from signlab.runs import display_name
from signlab.runs import list_runs, open_run
from signlab.store import HOLDING, RunState, store_for as open_store
from tests._wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"


def _open(page, url: str) -> float:
    """Go to ``url`` and wait until the page's script has run (its title drawn, no 'Running…'): seconds."""
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=90_000)
    wait_idle(page, 90)
    return time.perf_counter() - t


def _wait_text(page, text: str, timeout: float = 60) -> None:
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=text, timeout=timeout * 1000)


def _statuses(runs_dir: Path) -> dict[str, dict]:
    """Every run's row in the run store, by id."""
    return {r.id: r.status() for r in list_runs(runs_dir)}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    try:  # a zombie (killed, not yet reaped) is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _check_runs_folder_whole(runs_dir: Path) -> None:
    """Every listed run opens: config, status and log parse, weights load; no temporary file is left."""
    for run in list_runs(runs_dir):
        again = open_run(run.id, runs_dir)
        assert again.config.model
        assert run.status()["status"] in RunState.__members__.values()
        json.loads((run.dir / "meta.json").read_text())
        if (run.dir / "metrics.jsonl").exists():
            for line in (run.dir / "metrics.jsonl").read_text().splitlines()[:-1]:
                json.loads(line)  # only a last line may be torn (a killed writer)
        if run.has_weights():
            assert sum(p.numel() for p in again.load_model().parameters()) > 0
    # a live worker's atomic write shows a .tmp for a moment; none may stay
    wait_for(lambda: not list(runs_dir.rglob("*.tmp")), 10, f"no temporary files: {list(runs_dir.rglob('*.tmp'))}",
          interval=0.1)


# batch 32, EPOCHS epochs: about 6 s a run alone (20 s beside the four tabs' live charts), long enough
# for every session's page to be seen training: each page records what it shows five times a second
# (RECORDER). With 8 epochs this test took 63 s alone and 123-131 s in the suite.
EPOCHS = 4
LOGREG = (f"/train?model=logreg&epochs={EPOCHS}&batch_size=32&lr=0.01&optimizer=adam&weight_decay=0&schedule=none"
          "&augment=False&seed={seed}&device=cpu")
WAITING = re.compile(r"Waiting for a free slot: number (\d+) in the queue")
TRAINING = re.compile(rf"starting the worker and loading the data|epoch \d/{EPOCHS} · ")
# The page watches itself five times a second and keeps what it saw, so a session is still observed
# while this test's loop is busy elsewhere (timing a Home page load took 19 s once on a loaded CI
# machine: two 12-second runs began and ended inside it, unseen by a loop that polled from Python).
RECORDER = """() => {
  window.__seen = {training: false, waits: []};
  const training = new RegExp(%s), waiting = new RegExp(%s, "g");
  setInterval(() => {
    const text = document.body ? document.body.innerText : "";
    if (training.test(text)) window.__seen.training = true;
    for (const m of text.matchAll(waiting)) window.__seen.waits.push(Number(m[1]));
  }, 200);
}""" % (json.dumps(TRAINING.pattern), json.dumps(WAITING.pattern))


def test_four_sessions_against_a_limit_of_two(browser, tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    server = Server(runs_dir, limit=2, log=tmp_path / "streamlit.log")
    contexts, pages = [], []
    stop = threading.Event()
    most_running = [0]

    health: list[tuple[float, str]] = []  # each health check's seconds, and "ok" or what went wrong

    def monitor():  # reads the runs folder ten times a second while the test drives the browsers
        last_http = 0.0
        while not stop.is_set():
            sts = _statuses(runs_dir)
            most_running[0] = max(most_running[0], sum(s.get("status") in HOLDING for s in sts.values()))
            if time.time() - last_http > 1 and any(s.get("status") == "running" for s in sts.values()):
                last_http = t = time.time()  # and the server answers plain requests while jobs train
                try:
                    with urllib.request.urlopen(server.url + "/_stcore/health", timeout=30) as reply:
                        reply.read()
                        outcome = "ok" if reply.status == 200 else f"HTTP {reply.status}"
                except OSError as err:  # kept, not raised: an error would end this thread unseen
                    outcome = repr(err)
                health.append((time.time() - t, outcome))
            time.sleep(0.1)

    watcher = threading.Thread(target=monitor, daemon=True)
    try:
        for i in range(4):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.add_init_script(f"({RECORDER})()")  # in every document of this session, reloads included
            pg = ctx.new_page()
            pg.set_default_timeout(60_000)
            contexts.append(ctx)
            pages.append(pg)
            with step(pg, f"session {i}: open Train with logreg settings from the URL"):
                _open(pg, server.url + LOGREG.format(seed=i))
                assert_no_exception(pg, "Train")
        watcher.start()
        with step(pages[0], "all four press Start at once"):
            for pg in pages:
                pg.get_by_role("button", name="Start").click(no_wait_after=True)
            ids = []
            for pg in pages:
                pg.wait_for_url(re.compile(r"[?&]run="), timeout=60_000)
                ids.append(re.search(r"[?&]run=([^&]+)", pg.url).group(1))
            assert len(set(ids)) == 4, ids
        shown: dict[int, set[int]] = {i: set() for i in range(4)}
        seen_training = [False] * 4
        home_seconds = None
        with step(pages[0], "each session says where it stands until all four are done"):
            deadline = time.time() + 240
            while time.time() < deadline:
                for i, pg in enumerate(pages):
                    text = pg.inner_text("body")
                    assert "Traceback" not in text and not pg.locator("[data-testid='stException']").count()
                    try:
                        seen = pg.evaluate("() => window.__seen || {training: false, waits: []}")
                    except Exception:  # noqa: BLE001 - a page between documents; its text below still counts
                        seen = {"training": False, "waits": []}
                    shown[i].update(int(n) for n in WAITING.findall(text))
                    shown[i].update(seen["waits"])
                    seen_training[i] = seen_training[i] or seen["training"] or bool(TRAINING.search(text))
                every = _statuses(runs_dir)  # once a poll (it was read once per run)
                sts = {r: every.get(r, {}).get("status") for r in ids}
                if home_seconds is None and "running" in sts.values():
                    # jobs train: a new visitor's Home page loads. (It waited for the queue to drain
                    # too; on one core a poll of the four tabs outlasted the last two runs' training,
                    # the moment was never seen and the test failed on its own print.) The tabs keep
                    # what they show meanwhile (RECORDER), so this loop may block here.
                    ctx = browser.new_context()
                    home = ctx.new_page()
                    home_seconds = _open(home, server.url + "/")
                    assert home.locator("h1").first.inner_text().strip()
                    assert_no_exception(home, "Home under load")
                    ctx.close()
                if all(v == "completed" for v in sts.values()):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"not all runs completed: {_statuses(runs_dir)}")
            for pg in pages:
                # no refresh: a page whose live chart missed the end of its run (its trigger lost, seen
                # once in nine runs before the chart read a feed) is redrawn by the fragment's slow
                # poll (signlab.live.SLOW_POLL_SECONDS), and a student sees the run finish unaided
                _wait_text(pg, f"Finished {EPOCHS} epochs", timeout=60)
        stop.set()
        print(f"\nmost running at once: {most_running[0]}; queue numbers shown: {shown}; Home loaded in "
              f"{home_seconds} s while training; health check max {max((s for s, _ in health), default=None)} s "
              f"over {len(health)} requests")
        assert most_running[0] == 2, f"{most_running[0]} jobs ran at once with a limit of 2"
        waited = [i for i in range(4) if shown[i]]
        assert len(waited) >= 2, f"only sessions {waited} showed their place in the queue: {shown}"
        # every run waits in the queue until a worker claims it (a worker takes a few seconds to start),
        # so for a moment a session may be third or fourth; never beyond the four runs there are
        assert {n for i in waited for n in shown[i]} <= {1, 2, 3, 4} and 1 in set().union(*shown.values())
        # the sessions told to wait really waited for a slot: read from the run store's history, not
        # sampled (a warm worker claims a queued run within a poll; once, under a second pytest worker's
        # load, a run the page saw queued was never in a 10-a-second sample). Every run is queued when
        # submitted, so some waiting session's run first claimed after another run finished waited for it.
        history = open_store(runs_dir).history()
        first_done = min(h["at"] for h in history if h["run_id"] in ids and h["to_state"] == "completed")
        claimed = {r: min(h["at"] for h in history if h["run_id"] == r and h["to_state"] == "claimed") for r in ids}
        assert any(claimed[ids[i]] > first_done for i in waited), (
            f"no session told to wait was held back by the limit: {[(ids[i], claimed[ids[i]]) for i in waited]}, "
            f"first run finished at {first_done}")
        assert all(seen_training), f"sessions that never showed their run training: {seen_training}"
        # the Home page loaded while jobs trained (``_open`` waits up to 90 s for it, else fails). Its
        # seconds are printed, not bounded: they are those of this test's own five browser tabs drawing
        # live charts on the same two cores (16-46 s; 3 s with no load), while the server answers within
        # a fraction of a second (health checks below). docs/speed-research.md, Part 9
        assert home_seconds is not None
        # the server answered every plain request while jobs trained (their seconds are printed above,
        # not bounded: a timed assertion fails on a loaded machine, and 30 s is the request's own limit)
        assert health and all(outcome == "ok" for _, outcome in health), health
        assert sorted(d.name for d in runs_dir.iterdir() if d.is_dir()) == sorted(ids)  # none lost, none extra
        for run_id in ids:
            run = open_run(run_id, runs_dir)
            starts = [m for m in run.metrics() if m["type"] == "fit_start"]
            # why, when not: its transitions (a lease that ran out reads interrupted, then claimed again)
            assert len(starts) == 1, (f"{run_id} started {len(starts)} times: "
                                      f"{[(h['to_state'], h['worker']) for h in run.store.history(run_id)]}, "
                                      f"{run.status().get('message')!r}")
            assert run.status()["status"] == "completed" and run.status()["epochs_completed"] == EPOCHS
        _check_runs_folder_whole(runs_dir)
    finally:
        stop.set()
        SHOTS.mkdir(parents=True, exist_ok=True)
        for i, pg in enumerate(pages):
            try:
                pg.screenshot(path=str(SHOTS / f"load_session_{i}.png"), full_page=True)
            except Exception:  # noqa: BLE001
                pass
        for ctx in contexts:
            ctx.close()
        server.stop()  # and the workers it started (tests/browser/_helpers.Server.stop)


MLP = ("/train?model=mlp&epochs={epochs}&batch_size=64&lr=0.001&optimizer=adam&weight_decay=0&schedule=none"
       "&augment=False&seed=0&device=cpu")


def test_server_killed_mid_training_then_worker_killed_mid_epoch(browser, tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    log = tmp_path / "streamlit.log"
    first = Server(runs_dir, limit=1, log=log)
    second = None
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        with step(page, "start a 10-epoch MLP run from the Train page"):
            _open(page, first.url + MLP.format(epochs=10))
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(re.compile(r"[?&]run="), timeout=60_000)
            run_id = re.search(r"[?&]run=([^&]+)", page.url).group(1)
            run = open_run(run_id, runs_dir)
            wait_for(lambda: run.status().get("epochs_completed", 0) >= 1, 180, "the first epoch")
        with step(page, "SIGKILL the server: the worker trains on"):
            pid = run.status()["pid"]
            first.kill()
            assert _pid_alive(pid), "the worker died with the server"
            assert run.status()["status"] == "running"
            _check_runs_folder_whole(runs_dir)
        with step(page, "a new server on the same runs folder shows the run running"):
            second = Server(runs_dir, limit=1, log=log)
            assert [r["run_id"] for r in open_store(runs_dir).rows(states=HOLDING)] == [run_id]
            _open(page, second.url + "/runs")
            _wait_text(page, f"{display_name(run_id)} · mlp · running")  # "4 Dec 03:56:51"
            assert_no_exception(page, "Runs after the restart")
            _open(page, second.url + f"/train?run={run_id}")
            page.wait_for_function("() => /epoch \\d+\\/10/.test(document.body.innerText)", timeout=60_000)
            assert_no_exception(page, "Train after the restart")
            assert run.status()["status"] == "running" and _pid_alive(pid)
        with step(page, "SIGKILL the worker mid-epoch: its lease runs out and another worker continues it"):
            def mid_epoch():
                done = run.status().get("epochs_completed", 0)
                batches = [m for m in run.metrics() if m["type"] == "batch"]
                return done >= 1 and batches and batches[-1]["epoch"] > done and done
            done = wait_for(mid_epoch, 120, "a batch after a finished epoch")
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: len([m for m in run.metrics() if m["type"] == "fit_start"]) == 2, 120,
                     "a new worker to continue the run")
            starts = [m["start_epoch"] for m in run.metrics() if m["type"] == "fit_start"]
            assert starts[1] >= done  # continued from the last finished epoch: at most one epoch lost
            assert "interrupted" in [h["to_state"] for h in open_store(runs_dir).history(run_id)]
            assert run.status()["pid"] != pid
            page.wait_for_function("() => /epoch \\d+\\/10/.test(document.body.innerText)", timeout=60_000)
            # and says why it went on from an earlier epoch (it said only "epoch 3/10")
            _wait_text(page, "Its training process stopped once", 60)
            assert_no_exception(page, "Train after the worker was killed")
            _check_runs_folder_whole(runs_dir)
        with step(page, "Stop it from the page, then Continue training for one epoch"):
            page.get_by_role("button", name="Stop").click()
            _wait_text(page, "Stopped")
            wait_for(lambda: run.status()["status"] == RunState.STOPPED, 60, "stopped")
            done = run.status()["epochs_completed"]
            page.get_by_role("button", name="Continue training").wait_for(timeout=60_000)
            page.get_by_role("spinbutton", name="Continue this run for more epochs").fill("1")
            page.get_by_role("button", name="Continue training").click()
            _wait_text(page, f"Finished {done + 1} epoch{'s' if done + 1 != 1 else ''} ", 180)
            assert_no_exception(page, "Train after continuing")
            status = run.status()
            assert status["status"] == "completed" and status["epochs_completed"] == done + 1, status
            assert len([m for m in run.metrics() if m["type"] == "fit_start"]) == 3  # run, automatic, by hand
        with step(page, "the Runs page lists it completed; every run opens whole"):
            _open(page, second.url + "/runs")
            _wait_text(page, f"{display_name(run_id)} · mlp · completed")
            _check_runs_folder_whole(runs_dir)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SHOTS / "server_killed_mid_training.png"), full_page=True)
        except Exception:  # noqa: BLE001
            pass
        ctx.close()
        for s in (first, second):
            if s is not None:
                s.stop()  # and the workers either started, the one that outlived the first too
