"""The live loss feed (signlab.live): tokens, what the route answers, and how the page uses it."""
from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request

from signlab import figures, live
from signlab.config import TrainConfig
from signlab.runs import create_held_run
from signlab.store import RunState


@pytest.fixture
def held(tmp_path):
    cfg = TrainConfig(model="logreg", epochs=2, device="cpu")
    return create_held_run(cfg, "test-holder", tmp_path, run_id="watched")


@pytest.fixture
def run(held):
    return held[0]


def _log(run, *records, torn: str = "") -> None:
    with open(run.dir / "metrics.jsonl", "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.write(torn)


def _batch(step: int, loss: float, epoch: int = 1) -> dict:
    return {"type": "batch", "step": step, "epoch": epoch, "loss": loss}


def _get(query: str):
    request = Request({"type": "http", "method": "GET", "path": live.PATH, "headers": [],
                       "query_string": query.encode()})
    # in a thread of its own: the browser tests' playwright may leave an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, live._endpoint(request)).result()


def test_the_feed_sends_new_points_and_only_says_so_when_nothing_changed(held):
    run, claim = held
    token = live.issue(run)
    first = live.answer(token)
    assert first["spec"]["traces"] == []  # nothing logged yet: an empty chart
    assert first["status"]["state"] == "claimed" and first["status"]["kind"] == "progress"
    assert "starting the worker" in first["status"]["text"]
    _log(run, {"type": "fit_start"}, _batch(1, 3.0), _batch(2, 2.5), torn='{"type": "batch", "st')
    second = live.answer(token, first["v"])
    assert second["v"] > first["v"]
    assert second["spec"] == figures.live_loss_spec([_batch(1, 3.0), _batch(2, 2.5)])  # the torn line waits
    assert "spec" not in live.answer(token, second["v"])  # no change: no points resent
    _log(run, torn='ep": 3, "epoch": 1, "loss": 2.0}\n')  # the writer finishes its line
    third = live.answer(token, second["v"])
    assert third["spec"]["traces"][0]["x"][-1] == 3


def test_the_feed_says_the_progress_line_and_the_state_as_the_page_would(held):
    run, claim = held
    token = live.issue(run)
    run.store.update(claim, RunState.RUNNING)
    _log(run, {"type": "fit_start"}, {**_batch(1, 3.0), "progress": 0.25, "samples_per_second": 4000.0,
                                      "train_seconds": 2.0})
    status = live.answer(token)["status"]
    assert status == {"state": "running", "kind": "progress", "progress": 0.25,
                      "text": "epoch 1/2 · 4,000 images/s · about 6 s left"}
    run.store.update(claim, RunState.COMPLETED)
    assert live.answer(token)["status"]["state"] == "completed"  # the chart then asks the page to redraw


def test_a_continued_run_goes_on_counting_steps(run):
    token = live.issue(run)
    # (a continuation starts on the epoch after the last finished one: here epoch 2)
    _log(run, _batch(1, 3.0), _batch(2, 2.0), {"type": "fit_start"}, _batch(1, 1.5, epoch=2))
    assert live.answer(token)["spec"]["traces"][0]["x"] == [1, 2, 3]


def test_unknown_revoked_and_expired_tokens_get_nothing(run, monkeypatch):
    assert live.answer("made-up") is None
    token = live.issue(run)
    live.revoke(token)
    assert live.answer(token) == {"ended": True}  # no lines, and no 404 in the console as a run stops
    assert _get(f"token={token}").status_code == 200
    token = live.issue(run)
    monkeypatch.setattr(live, "TOKEN_SECONDS", -1)
    assert live.answer(token) is None


def test_a_deleted_run_ends_its_feed(held):
    run, claim = held
    token = live.issue(run)
    assert live.answer(token) is not None
    run.store.update(claim, RunState.RUNNING)
    run.store.update(claim, RunState.COMPLETED)
    run.store.delete(run.id)
    shutil.rmtree(run.dir)
    assert live.answer(token) == {"ended": True}  # the route then says so, not a server error
    assert json.loads(_get(f"token={token}").body) == {"ended": True}


def test_tokens_are_random_and_the_oldest_go_first(run, monkeypatch):
    monkeypatch.setattr(live, "MAX_TOKENS", 3)
    tokens = [live.issue(run) for _ in range(4)]
    assert len(set(tokens)) == 4 and all(len(t) >= 24 for t in tokens)
    assert live.answer(tokens[0]) is None
    assert all(live.answer(t) is not None for t in tokens[1:])


def test_the_route_answers_json_for_a_token_and_404_without_one(run):
    _log(run, _batch(1, 3.0))
    token = live.issue(run)
    ok = _get(f"token={token}")
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    body = json.loads(ok.body)
    assert body["spec"]["traces"][0]["y"] == [3.0]
    same = json.loads(_get(f"token={token}&v={body['v']}").body)
    assert same["v"] == body["v"] and "spec" not in same and same["status"]["state"] == "claimed"
    assert json.loads(_get(f"token={token}&v=not-a-number").body)["spec"]  # a bad version: everything again
    for odd in ("%C2%B2", "%D9%A3", "9" * 5000):  # "²" and "٣" pass str.isdigit(); 5,000 digits pass int()'s limit
        assert json.loads(_get(f"token={token}&v={odd}").body)["spec"]  # not a server error
    assert _get("token=guessed").status_code == 404
    assert _get("").status_code == 404


def test_routes_mount_the_feed_and_the_page_then_polls_slowly(monkeypatch):
    from signlab import ui

    from signlab.views import LiveStatus

    training = LiveStatus("running", "progress", "epoch 1/2", progress=0.1)
    queued = LiveStatus("queued", "info", "waiting")
    monkeypatch.setattr(live, "_mounted", False)
    assert ui.poll_seconds(training) == ui.POLL_SECONDS <= 1.0  # no feed: the page moves the chart itself
    (route,) = live.routes()
    assert route.path == live.PATH and live.mounted()
    assert ui.poll_seconds(training) == live.SLOW_POLL_SECONDS > ui.POLL_SECONDS  # the chart moves itself
    assert ui.poll_seconds(queued) == ui.POLL_SECONDS  # no chart yet: the page watches for the start
    assert live.FEED_SECONDS <= 1.0  # the chart still moves at least once a second


def test_the_machines_load_is_what_runs_now_not_a_minute_ago(monkeypatch):
    """The time estimates' "other work keeps this machine busy": the 1-minute load average stays high
    for a minute after this server's own run ends, so it is held to the threads runnable now. The
    machine's real load is not used (the suite's other worker, its runs, PostgreSQL and Chromium made
    the median look 6 or more in 63 of 100 tries on a busy 2-core machine)."""
    import os

    from signlab import device, ui

    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))  # as just after a busy minute
    monkeypatch.setattr(device, "runnable_now", lambda: 1.0)  # a test worker, not six
    assert device.machine_load() == 1.0  # held to what runs now
    monkeypatch.setattr(device, "runnable_now", lambda: 9.0)
    assert device.machine_load() == 6.0  # a burst now is not more than the minute's average
    monkeypatch.setattr(device, "runnable_now", lambda: None)  # no /proc: the average alone
    assert device.machine_load() == 6.0
    ui._machine_load.clear()  # the pages' look is cached a few seconds across reruns
    assert ui._machine_load() == 6.0
    ui._machine_load.clear()


