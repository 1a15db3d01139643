"""A class server: owners, roles and quotas, checked in the backend (signlab.access), and the pages
that go through it (AppTest as a signed-in student)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from signlab import access
from signlab.access import AccessError, Policy, QuotaError, User
from signlab.config import TrainConfig
from signlab.errors import SignlabError
from signlab.jobs import JobManager
from signlab.runs import create_held_run, create_run
from signlab.store import RunState
from signlab.ui import Keys, md
from tests._local import unescape_md

ROOT = Path(__file__).resolve().parent.parent
ALICE = User("alice@uni.edu", "student")
BOB = User("bob@uni.edu", "student")
TEACH = User("teach@uni.edu", "instructor")
TINY = dict(model="logreg", epochs=1, max_steps=2, augment=False, device="cpu")


@pytest.fixture
def setup(tmp_path, small_dataset):
    """Alice's finished run (with weights) and Bob's queued one, in a fresh runs folder."""
    from signlab import api

    rec = api.train(TrainConfig(**TINY), tmp_path, run_id="alice-run", dataset=small_dataset)
    access.open_for(TEACH, "alice-run", "view", Policy(), tmp_path).store.annotate("alice-run", owner=ALICE.id)
    create_run(TrainConfig(**TINY), tmp_path, run_id="bob-run", owner=BOB.id)
    assert rec["status"] == "completed"
    return tmp_path, JobManager(tmp_path, limit=1, start_workers=False)


def _photos(dataset, letters: str = "AB") -> list:
    """Two dataset images a letter, as photos (PNG bytes) for calibration."""
    import io

    import numpy as np
    from PIL import Image

    from signlab.calibrate import Photo
    from signlab.labels import LETTERS

    def png(image) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        return buf.getvalue()

    return [Photo(k, f"{n}.png", png(dataset.test.images[np.flatnonzero(dataset.test.targets == LETTERS.index(k))[n]]))
            for k in letters for n in range(2)]


@pytest.mark.parametrize("action", ["stop", "pause", "resume", "continue", "rename", "delete", "download", "export",
                                    "calibrate"])
def test_a_student_cannot_act_on_a_classmates_run(setup, action, small_dataset):
    root, jm = setup
    pol = Policy(show_classmates=True)
    photos = _photos(small_dataset)
    calls = {
        "stop": lambda u: access.stop(u, "alice-run", pol, jm),
        "pause": lambda u: access.pause(u, "alice-run", pol, root),
        "resume": lambda u: access.resume(u, "alice-run", pol, root),
        "continue": lambda u: access.continue_run(u, "alice-run", 1, pol, jm),
        "rename": lambda u: access.rename(u, "alice-run", "mine now", pol, root),
        "delete": lambda u: access.delete(u, "alice-run", pol, root),
        "download": lambda u: access.download(u, "alice-run", "weights", pol, root),
        "export": lambda u: access.export(u, "alice-run", pol, root),
        # a calibrated copy is a run of the caller's with the parent's weights, so theirs to download
        "calibrate": lambda u: access.calibrate(u, "alice-run", photos, pol, root, steps=2, dataset=small_dataset,
                                                evaluate_test=False),
    }
    with pytest.raises(AccessError, match="belongs to a classmate"):
        calls[action](BOB)
    run = access.open_for(TEACH, "alice-run", "view", pol, root)
    assert run.status()["status"] == RunState.COMPLETED and run.name == "alice-run" and run.has_weights()
    assert run.status()["control"] is None
    calls[action](ALICE)  # the owner can
    if action not in ("delete", "continue"):  # (gone, or already queued to continue)
        calls[action](TEACH)  # and so can an instructor


def test_visibility_follows_the_setting(setup):
    root, _ = setup
    hidden, shown = Policy(show_classmates=False), Policy(show_classmates=True)
    assert [r.id for r in access.visible_runs(BOB, hidden, root)] == ["bob-run"]
    assert sorted(r.id for r in access.visible_runs(BOB, shown, root)) == ["alice-run", "bob-run"]
    assert sorted(r.id for r in access.visible_runs(TEACH, hidden, root)) == ["alice-run", "bob-run"]
    with pytest.raises(AccessError, match="no run alice-run of yours"):  # not even whose it is
        access.open_for(BOB, "alice-run", "view", hidden, root)


@pytest.mark.parametrize("ref", ["/etc", "../outside", "alice-run/../../x", str(Path("/tmp")), "ROOT/alice-run",
                                 "./alice-run", "ROOT/../elsewhere/planted", "../elsewhere/planted"])
def test_links_take_run_ids_never_paths(setup, ref):
    """A page link names a run by its id. The refs that are paths include ones that lead to a real run
    (this one's own folder, by its absolute path or ./) and to a folder outside the runs folder that
    looks like a run (a config.json): with only paths to nowhere, a page that took paths passed too."""
    root, _ = setup
    planted = root.parent / "elsewhere" / "planted"
    planted.mkdir(parents=True, exist_ok=True)
    (planted / "config.json").write_text((root / "alice-run" / "config.json").read_text())
    with pytest.raises(AccessError):
        access.open_for(TEACH, ref.replace("ROOT", str(root)), "view", Policy(), root)
    assert access.open_for(TEACH, "alice-run", "view", Policy(), root).id == "alice-run"  # its id opens it


def test_quota_jobs_per_user(setup):
    root, jm = setup
    pol = Policy(max_active_per_user=2)
    access.submit(BOB, TrainConfig(**TINY), pol, jm)  # bob: the queued one plus this: 2
    with pytest.raises(QuotaError, match="2 runs queued or training, and the limit is 2"):
        access.submit(BOB, TrainConfig(**TINY), pol, jm)
    access.submit(ALICE, TrainConfig(**TINY), pol, jm)  # others are not affected
    access.submit(TEACH, TrainConfig(**TINY), Policy(max_active_per_user=0), jm)  # instructors have none


def test_train_turns_start_off_for_a_run_over_the_memory_limit_before_the_click(setup, monkeypatch, app_caches):
    """A teacher's walk: with "Largest run" at 200 MB and batch 512, Start stayed on; only its click
    said "this run needs about 276 MB… batch size 256 would fit"."""
    root, _ = setup
    _serve(monkeypatch, root, SIGNLAB_MAX_RUN_MEMORY_MB="200")
    at = _as(BOB, "train", {"batch_size": "512"})
    assert not at.exception
    shown = [e.value for kind in (at.markdown, at.caption, at.info, at.warning) for e in kind]
    assert next(b for b in at.button if "Start" in b.label).disabled
    assert any("over the 200 MB one run may use; batch size" in v for v in shown), shown
    monkeypatch.setenv("SIGNLAB_MAX_RUN_MEMORY_MB", "4000")  # the default: it fits
    at = _as(BOB, "train", {"batch_size": "512"})
    assert not next(b for b in at.button if "Start" in b.label).disabled


def test_a_quota_of_0_is_said_as_the_instructors_pause_not_a_count_to_wait_under(setup, monkeypatch, app_caches):
    """A teacher's walk: with 0 runs at once a student read "you have 0 runs queued or training, and
    the limit is 0 at a time; wait for one to finish, or stop one", under which "Press Start to train"
    still stood."""
    root, jm = setup
    paused = "the class settings allow no runs to be queued or trained now (0 at a time); ask your instructor"
    with pytest.raises(QuotaError) as err:
        access.submit(ALICE, TrainConfig(**TINY), Policy(max_active_per_user=0), jm)
    assert str(err.value) == paused
    assert access.start_refusals(ALICE, Policy(max_runs_per_user=0), root)[1] == (
        "the class settings allow no new runs (0 runs kept per student); ask your instructor")
    _serve(monkeypatch, root, SIGNLAB_MAX_ACTIVE_PER_USER="0")
    at = _as(User("carol@uni.edu", "student"), "train")  # no run of hers to show: the page's "Press Start" case
    assert not at.exception
    shown = [e.value for kind in (at.markdown, at.caption, at.info, at.warning) for e in kind]
    assert next(b for b in at.button if "Start" in b.label).disabled
    assert any(paused in v for v in shown) and not any("Press **Start**" in v for v in shown), shown


def test_the_store_keeps_the_job_quota_when_two_starts_pass_the_check_together(setup, monkeypatch):
    """Two tabs pressing Start at one instant both passed check_start (each counted before the other
    had written its run); the store counts again in the insert's transaction and refuses the one
    past the quota, for new runs and continuations alike. Instructors still have no quota."""
    root, jm = setup
    pol = Policy(max_active_per_user=1)  # bob has his queued run already
    monkeypatch.setattr(access, "check_start", lambda *a, **k: None)  # as if both passed it together
    with pytest.raises(QuotaError, match="you have 1 run queued or training, and the limit is 1"):
        access.submit(BOB, TrainConfig(**TINY), pol, jm)
    assert [r["run_id"] for r in jm.store.rows(owner=BOB.id)] == ["bob-run"]
    access.open_for(TEACH, "alice-run", "view", pol, root).store.annotate("alice-run", owner=BOB.id)
    with pytest.raises(QuotaError, match="limit is 1"):
        access.continue_run(BOB, "alice-run", 1, pol, jm)
    assert jm.store.get("alice-run")["status"] == RunState.COMPLETED
    access.submit(TEACH, TrainConfig(**TINY), Policy(max_active_per_user=0), jm)


def test_the_store_keeps_the_run_quota_when_starts_pass_the_check_together(setup, monkeypatch):
    """Four tabs pressing Start at one instant all passed the run count (max_runs_per_user) before any
    had written its run, and made four runs past a limit of one; the store counts them in the insert's
    transaction, as it counts the job quota."""
    root, jm = setup
    monkeypatch.setattr(access, "check_start", lambda *a, **k: None)  # as if all passed it together
    made = [r["run_id"] for r in jm.store.rows(owner=BOB.id)]  # his queued run (setup)
    pol = Policy(max_runs_per_user=len(made) + 1, max_active_per_user=10)
    access.submit(BOB, TrainConfig(**TINY), pol, jm)
    with pytest.raises(QuotaError, match=f"^you have {len(made) + 1} runs, and the limit is {len(made) + 1}; "):
        access.submit(BOB, TrainConfig(**TINY), pol, jm)
    assert len(jm.store.rows(owner=BOB.id)) == len(made) + 1
    access.submit(TEACH, TrainConfig(**TINY), Policy(max_runs_per_user=0), jm)  # instructors have none


def test_quota_runs_per_user(setup):
    root, jm = setup
    with pytest.raises(QuotaError, match="you have 1 run, and the limit is 1; delete some"):
        access.submit(ALICE, TrainConfig(**TINY), Policy(max_runs_per_user=1), jm)


def test_a_calibrated_copy_counts_against_the_quotas(setup, small_dataset):
    """Calibrating makes a run that keeps its photos: it passed no quota (Teach it your hand)."""
    root, _ = setup
    photos = _photos(small_dataset)
    kw = dict(steps=2, dataset=small_dataset, evaluate_test=False)
    with pytest.raises(QuotaError, match="you have 1 run, and the limit is 1; delete some"):
        access.calibrate(ALICE, "alice-run", photos, Policy(max_runs_per_user=1), root, **kw)
    with pytest.raises(QuotaError, match="your runs take .* MB on disk, over your 0 MB"):
        access.calibrate(ALICE, "alice-run", photos, Policy(max_disk_per_user_mb=0), root, **kw)
    record = access.calibrate(ALICE, "alice-run", photos, Policy(max_runs_per_user=2), root, **kw)
    assert access.open_for(ALICE, record["run_id"], "download", Policy(), root).summary()["owner"] == ALICE.id


def test_the_store_keeps_the_run_quota_when_two_calibrations_pass_the_check_together(setup, small_dataset,
                                                                                      monkeypatch):
    """Two calibrations at once both passed the run count, checked before their seconds of adapting,
    and Alice, with 1 run under a limit of 2, ended with 3. The store counts the copy as it is made;
    nothing is left of the refused one."""
    root, _ = setup
    monkeypatch.setattr(access, "_check_room", lambda *a, **k: None)  # as if both passed it together
    kw = dict(steps=2, dataset=small_dataset, evaluate_test=False)
    pol = Policy(max_runs_per_user=2)
    access.calibrate(ALICE, "alice-run", _photos(small_dataset), pol, root, **kw)
    with pytest.raises(QuotaError, match="^you have 2 runs, and the limit is 2; "):
        access.calibrate(ALICE, "alice-run", _photos(small_dataset), pol, root, **kw)
    assert len(access.store_for(root).rows(owner=ALICE.id)) == 2
    assert sorted(p.name for p in root.iterdir() if (p / "config.json").exists()) == sorted(
        r["run_id"] for r in access.store_for(root).rows())
    access.calibrate(TEACH, "alice-run", _photos(small_dataset), Policy(max_runs_per_user=0), root, **kw)


def test_a_sweeps_trials_keep_their_owners_run_quota_as_each_is_made(tmp_path, small_dataset, monkeypatch):
    """Two sweeps started one after the other each passed the run count for their own trials, and a
    student with 1 run under a limit of 3 ended with 5. Each trial's run is counted as it is made: the
    sweep that would pass the quota ends with its refusal. A sweep from the command line (no owner set
    by the dashboard) has none."""
    from signlab import sweep

    create_run(TrainConfig(**TINY), tmp_path, run_id="old", owner=BOB.id, status=RunState.STOPPED)
    monkeypatch.setenv("SIGNLAB_OWNER", BOB.id)
    monkeypatch.setenv("SIGNLAB_MAX_RUNS_PER_USER", "3")
    kw = dict(model="logreg", epochs=1, max_steps=2, runs_dir=tmp_path, dataset=small_dataset)
    sweep.run_sweep(trials=2, study="first", **kw)
    with pytest.raises(QuotaError, match="^you have 3 runs, and the limit is 3; "):
        sweep.run_sweep(trials=2, study="second", **kw)
    assert len(access.store_for(tmp_path).rows(owner=BOB.id)) == 3
    monkeypatch.setenv("SIGNLAB_INSTRUCTORS", BOB.id)  # an instructor has no quota
    assert sweep.run_sweep(trials=1, study="third", **kw)["completed"] == 1
    monkeypatch.delenv("SIGNLAB_INSTRUCTORS")
    monkeypatch.delenv("SIGNLAB_OWNER")  # the command line: the machine's user, with full rights
    assert sweep.run_sweep(trials=1, study="fourth", **kw)["completed"] == 1


def test_quota_largest_run_says_what_would_fit(setup):
    root, jm = setup
    big = TrainConfig(model="deepcnn", batch_size=4096, ensemble=8)
    assert access.estimate_memory_mb(big) > 40_000  # about 47 GB of activations, as measured
    with pytest.raises(QuotaError, match=r"needs about [\d,]+ MB .*deepcnn, batch 4096, 8 network.*batch size \d+ would fit"):
        access.submit(BOB, big, Policy(), jm)
    access.submit(BOB, TrainConfig(model="fastcnn"), Policy(), jm)  # the default preset fits


def test_the_memory_and_runs_at_once_limits_hold_at_their_edges(setup):
    """A mutation check found both edges unpinned: a memory limit read as twice its value, and a
    Start turned off one run late, passed every test."""
    import math

    root, _ = setup
    cfg = TrainConfig(model="fastcnn", batch_size=512)
    need = access.estimate_memory_mb(cfg)
    with pytest.raises(QuotaError, match="over the"):
        access.check_start(BOB, cfg, Policy(max_run_memory_mb=math.ceil(need) - 1), root)
    access.check_start(BOB, cfg, Policy(max_run_memory_mb=math.ceil(need)), root)
    # and before the click, at the same edge (Start stayed on, and only the click said it)
    assert "over the" in access.start_refusals(BOB, Policy(max_run_memory_mb=math.ceil(need) - 1), root, cfg)[1]
    assert access.start_refusals(BOB, Policy(max_run_memory_mb=math.ceil(need)), root, cfg) == ("", "")
    assert access.start_refusals(TEACH, Policy(max_run_memory_mb=1), root, cfg) == ("", "")  # instructors: none
    # Bob's one queued run: at a limit of 1 Start is off before the click, at 2 it is on
    assert access.start_refusals(BOB, Policy(max_active_per_user=1), root)[0] != ""
    assert access.start_refusals(BOB, Policy(max_active_per_user=2), root)[0] == ""


def test_quota_disk_per_user_and_total(setup):
    root, jm = setup
    with pytest.raises(QuotaError, match="your runs take .* MB on disk, over your 0 MB"):
        access.submit(ALICE, TrainConfig(**TINY), Policy(max_disk_per_user_mb=0), jm)
    with pytest.raises(QuotaError, match="the runs folder holds .* MB, over the server's 0 MB"):
        access.submit(BOB, TrainConfig(**TINY), Policy(max_disk_total_mb=0), jm)


def test_quota_sweeps_count_as_jobs(setup):
    root, _ = setup
    with pytest.raises(QuotaError, match="limit is 3"):
        access.start_sweep(BOB, Policy(max_active_per_user=3), root, model="logreg", trials=8, workers=3)
    with pytest.raises(AccessError, match="not yours to stop"):
        access.stop_sweep(BOB, {"study": "s", "owner": ALICE.id}, Policy(), root)


def test_sweeps_started_one_after_another_keep_the_job_quota(setup, monkeypatch):
    """start_sweep counted only runs in the store, and a sweep's trial exists only once its process
    has started: five sweeps in a row all passed a quota of 3, and bob had four trials queued."""
    import subprocess
    import sys

    from signlab import launch, sweep

    root, _ = setup
    started: list[subprocess.Popen] = []

    def fake_spawn(args, log, env=None):  # a sweep worker still starting: alive, not yet registered
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
        with launch._LOCK:
            launch._CHILDREN.append(proc)
        started.append(proc)
        return proc

    monkeypatch.setattr(sweep, "spawn", fake_spawn)
    try:
        for i in range(2):  # beside his queued run (setup): three jobs
            access.start_sweep(BOB, Policy(max_active_per_user=3), root, model="logreg", trials=1, workers=1,
                               study=f"bob-{i}")
        with pytest.raises(QuotaError, match="limit is 3"):
            access.start_sweep(BOB, Policy(max_active_per_user=3), root, model="logreg", trials=1, workers=1,
                               study="bob-2")
        with pytest.raises(QuotaError, match="limit is 3"):  # nor a run beside them
            access.submit(BOB, TrainConfig(**TINY), Policy(max_active_per_user=3), setup[1])
        # another student's quota is their own
        access.start_sweep(ALICE, Policy(max_active_per_user=3), root, model="logreg", trials=1, workers=1,
                           study="alice-0")
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    # once they have ended, they hold nothing: his queued run and two more fit
    access.check_start(BOB, None, Policy(max_active_per_user=3), root, new_jobs=2)


def test_settings_are_for_instructors(setup):
    root, _ = setup
    with pytest.raises(AccessError):
        access.save_settings(BOB, {"max_active_per_user": 99}, root)
    pol = access.save_settings(TEACH, {"max_active_per_user": 7, "show_classmates": True}, root)
    assert pol.max_active_per_user == 7 and pol.show_classmates
    assert access.policy(root).max_active_per_user == 7  # kept in the run database for every server
    named = re.escape(Policy.LIMIT_LABELS["max_active_per_user"])  # the box's name on the Runs page
    with pytest.raises(SignlabError, match=f"^{named}: .* is not a whole number"):
        access.save_settings(TEACH, {"max_active_per_user": "1" + "0" * 400}, root)
    for odd in ("²", "٣"):  # str.isdigit() says yes to both; int("²") was a ValueError, not this message
        with pytest.raises(SignlabError, match=f"^{named}: .* is not a whole number"):
            access.save_settings(TEACH, {"max_active_per_user": odd}, root)


def test_roles_from_the_instructor_list(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGNLAB_INSTRUCTORS", "Teach@Uni.edu, other@uni.edu")
    pol = access.policy(tmp_path)
    assert access.user_for("teach@uni.edu", pol).role == "instructor"
    assert access.user_for("alice@uni.edu", pol).role == "student"
    # one person whatever the case of their address: the same runs and one quota
    assert access.user_for("Alice@Uni.EDU", pol) == access.user_for("alice@uni.edu", pol)
    assert access.user_for("Teach@UNI.edu", pol).id == "teach@uni.edu"
    assert access.user_for("Subject-AbC123", pol).id == "Subject-AbC123"  # not an address: kept as given
    assert access.local_user().role == "local" and access.local_user().manages_all


def test_user_text_is_escaped_for_markdown():
    evil = "[click me](http://evil.example) ![x](http://evil.example/i.png) **loud** <b>"
    out = md(evil)
    assert "](" not in out.replace("\\](", "") and "![" not in out.replace("\\!\\[", "")
    assert "\\*\\*loud\\*\\*" in out and "\\<b\\>" in out


def test_user_text_makes_no_bare_link_either():
    """Streamlit's markdown (remark-gfm) finds bare addresses again in the text after its escapes are
    read (mdast-util-gfm-autolink-literal's patterns, below), so an owner's e-mail address was drawn
    as a mailto link and a run named after a web address as a link, escapes or not (seen in Chromium)."""
    read = unescape_md  # the renderer's text: escapes read, the word joiners kept
    url = re.compile(r"(https?://|www(?=\.))([-.\w]+)", re.IGNORECASE | re.ASCII)
    email = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
    for text in ("alice@school.edu", "by a.b+c@d-e.example.org, 10:30", "see www.evil.example now",
                 "WwW.evil.example", "http://evil.example/x", "[x](https://evil.example)"):
        shown = read(md(text))
        assert not url.search(shown) and not email.search(shown), (text, shown)
        # and it reads as written: the word joiner is invisible and the escapes go
        assert shown.replace("\u2060", "") == text, (text, shown)
    # a character reference is read as its character (bob&#64;evil.example linked as bob@evil.example;
    # R&amp;D showed as R&D): every & is escaped, so none starts one
    for text in ("bob&#64;evil.example", "www&#46;evil&#46;example", "R&amp;D &lt;b&gt; &copy;"):
        assert re.search(r"(?<!\\)&", md(text)) is None and read(md(text)) == text, md(text)
    # what starts a block, where the text starts a table's cell (Home's Latest runs): "# big" was a heading
    for text in ("# big", "- bullet", "+ plus", "1. listed", "12) listed", "---", "=== x"):
        assert not re.match(r"\s*(#|[-+=]|\d{1,9}[.)])", md(text)) and read(md(text)) == text, md(text)
    assert md("run #3 - seed-1, 1.5") == "run \\#3 - seed-1, 1.5"  # inside the text, - and . stay as they are


def test_a_user_error_in_the_page_is_text(tmp_path):
    """The guard showed a SignlabError as markdown: an uploaded file named "**b** www.evil.example.png"
    was drawn bold, with a link, in Classify's and Calibrate's errors. The run-gone warning put an
    escaped id in a code span, where escapes are not read (seed\\_convnet)."""
    def page():
        import streamlit as st

        from signlab import ui
        from signlab.errors import ImageError

        with ui.guard("Could not read it"):
            raise ImageError("**b** www.evil.example.png: not an image we can open")
        st.warning(ui.run_gone_text("20261204-035651-seed_convnet-c66772cf94"))

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    assert at.error[0].value == "Could not read it: " + md("**b** www.evil.example.png: not an image we can open")
    assert "`20261204-035651-seed_convnet-c66772cf94`" in at.warning[0].value, at.warning[0].value


# ----------------------------------------------------------------------------- pages as a student
def _serve(monkeypatch, root, **env: str) -> None:
    """The pages' server settings: runs in ``root``, no worker started by a page (a test drives the
    store itself), and ``env``'s variables."""
    for name, value in {"SIGNLAB_RUNS_DIR": str(root), "SIGNLAB_LOCAL_WORKERS": "0", **env}.items():
        monkeypatch.setenv(name, value)


def _as(user: User, page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{page}.py"), default_timeout=60)
    at.session_state[Keys.USER] = user
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def test_pages_show_a_student_only_their_runs(setup, monkeypatch, app_caches):
    root, _ = setup
    # bob's run stays queued: a worker the Train page started for it took it once, under load, before
    # the instructor's Cancel below (which then waited on that worker)
    _serve(monkeypatch, root)
    at = _as(BOB, "runs")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["bob-run"]
    # his queued run has no accuracy yet: a dash, not Streamlit's "None" (the page passes a placeholder)
    assert table["test accuracy"].isna().all() and at.dataframe[0].proto.placeholder == "—"
    # a crafted link to Alice's run opens nothing of hers on Train: the page falls back to Bob's own
    # active run (a new tab shows the user's run still training), so Stop acts only on his
    at = _as(BOB, "train", {"run": "alice-run"})
    assert not at.exception
    shown = " ".join(e.value for kind in (at.markdown, at.caption, at.subheader) for e in kind)
    assert "alice-run" not in shown
    stop = next(b for b in at.button if "Stop" in b.label)
    assert not stop.disabled and "bob-run" in shown, shown  # Stop is for his own queued run
    # the instructor sees both, with whose each is (the table and the pickers listed a class's runs
    # alike), and can take bob's queued run out of the queue from the Runs page (Delete said "Stop
    # the run before deleting it", and Stop was on the Train page only)
    at = _as(TEACH, "runs")
    table = at.dataframe[0].value
    assert sorted(zip(table["name"], table["owner"])) == [("alice-run", ALICE.id), ("bob-run", BOB.id)]
    picker = next(s for s in at.selectbox if s.label == "Run")
    assert all(picker.format_func(i).endswith(" · " + owner) for i, owner in
               [("alice-run", ALICE.id), ("bob-run", BOB.id)])
    picker.set_value("bob-run").run()
    cancel = next(b for b in at.button if b.label == "⏹ Cancel")
    cancel.click().run()
    assert not at.exception
    assert access.open_for(TEACH, "bob-run", "view", Policy(), root).status()["status"] == RunState.STOPPED
    assert list(_as(BOB, "runs").dataframe[0].value.columns)[:2] == ["name", "model"]  # one owner: no column
    # a link to a run: the instructor's opens it under Manage a run; bob's to alice's says it is not
    # one he can open (the page showed his own run under a link that named hers)
    assert next(s for s in _as(TEACH, "runs", {"run": "bob-run"}).selectbox if s.label == "Run").value == "bob-run"
    at = _as(BOB, "runs", {"run": "alice-run"})
    assert any("is not one you can open here" in w.value for w in at.warning)
    assert next(s for s in at.selectbox if s.label == "Run").value == "bob-run"


def test_a_run_name_renders_as_text(setup, monkeypatch, app_caches):
    root, _ = setup
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    run = access.rename(ALICE, "alice-run", "[win](http://evil.example)", Policy(), root)
    at = _as(ALICE, "train", {"run": run.id})
    assert not at.exception
    heads = [h.value for h in at.subheader]
    # escaped, and the bare address broken by an invisible word joiner (it would still be a link)
    assert any("\\[win\\]\\(http\\:\u2060//evil.example\\)" in h for h in heads), heads


def test_held_run_controls_check_the_owner(tmp_path):
    run, claim = create_held_run(TrainConfig(**TINY), "w", tmp_path, run_id="held", owner=ALICE.id)
    run.store.update(claim, RunState.RUNNING)
    jm = JobManager(tmp_path, limit=1, start_workers=False)
    with pytest.raises(AccessError):
        access.stop(BOB, "held", Policy(), jm)
    assert run.store.heartbeat(claim) is None  # no stop request reached the worker
    access.stop(ALICE, "held", Policy(), jm)
    assert run.store.heartbeat(claim) == "stop"
    assert json.loads((tmp_path / "held" / "meta.json").read_text())["run_id"] == "held"


def test_a_student_is_told_who_paused_their_run(tmp_path):
    """An instructor's Pause read "Paused; press Resume to go on" on the student's page, as if they
    had pressed it (a Stop by them was named). The store keeps who paused someone else's run, the
    Train and Runs pages name them, and a resume (or the owner's own pause) forgets it."""
    from signlab import views

    run, claim = create_held_run(TrainConfig(**TINY), "w", tmp_path, run_id="held", owner=ALICE.id)
    run.store.update(claim, RunState.RUNNING)
    access.pause(TEACH, "held", Policy(), tmp_path)
    assert run.store.heartbeat(claim) == "pause"
    run.store.update(claim, RunState.PAUSED, message="paused; press Resume to go on")  # as the worker's pause
    said = views.live_status(run.status(), [], mine=True).notice
    assert f"Paused by {md(TEACH.id)}; press Resume to go on." in said, said
    assert views.completed_message(run.summary()) == f"paused by {TEACH.id}; press Resume to go on"
    access.resume(ALICE, "held", Policy(), tmp_path)
    assert run.status().get("paused_by") is None
    # resumed, it waits for a slot: Runs' line says so (it still read "paused; press Resume")
    assert views.completed_message(run.summary()) == "resuming as soon as a slot is free"
    run.store.update(claim, RunState.RUNNING)  # it has its slot again
    access.pause(ALICE, "held", Policy(), tmp_path)  # her own pause reads as before
    run.store.update(claim, RunState.PAUSED, message="paused; press Resume to go on")
    run.status()  # read afresh, as each page's Run is (summary() reads the row this object last read)
    assert views.completed_message(run.summary()) == "paused; press Resume to go on"
    # from the server's shell: "Stopped by local:root" told a student nothing
    other, claim = create_held_run(TrainConfig(**TINY), "w", tmp_path, run_id="other", owner=ALICE.id)
    other.store.update(claim, RunState.RUNNING)
    other.store.request("other", "stop", by="local:root")
    other.store.update(claim, RunState.STOPPED, message="stopped by request during epoch 1")
    assert views.completed_message(other.summary()) == "stopped by root (an account on the server itself) during epoch 1"


def test_a_student_is_told_who_stopped_their_run(tmp_path, capsys):
    """An instructor's Stop read "Stopped by request during epoch 1" on the student's page, as if
    the student had pressed it. Now the store keeps who stopped someone else's run, the page and the
    runs list name them, and a continuation forgets it; the owner's own stop reads as before."""
    from signlab import views

    jm = JobManager(tmp_path, limit=1, start_workers=False)
    run, claim = create_held_run(TrainConfig(**TINY), "w", tmp_path, run_id="held", owner=ALICE.id)
    run.store.update(claim, RunState.RUNNING)
    access.stop(TEACH, "held", Policy(), jm)
    assert run.store.heartbeat(claim) == "stop"
    run.store.update(claim, RunState.STOPPED, message="stopped by request during epoch 1")  # as the trainer ends
    said = views.live_status(run.status(), [], mine=True).message
    assert f"Stopped by {md(TEACH.id)} during epoch 1." in said and "request" not in said  # a user id is text
    assert views.completed_message(run.summary()) == "stopped by teach@uni.edu during epoch 1"
    from signlab.cli import main

    assert main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["stopped_by"] == TEACH.id  # the command line's list too
    jm.store.enqueue_continue("held", 1)  # continued: a later stop is nobody's but its own
    assert not run.status().get("stopped_by")

    queued = create_run(TrainConfig(**TINY), tmp_path, run_id="queued", owner=BOB.id)
    access.stop(TEACH, "queued", Policy(), jm)
    assert f"Stopped by {md(TEACH.id)} (cancelled before it started)." in views.live_status(queued.status(), []).message
    own = create_run(TrainConfig(**TINY), tmp_path, run_id="own", owner=BOB.id)
    access.stop(BOB, "own", Policy(), jm)
    assert views.live_status(own.status(), []).message.startswith("⏹ Stopped: cancelled before it started.")


def test_an_instructors_stop_on_runs_shows_stopping_until_the_run_ends(setup, monkeypatch, app_caches):
    """After an instructor's Stop, Runs said "stops after its current batch" and its table went on
    saying "running" (and Stop stayed on) until something reran the page. The table says "stopping"
    and the button "Stopping…", and the page follows the run: its watch sees the run end."""
    from signlab import views

    root, _ = setup
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    run, claim = create_held_run(TrainConfig(**TINY), "w", root, run_id="held", owner=ALICE.id)
    run.store.update(claim, RunState.RUNNING)
    at = _as(TEACH, "runs", {"run": "held"})
    assert dict(zip(at.dataframe[0].value["name"], at.dataframe[0].value["status"]))["held"] == "running"
    next(b for b in at.button if b.label == "⏹ Stop").click().run()
    assert not at.exception and any("stops after its current batch" in s.value for s in at.success)
    assert dict(zip(at.dataframe[0].value["name"], at.dataframe[0].value["status"]))["held"] == "stopping"
    stopping = next(b for b in at.button if b.label == "⏹ Stopping…")
    assert stopping.disabled
    assert run.store.heartbeat(claim) == "stop"  # the worker is told
    before = views.watch_key([run.summary()])
    assert before == (("held", "stopping"),)
    run.store.update(claim, RunState.STOPPED, message="stopped by request during epoch 1")
    run.status()
    assert views.watch_key([run.summary()]) == () != before  # what the page's watch reruns on


def test_a_students_time_estimate_reads_the_whole_servers_runs(setup, monkeypatch, app_caches):
    """A class server told a student with no runs of their own that it "has not trained logreg yet"
    beside a classmate's finished logistic regression: a server's speed is not private, so the
    estimate reads every user's completed runs (not their names: the student still sees none)."""
    root, _ = setup
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    carol = User("carol@uni.edu", "student")
    at = _as(carol, "train", {"model": "logreg"})
    assert not at.exception
    said = " ".join(i.value for i in at.info)
    assert "With these settings it takes" in said and "on this server" in said, said
    assert "has trained logreg yet" not in said and "alice-run" not in said


@pytest.mark.parametrize("page", ["classify", "calibrate"])
def test_a_link_to_a_classmates_run_gives_way_to_the_users_own(setup, monkeypatch, app_caches, page):
    """Classify and Calibrate opened the student's own run under a link that kept naming the
    classmate's (the other pages put the run they show in the link)."""
    root, _ = setup
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    at = _as(ALICE, page, {"run": "bob-run"})
    assert not at.exception
    assert at.query_params["run"] == "alice-run", at.query_params


def test_an_instructor_sets_the_class_before_any_run_exists(tmp_path, monkeypatch, app_caches):
    """With no run yet, Runs stopped before its class-settings box: the quotas and the pause limit
    were out of reach until a student had trained something. The box is there, and saves."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _as(TEACH, "runs")
    assert not at.exception and any("No runs yet" in i.value for i in at.info)
    # every quota has its box, as the class settings declare it (their bound is the backend's to check:
    # test_the_class_settings_form_saves_only_what_the_instructor_changed)
    assert [n.label for n in at.text_input] == list(Policy.LIMIT_LABELS.values())
    # what 0 means, said once for the quotas (a teacher's walk found it said for the pause alone)
    assert any("0 MB for the largest run lets students start no new run" in c.value for c in at.caption)
    # each of the three 0s the caption names refuses a new run, to a student with none yet
    for zero in (Policy(max_active_per_user=0), Policy(max_runs_per_user=0), Policy(max_run_memory_mb=0)):
        with pytest.raises(QuotaError):
            access.check_start(BOB, TrainConfig(**TINY), zero, tmp_path)
    box = next(n for n in at.text_input if n.label.startswith("Minutes a paused run may wait"))
    box.set_value("5")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception and access.policy(tmp_path).max_pause_minutes == 5
    quotas = set(Policy.LIMIT_LABELS.values())
    assert not [n for n in _as(BOB, "runs").text_input if n.label in quotas]  # a student gets no such box


def test_the_map_says_the_servers_t_sne_time_to_a_student_with_no_maps(setup, monkeypatch, app_caches):
    """A student whose classmates had made t-SNE maps was told "none of your runs has a t-SNE map
    yet" and a 20-s-to-minutes range: the time is the server's, read from every user's runs."""
    root, _ = setup
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    access.open_for(TEACH, "alice-run", "view", Policy(), root).store.annotate("alice-run", tsne_seconds=21.0)

    def page():
        import streamlit as st

        from signlab import ui

        st.write(f"seconds={ui.tsne_seconds()}")

    at = AppTest.from_function(page, default_timeout=60)
    at.session_state[Keys.USER] = BOB  # bob has no map of his own, nor sees alice's run
    at.run()
    assert not at.exception and at.markdown[0].value == "seconds=21.0", at.markdown[0].value


def test_a_sweeps_trials_count_against_the_runs_and_disk_a_student_may_keep(setup, monkeypatch):
    """Each trial of a sweep is a run: start_sweep checked only the runs at once, so a student over
    the run limit (refused on Train) started a sweep and owned six more. Too many workers for the
    runs-at-once limit is said as such (it read "you have 0 runs queued or training")."""
    from signlab import sweep

    root, _ = setup
    monkeypatch.setattr(sweep, "spawn", lambda *a, **k: pytest.fail("a refused sweep started a process"))
    with pytest.raises(QuotaError, match=r"you have 1 run, a sweep of 6 trials makes as many runs, and the limit "
                                         r"is 3; delete some on the Runs page, or ask for at most 2"):
        access.start_sweep(BOB, Policy(max_runs_per_user=3), root, model="logreg", trials=6, workers=1)
    with pytest.raises(QuotaError, match="your runs take .* MB on disk, over your 0 MB"):
        access.start_sweep(BOB, Policy(max_disk_per_user_mb=0), root, model="logreg", trials=1, workers=1)
    with pytest.raises(QuotaError, match="a sweep with 3 workers trains 3 trials at once, and the limit is 2 at a "
                                         "time; use at most 2 workers"):
        access.start_sweep(ALICE, Policy(max_active_per_user=2), root, model="logreg", trials=6, workers=3)
    # an instructor has no quotas
    started = []
    monkeypatch.setattr(access, "start_sweep_process", lambda **k: started.append(k) or {"study": "t"})
    access.start_sweep(TEACH, Policy(max_runs_per_user=0, max_active_per_user=1), root, model="logreg", trials=6,
                       workers=3)
    assert started and started[0]["owner"] == TEACH.id


def test_a_classmates_running_sweep_is_read_only_and_an_instructors_stop_is_named(setup, monkeypatch, app_caches):
    """With classmates shown, bob saw an enabled Stop on alice's running sweep whose refusal the
    2-s refresh wiped at once, and a study label that did not say whose it was; a link to a study he
    may not see read "No sweep yet"; alice's page said "Stopped" without who stopped it."""
    from signlab import sweep
    from signlab.store import store_for

    root, _ = setup
    _serve(monkeypatch, root)
    folder = sweep.sweeps_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alice-s.json").write_text(json.dumps({"study": "alice-s", "model": "logreg", "epochs": 1,
                                                     "owner": ALICE.id, "created": 1.0}))
    store_for(root).register_worker("sweep-w1", "sweep", study="alice-s")  # a live worker: the sweep runs

    at = _as(BOB, "sweeps", {"study": "alice-s"})  # classmates hidden: the link says so
    assert not at.exception
    assert any("alice-s" in w.value and "is not one you can open here" in w.value for w in at.warning)

    monkeypatch.setenv("SIGNLAB_SHOW_CLASSMATES", "1")
    at = _as(BOB, "sweeps", {"study": "alice-s"})
    assert not at.exception
    picker = next(s for s in at.selectbox if s.label == "Study")
    assert picker.value == "alice-s" and picker.options == [f"alice-s · logreg, 1 epoch per trial · {ALICE.id}'s"]
    assert not [b for b in at.button if "Stop" in b.label]
    assert any("you can watch it, not stop it" in c.value for c in at.caption)
    at = _as(ALICE, "sweeps", {"study": "alice-s"})  # hers: Stop, and her label names no owner
    assert [b for b in at.button if b.label == "⏹ Stop sweep"]
    assert next(s for s in at.selectbox if s.label == "Study").options == ["alice-s · logreg, 1 epoch per trial"]

    access.stop_sweep(TEACH, sweep.study_record("alice-s", root) | {"owner": ALICE.id}, Policy(), root)
    assert sweep.stop_requested_by("alice-s", root) == TEACH.id
    at = _as(ALICE, "sweeps", {"study": "alice-s"})
    assert any(f"Stopping by {md(TEACH.id)}" in i.value for i in at.info), [i.value for i in at.info]
    access.stop_sweep(ALICE, {"study": "alice-s", "owner": ALICE.id}, Policy(), root)  # her own: no name
    assert sweep.stop_requested_by("alice-s", root) is None