def test_the_threads_runnable_now_count_busy_processes():
    """:func:`device.runnable_now` reads /proc/loadavg: five busy processes show (the machine's other work
    can only add to them, never hide them)."""
    import subprocess
    import sys
    import time

    from signlab import device

    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(5)]
    try:
        time.sleep(0.5)
        assert device.runnable_now() >= 4  # five busy processes on this machine now
    finally:
        for p in spin:
            p.kill()
            p.wait()


def test_a_feed_ends_once_its_user_may_no_longer_see_the_run(tmp_path, monkeypatch, app_caches):
    """A classmate's feed token kept answering for its twelve hours after the instructor turned
    classmates' runs off, to anyone holding its URL. The Train page issues it with the permission,
    asked again while the feed is read."""
    from streamlit.testing.v1 import AppTest

    from signlab import access
    from signlab.access import User
    from signlab.ui import Keys

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNLAB_LOCAL_WORKERS", "0")
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(live, "_mounted", True)  # as serve.py mounts it
    bob, teach = User("bob@uni.edu"), User("teach@uni.edu", "instructor")
    run, _ = create_held_run(TrainConfig(model="logreg", epochs=1, device="cpu"), "w1", tmp_path,
                             run_id="alice-run", owner="alice@uni.edu")
    _log(run, {**_batch(1, 3.1), "progress": 0.1})
    access.save_settings(teach, {"show_classmates": True}, tmp_path)
    at = AppTest.from_file(str(live.__file__).replace("signlab/live.py", "app_pages/train.py"), default_timeout=60)
    at.session_state[Keys.USER] = bob
    at.query_params["run"] = "alice-run"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    token = at.session_state[Keys.LIVE_FEEDS]["alice-run"]
    assert live.answer(token)["status"]["progress"] == pytest.approx(0.1)
    access.save_settings(teach, {"show_classmates": False}, tmp_path)  # withdrawn
    _log(run, {**_batch(2, 2.2), "progress": 0.2})
    assert live.answer(token, 0) == live.ENDED


def test_a_logged_progress_that_is_no_number_never_breaks_the_feed(held):
    """NaN (which Python's json reads) or text as a batch's progress, or an epoch that is null, made
    the feed's reply unencodable: a 500 on every poll, twice a second."""
    run, _ = held
    token = live.issue(run)
    _log(run, {**_batch(1, 2.0), "progress": float("nan"), "epoch": None})
    reply = _get(f"token={token}")
    assert reply.status_code == 200, reply.body
    status = json.loads(reply.body)["status"]
    assert status["progress"] == 0.0 and "epoch 1/2" in status["text"], status