def test_a_map_of_someone_elses_run_is_not_written_into_its_folder(setup, monkeypatch, app_caches):
    """A classmate (or an instructor) opening a student's run on Map wrote its map (368 KB for PCA,
    more for t-SNE) into that run's folder, against its owner's disk quota. Now it is kept for the
    looking session only, computed once there; the owner's own map is still kept in the folder."""
    from signlab import embedding, ui

    root, _ = setup
    _serve(monkeypatch, root)
    computed = []
    real = embedding.run_map
    monkeypatch.setattr(ui, "run_map", lambda *a, **k: computed.append(k.get("keep")) or real(*a, **k))
    maps = root / "alice-run" / "embeddings"
    at = _as(TEACH, "map", {"run": "alice-run"})
    assert not at.exception and at.get("plotly_chart")
    assert not maps.exists() and computed == [False]
    at.run()  # a rerun (a click on a point): the session's map, not a second computation
    assert not at.exception and computed == [False]
    at = _as(ALICE, "map", {"run": "alice-run"})
    assert not at.exception and computed == [False, True]
    assert [p.suffix for p in maps.iterdir()] == [".npz"]


def test_the_class_settings_form_saves_only_what_the_instructor_changed(setup, monkeypatch, app_caches):
    """Saving the form with one field changed stored all seven settings in the run database, where
    they take precedence: a later SIGNLAB_MAX_… change was then silently ignored."""
    root, _ = setup
    _serve(monkeypatch, root)
    at = _as(TEACH, "runs")
    label = Policy.LIMIT_LABELS["max_runs_per_user"]

    def save(text: str) -> list[str]:  # the box's text, then Save: what the box's expander says
        next(n for n in at.text_input if n.label == label).set_value(text)
        next(b for b in at.button if b.label == "Save").click().run()
        assert not at.exception
        return [e.value for kind in (at.success, at.error) for e in kind]

    assert any("Class settings saved" in v for v in save("150"))
    from signlab.store import store_for

    assert store_for(root).settings() == {"max_runs_per_user": 150}
    monkeypatch.setenv("SIGNLAB_MAX_DISK_PER_USER_MB", "20")  # the operator's variable still counts
    assert access.policy(root).max_disk_per_user_mb == 20 and access.policy(root).max_runs_per_user == 150
    # what a number box did unsaid: below 0 and past a bound it kept its last valid number (Save saved
    # that), 1.5 became 1 and "abc" the old number, each "saved"; the text is checked and the box named
    for bad in ("-3", "1.5", "abc", "9" * 24):
        said = [v for v in save(bad) if v.startswith(f"Could not save: {label}")]  # markdown-escaped after
        assert said and f"'{bad[:20]}' is not a whole number from 0 to" in said[0], (bad, said)
        assert store_for(root).settings() == {"max_runs_per_user": 150}  # nothing saved
    # the number in force again: nothing to save, and it says so (it said "saved")
    assert any("Nothing to save" in v for v in save(" 150 ")) and store_for(root).settings() == {"max_runs_per_user": 150}
    next(n for n in at.text_input if n.label == Policy.LIMIT_LABELS["max_active_per_user"]).set_value("003")
    assert any("Nothing to save" in v for v in save("0150")), "the numbers in force, written otherwise"
    assert store_for(root).settings() == {"max_runs_per_user": 150}  # max_active_per_user not frozen at 3
    # what is saved here is listed, and one click hands the class back to the server's settings
    assert any(f"{label}: 150" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Follow the server's settings again").click().run()
    assert not at.exception and any("follows the server's settings again" in s.value for s in at.success)
    assert store_for(root).settings() == {} and access.policy(root).max_runs_per_user == Policy().max_runs_per_user
    assert not any(b.label == "Follow the server's settings again" for b in at.button)  # nothing left to forget
    with pytest.raises(AccessError):
        access.forget_settings(BOB, root)


def test_start_is_off_before_the_click_when_a_student_keeps_the_most_runs(setup, monkeypatch, app_caches):
    """Over the runs a student may keep, Start stayed on and was refused only on the click (the
    runs-at-once limit turned it off beforehand). Continue makes no new run: it stays on."""
    from signlab import views

    root, _ = setup
    assert access.start_refusals(BOB, Policy(max_runs_per_user=1), root)[1] == (
        "you have 1 run, and the limit is 1; delete some on the Runs page")
    assert access.start_refusals(BOB, Policy(max_runs_per_user=2), root)[1] == ""
    assert access.start_refusals(TEACH, Policy(max_runs_per_user=0), root)[1] == ""
    why = access.start_refusals(ALICE, Policy(max_runs_per_user=1), root)[1]
    done = views.live_status({"status": "completed", "epochs_completed": 1, "target_epochs": 1}, [],
                             has_weights=True, new_refused=why)
    assert not done.can_start and done.can_continue and done.notice == f"**Start** is off: {why}."
    _serve(monkeypatch, root, SIGNLAB_MAX_RUNS_PER_USER="1")
    at = _as(ALICE, "train", {"run": "alice-run"})
    assert not at.exception
    start = next(b for b in at.button if "Start" in b.label)
    shown = [e.value for kind in (at.markdown, at.caption, at.info, at.warning) for e in kind]
    assert start.disabled and any("you have 1 run, and the limit is 1" in v for v in shown), shown


def test_an_instructor_starts_a_waiting_run_next_from_the_runs_page(setup, monkeypatch, app_caches):
    """The Runs page showed a class's queue as a column of "queued" and gave the instructor no way
    to start one run before the students' turns (a run to show the class). Each queued run now says
    its place, and the instructor's Start next puts it first; a student has no such button."""
    root, _ = setup
    _serve(monkeypatch, root)
    create_run(TrainConfig(**TINY), root, run_id="alice-next", owner=ALICE.id)
    at = _as(TEACH, "runs", {"run": "alice-next"})
    assert not at.exception
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["bob-run", "status"] == "queued: 1 of 2" and table.loc["alice-next", "status"] == "queued: 2 of 2"
    assert any("waiting in the queue · number 2 of 2 in the queue" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any(f"owner {md(ALICE.id)}" in c.value for c in at.caption)  # a student's run, to the instructor
    next(b for b in at.button if b.label == "⏭️ Start next").click().run()
    assert not at.exception and any("starts next" in s.value for s in at.success), [s.value for s in at.success]
    assert JobManager(root, start_workers=False).store.queue() == ["alice-next", "bob-run"]
    at = _as(ALICE, "runs", {"run": "alice-next"})
    assert not any(b.label == "⏭️ Start next" for b in at.button)
    assert at.dataframe[0].value.set_index("name").loc["alice-next", "status"] == "queued: 1 of 2"


# ----------------------------------------------------------------------------- "yours" means owned (a review, 2026-12-06)
def _guide_as(user: User, step: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / "guide.py"), default_timeout=60)
    at.session_state[Keys.USER] = user
    at.session_state[Keys.GUIDE_STEP] = step
    return at.run()


def test_a_classmates_queued_tour_run_leaves_the_students_train_button_on(tmp_path, monkeypatch, app_caches):
    """With classmates' runs visible, the tour took Alice's queued logistic regression for Bob's: his
    Train button was off and her run was shown in its place."""
    from signlab import guide

    _serve(monkeypatch, tmp_path)  # alice's run stays queued
    monkeypatch.setenv("SIGNLAB_SHOW_CLASSMATES", "1")
    create_run(guide.LOGREG, tmp_path, run_id="alice-logreg", owner=ALICE.id)
    at = _guide_as(BOB, 1)  # "Train logistic regression"; Bob has no run
    assert not at.exception, [e.message for e in at.exception]
    train = [b for b in at.button if "Train logreg" in b.label]
    assert len(train) == 1 and not train[0].disabled
    assert not [e.value for e in at.info if "queue" in e.value.lower()]


def test_a_classmates_finished_tour_run_ticks_no_step_of_the_student(tmp_path, monkeypatch, app_caches,
                                                                      small_dataset):
    """Alice's finished logistic regression ticked Bob's step 2 and read "Your logistic regression
    reached ..." on his page."""
    import dataclasses

    from signlab import api, guide

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNLAB_SHOW_CLASSMATES", "1")
    api.train(dataclasses.replace(guide.LOGREG, max_steps=3), tmp_path, run_id="alice-logreg",
              dataset=small_dataset, evaluate_test=False)
    alices = access.open_for(TEACH, "alice-logreg", "view", Policy(), tmp_path)
    alices.save_config(guide.LOGREG)  # a dry run the tour does not count (guide.tours): its settings say the tour's
    alices.store.annotate("alice-logreg", owner=ALICE.id)
    at = _guide_as(BOB, 1)
    assert not at.exception, [e.message for e in at.exception]
    marks = [b.label for b in at.button if b.label.endswith("Train logistic regression")]
    assert [s.value for s in at.success] == [] and len(marks) == 1 and not marks[0].startswith("✅"), marks
    at = _guide_as(ALICE, 1)  # hers it is
    assert any(s.value.startswith("Your logistic regression reached") for s in at.success)


def test_an_instructors_new_train_tab_does_not_take_a_students_run_for_theirs(tmp_path, monkeypatch, app_caches):
    """A new Train tab follows the user's own run started elsewhere. It asked whether the user may stop
    the run, and an instructor may stop every student's: the tab said "This is your run that is
    waiting in the queue" of Bob's run and armed Stop for it."""
    _serve(monkeypatch, tmp_path)
    create_run(TrainConfig(model="logreg", epochs=1, max_steps=2, augment=False), tmp_path, run_id="bob-run",
               owner=BOB.id)
    at = _as(TEACH, "train")
    assert not at.exception, [e.message for e in at.exception]
    stop = [b for b in at.button if "Stop" in b.label]
    assert not any("bob" in h.value for h in at.subheader) and len(stop) == 1 and stop[0].disabled
    assert not any("This is your run" in i.value for i in at.info)
    at = _as(BOB, "train")  # his own, in a new tab, is followed
    assert any("bob" in h.value for h in at.subheader) or any("This is your run" in i.value for i in at.info)


def test_a_default_run_that_is_not_the_users_is_not_called_theirs(tmp_path, monkeypatch):
    """The pickers' default was the best run the user could see, a classmate's included, in the words
    "your best run by test accuracy"; their own runs come first now, and another's is said so."""
    from signlab import compare

    class R:
        def __init__(self, rid: str, owner: str, acc: float) -> None:
            self.id, self.owner, self.parent = rid, owner, None
            self.row = {"status": "completed", "test_accuracy": acc}

    monkeypatch.setattr(compare, "_completed", lambda r: True)
    monkeypatch.setattr(compare, "_accuracy", lambda r: r.row["test_accuracy"])
    alices, bobs = R("alice-best", ALICE.id, 0.99), R("bob-own", BOB.id, 0.60)
    mine = lambda r: r.owner == BOB.id  # noqa: E731
    assert compare.preferred_run([alices, bobs], "drawing", mine) == (bobs, "your best run by test accuracy")
    assert compare.preferred_run([alices], "drawing", mine) == (
        alices, "the best run you can see by test accuracy (you have none of your own yet)")
    assert compare.preferred_run([], "drawing", mine) == (None, "")


def test_the_sweep_command_shown_never_holds_the_databases_password(tmp_path, monkeypatch):
    """A study the page had just launched kept no storage yet, and the command shown fell back to the
    run database's URL, password and all, for every student who started a sweep."""
    from signlab import sweep, views

    monkeypatch.setenv("SIGNLAB_DB", "postgresql://signlab:s3cret-pw@db.school:5432/signlab")
    for stored in (None, sweep.mask_url("postgresql://signlab:s3cret-pw@db.school:5432/signlab")):
        shown = views.sweep_command({"study": "s1", "model": "fastcnn", "epochs": 2, "storage": stored}, "s1",
                                    stored, tmp_path)
        assert "s3cret-pw" not in shown and '--storage "$SIGNLAB_DB" ' in shown, shown
        # and the page opens the study with the password (the masked copy failed to sign in)
        assert sweep.recorded_storage(stored, "s1", tmp_path) is None
    other = "postgresql://me:pw2@elsewhere/studies"
    assert "pw2" not in views.sweep_command({}, "s1", other, tmp_path)
    assert sweep.recorded_storage(other, "s1", tmp_path) == other


def test_two_students_starting_sweeps_at_one_instant_get_a_study_each(tmp_path, monkeypatch):
    """The default study name was the model and the second: two students pressing Start together
    shared one study. The second's workers joined the first's, whose record named her: he could
    neither see nor stop his sweep, and its workers counted against no one's quota."""
    from signlab import sweep

    started = []
    monkeypatch.setattr(sweep, "spawn", lambda args, log, env=None: started.append(env["SIGNLAB_OWNER"]) or
                        type("P", (), {"pid": 1})())
    monkeypatch.setattr(sweep.time, "strftime", lambda fmt, *a: "20261206-175939")  # one second for both
    a = access.start_sweep(ALICE, Policy(), tmp_path, model="logreg", trials=1, workers=1)
    b = access.start_sweep(BOB, Policy(), tmp_path, model="logreg", trials=1, workers=1)
    assert a["study"] != b["study"] and started == [ALICE.id, BOB.id]
    assert sweep.study_record(b["study"], tmp_path)["owner"] == BOB.id
    # a name another user's study holds is refused, before any worker starts
    with pytest.raises(SignlabError, match=f"^--study: {a['study']} is another user's sweep; choose another name$"):
        access.start_sweep(BOB, Policy(), tmp_path, model="logreg", trials=1, workers=1, study=a["study"])
    assert started == [ALICE.id, BOB.id] and sweep.study_record(a["study"], tmp_path)["owner"] == ALICE.id
    access.start_sweep(ALICE, Policy(), tmp_path, model="logreg", trials=1, workers=1, study=a["study"])  # hers: more workers
    assert started[-1] == ALICE.id


def test_an_address_the_sign_in_provider_has_not_verified_is_not_the_users_id():
    """The OpenID Connect e-mail decided the user and the role, verified or not: with a provider that
    lets users set their own address, anyone could sign in as the instructor's. An unverified address
    gives way to the provider's subject."""
    pol = Policy(instructors=(TEACH.id,))
    claims = {"email": TEACH.id, "sub": "provider-7f3a", "email_verified": False}
    user = access.user_for(access.sign_in_id(claims), pol)
    assert user.id == "provider-7f3a" and user.role == "student"
    for verified in (True, "true", None):  # said verified, or not said at all (many providers leave it out)
        claims = {"email": TEACH.id, "sub": "provider-7f3a", **({} if verified is None else {"email_verified": verified})}
        assert access.user_for(access.sign_in_id(claims), pol).role == "instructor"
    assert access.sign_in_id({"email": TEACH.id, "email_verified": "false"}) == ""  # then no id: refused
    with pytest.raises(AccessError, match="no user id"):
        access.user_for(access.sign_in_id({"email": TEACH.id, "email_verified": "false"}), pol)


def test_a_classmates_run_on_the_runs_page_has_its_name_box_shut(setup, monkeypatch, app_caches):
    """With classmates shown, a student's Runs page showed a classmate's run read-only, with Rename greyed
    out but the Name box open: it took "hacked by bob" (nothing saved, but it looked as if it could be).
    The box is shut too, and says why; the owner's own box stays open."""
    root, _ = setup
    _serve(monkeypatch, root, SIGNLAB_SHOW_CLASSMATES="1")
    at = _as(BOB, "runs", {"run": "alice-run"})
    assert not at.exception
    name = next(t for t in at.text_input if t.label == "Name")
    rename = next(b for b in at.button if "Rename" in b.label)
    assert name.disabled and rename.disabled and "Only its owner" in name.help
    at = _as(ALICE, "runs", {"run": "alice-run"})
    assert not next(t for t in at.text_input if t.label == "Name").disabled
