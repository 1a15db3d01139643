"""The view models of signlab.views, without Streamlit: what the pages, the tour and the command line show."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from signlab import figures, guide, models, views
from signlab.config import preset
from signlab.handshape import combine
from signlab.inference import (PHOTO_DOUBT_BELOW, PHOTO_UNSURE_BELOW, SHAPE_DOUBT_BELOW, SHAPE_UNSURE_BELOW,
                               UNSURE_BELOW, predict_prepared)
from signlab.labels import LETTERS
from signlab.store import RunState
from signlab.preprocess import prepare_array
from tests._local import needs_hand_models


def _batch(step, epoch, progress, seconds=10.0, speed=500.0, loss=1.0):
    return {"type": "batch", "step": step, "epoch": epoch, "progress": progress, "train_seconds": seconds,
            "samples_per_second": speed, "loss": loss}


# --------------------------------------------------------------------------- live status
def test_no_run_lets_start():
    v = views.live_status({}, [])
    assert v.can_start and not (v.can_stop or v.can_pause or v.can_resume or v.can_continue) and not v.active


def test_running_progress_time_left_and_buttons():
    v = views.live_status({"status": "running", "target_epochs": 3}, [_batch(5, 1, 0.25, seconds=10.0)])
    assert v.kind == "progress" and v.progress == 0.25 and v.epoch == 1 and v.target_epochs == 3
    assert v.seconds_left == pytest.approx(30.0)  # 10 s for a quarter: 30 s for the rest
    assert v.message == "epoch 1/3 · 500 images/s · about 30 s left"
    assert v.active and v.can_stop and v.can_pause and not v.can_resume and not v.can_start
    assert v.pause_label == "⏸ Pause"


def test_a_run_taken_up_again_after_its_process_died_says_so():
    """A teacher's walk killed the server and its worker at epoch 3 of 5: the student's page said only
    "epoch 3/5 · about 24 s left", then "Finished 5 epochs", never that the run had been taken up again.
    Said from the store's record of it (``taken_up``), from where it went on: a run whose process died
    before any epoch finished has no kept epoch to go on from."""
    said = "Its training process stopped once (a server restart, or its worker stopped or killed)"
    assert views.taken_up_text({"taken_up": {"times": 1, "epoch": 2}}) == (
        f"🔁 {said}, and signlab took the run up again from epoch 2, whose weights were kept.")
    assert views.taken_up_text({"taken_up": {"times": 2, "epoch": 0}}).endswith(
        "stopped twice (a server restart, or its worker stopped or killed), and signlab took the run up again "
        "from its start (no epoch had finished).")
    assert "stopped 3 times" in views.taken_up_text({"taken_up": {"times": 3, "epoch": 1}})
    for never in (None, {}, {"times": 0}, {"times": True}, "twice"):  # none, or not ours to read
        assert views.taken_up_text({"taken_up": never}) == ""


def test_paused_relabels_the_button_resume():
    v = views.live_status({"status": "paused", "control": "pause", "target_epochs": 2}, [_batch(5, 1, 0.5)])
    assert v.paused and v.can_resume and not v.can_pause and v.pause_label == "⏯ Resume"
    assert "· paused" in v.message
    # Resume pressed while the slot it gave up is taken: it says it waits, and Resume is not offered again
    v = views.live_status({"status": "paused", "control": None, "target_epochs": 2}, [_batch(5, 1, 0.5)])
    assert v.paused and not v.can_resume and not v.can_pause and v.can_stop
    assert "· resuming as soon as a slot is free" in v.message
    # how long it may stay paused (the class's max_pause_minutes), said beside the buttons
    said = "paused; press Resume to go on (after 60 min paused it stops, keeping its last finished epoch)"
    v = views.live_status({"status": "paused", "control": "pause", "message": said}, [_batch(5, 1, 0.5)])
    assert v.notice == "Paused; press Resume to go on (after 60 min paused it stops, keeping its last finished epoch)."


def test_a_run_from_another_tab_keeps_start_and_says_so():
    v = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)], elsewhere=True)
    assert v.can_start and v.can_stop and "another tab or session" in v.notice
    # the tab that follows its own run has Start off, and now says why (the other tab's words said
    # Start works, this one's nothing)
    here = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)])
    assert not here.can_start and here.notice == (
        "**Start** is off while this page follows this run (it trains). To queue another, to train after this one, "
        "open Train in a new tab, where Start is on.")
    # small print, not a box: as a box it pushed the live chart below the fold of a 1280x900 window;
    # the other tab's words (its Start works) stay a box
    assert here.notice_aside and not v.notice_aside
    queued = views.live_status({"status": "queued"}, [], elsewhere=True, queue_position=2)
    assert queued.notice.startswith("This is your run that is waiting in the queue, started in another tab")
    # "beside it" only where two runs train at once: on a one-slot server the next run waits for this one
    assert v.notice.endswith("**Start** queues another one after it (this server trains one run at a time), "
                             "with the settings below."), v.notice
    two = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)], elsewhere=True, job_limit=2)
    assert two.notice.endswith("**Start** trains another one beside it, with the settings below.")
    beside = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)], job_limit=2)
    assert "To start another beside it, open Train in a new tab" in beside.notice


def test_start_is_off_and_says_why_at_the_quota():
    """'Start trains another one beside it' sat under the quota's refusal to start one."""
    why = "you have 3 runs queued or training, and the limit is 3 at a time; wait for one to finish, or stop one"
    v = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)], elsewhere=True, start_refused=why)
    assert not v.can_start and v.can_stop
    assert v.notice.endswith(f"**Start** is off: {why}.") and "beside it" not in v.notice
    followed = views.live_status({"status": "completed", "epochs_completed": 2}, [], start_refused=why)
    assert not followed.can_start and followed.notice == f"**Start** is off: {why}."
    none = views.live_status({}, [], start_refused=why)
    assert not none.can_start and why in none.notice
    # Continue is a start too: it was on, and refused after the click
    kept = views.live_status({"status": "stopped", "epochs_completed": 1}, [], has_weights=True, start_refused=why)
    assert not kept.can_continue and kept.notice == f"**Start** and **Continue** are off: {why}."
    assert views.live_status({"status": "stopped", "epochs_completed": 1}, [], has_weights=True).can_continue


def test_not_mine_disables_every_control_but_start():
    v = views.live_status({"status": "running"}, [_batch(5, 1, 0.5)], mine=False)
    assert v.can_start and not (v.can_stop or v.can_pause or v.can_resume)


def test_queued_names_its_place():
    v = views.live_status({"status": "queued"}, [], queue_position=2, job_limit=1)
    assert v.kind == "info" and v.queue_position == 2 and "number 2 in the queue" in v.message
    assert "1 training job at a time" in v.message and v.active and v.can_stop
    # queued again after its worker died: the page says so, with the store's words (kill -9 of a worker
    # read "waiting for a free slot" as for a run never started)
    said = "the training process stopped unexpectedly; it is queued to continue from epoch 6, whose weights are kept"
    v = views.live_status({"status": "queued", "message": said}, [], queue_position=1, job_limit=1)
    assert v.message.startswith("⏳ The training process stopped unexpectedly") and "whose weights are kept. Waiting" in v.message
    assert "stopped" not in views.live_status({"status": "queued", "message": "waiting in the queue"}, [],
                                              queue_position=1).message
    # and after its worker was shut down (SIGTERM): the page said only "Waiting for a free slot"
    said = ("the training process was shut down (its worker was stopped); it is queued to continue from "
            "epoch 1, whose weights are kept")
    v = views.live_status({"status": "queued", "message": said}, [], queue_position=1, job_limit=1)
    assert v.message.startswith("⏳ The training process was shut down (its worker was stopped)"), v.message


def test_starting_without_batches():
    v = views.live_status({"status": "claimed"}, [])
    assert v.progress == 0.0 and "starting" in v.message and v.seconds_left is None


def test_continued_run_times_its_own_fit():
    """A continued run's log holds the earlier fit: time left comes from the latest one."""
    records = [_batch(10, 1, 0.5, seconds=5), _batch(20, 1, 1.0, seconds=10), _batch(4, 2, 0.2, seconds=2)]
    v = views.live_status({"status": "running", "target_epochs": 2, "epochs_completed": 1}, records)
    assert v.epoch == 2 and v.progress == 0.2 and v.seconds_left == pytest.approx(8.0)


@pytest.mark.parametrize("state,kind,word", [("completed", "success", "Finished 3 epochs"),
                                             ("stopped", "info", "Stopped: by request"),
                                             ("diverged", "warning", "Diverged"), ("failed", "error", "failed")])
def test_final_states(state, kind, word):
    v = views.live_status({"status": state, "epochs_completed": 3, "train_seconds": 4.0, "test_accuracy": 0.9,
                           "message": "by request"}, [], has_weights=True)
    assert v.kind == kind and word in v.message and not v.active and v.can_start
    assert v.can_continue and not v.can_stop


def test_a_stopped_run_says_so_once_and_what_is_kept():
    v = views.live_status({"status": "stopped", "epochs_completed": 15, "message": "stopped by request during epoch 16"},
                          [], has_weights=True)
    assert v.message == ("⏹ Stopped by request during epoch 16. The weights after epoch 15 are kept: Continue "
                         "trains on from there.")
    v = views.live_status({"status": "stopped", "epochs_completed": 0, "message": "stopped by request during epoch 1"}, [])
    assert v.message.endswith("No epoch finished, so there are no weights to keep.")
    # a classmate's run, read-only: they have no Continue, so none is promised
    v = views.live_status({"status": "stopped", "epochs_completed": 2, "message": "stopped by request during epoch 3"},
                          [], has_weights=True, mine=False)
    assert v.message.endswith("The weights after epoch 2 are kept.") and not v.can_continue



def test_a_stop_the_student_pressed_is_not_an_alarm_about_threads():
    """A Stop on a busy machine read "Stopped by request after epoch 4; on one thread after step 1650:
    another program kept this computer's processor busy…" in a yellow warning: the note about threads
    came first, as if something had gone wrong. It is blue now, and the note follows what is kept."""
    message = ("stopped by request during epoch 5; on one thread after step 1650: another program kept this "
               "computer's processor busy, and its threads were waiting for each other")
    v = views.live_status({"status": "stopped", "epochs_completed": 4, "message": message}, [], has_weights=True)
    assert v.kind == "info"
    assert v.message == ("⏹ Stopped by request during epoch 5. The weights after epoch 4 are kept: Continue trains on "
                         "from there. (It trained on one thread after step 1650: another program kept this computer's "
                         "processor busy, and its threads were waiting for each other.)")
    # and the Runs page's line: who stopped it and when, then the threads, aside (a teacher read it as a fault)
    said = views.completed_message({"status": "stopped", "message": message, "stopped_by": "teach@uni.edu"})
    assert said == ("stopped by teach@uni.edu during epoch 5 (it trained on one thread after step 1650: another program "
                    "kept this computer's processor busy, and its threads were waiting for each other)")


def test_completed_names_the_validation_accuracy_until_the_test_accuracy_is_written():
    # validation is the network alone, the test accuracy adds test-time shifts: they can differ
    status = {"status": "completed", "epochs_completed": 2, "train_seconds": 16.7, "val_accuracy": 1.0,
              "updated": 1000.0}
    waiting = views.live_status(status, [], now=1005.0)
    assert ": **100.00%** on the test images, as the chart read them; the test accuracy follows" in waiting.message
    # named "validation accuracy" only where the chart validates on images held out from training
    held = views.live_status(status, [], now=1005.0, validated_on_test=False)
    assert ": **100.00%** validation accuracy; the test accuracy follows" in held.message
    assert waiting.awaiting_test  # the Train page looks again until the test accuracy is there
    after = views.live_status({**status, "test_accuracy": 0.99986, "val_accuracy": 0.99986}, [], now=1006.0)
    assert after.message.endswith(": **99.99%** test accuracy.") and not after.awaiting_test
    # the two disagree (a fast-preset run: 100% on the chart, 99.74% with the shifts): both are named
    differ = views.live_status({**status, "test_accuracy": 0.9974}, [], now=1006.0)
    assert ": **99.74%** test accuracy. The chart read 100.00% on the same test images: it asks the network " \
        "once an image, while the test accuracy averages its answers for each image and four copies moved by " \
        "one pixel (test-time shifts), which moved it down by 0.26 points." in differ.message, differ.message
    # the difference of the numbers shown: 99.7051% and 99.6949% read 99.71 and 99.69, moved by 0.02 (said 0.01)
    close = views.live_status({**status, "test_accuracy": 0.997051, "val_accuracy": 0.996949}, [], now=1006.0)
    assert "The chart read 99.69%" in close.message and "moved it up by 0.02 points" in close.message, close.message
    held_out = views.live_status({**status, "test_accuracy": 0.9974}, [], now=1006.0, validated_on_test=False)
    assert "The chart read 100.00% on images held out from training, not the test images." in held_out.message
    unshifted = views.live_status({**status, "test_accuracy": 0.9974}, [], now=1006.0, shifted=False)
    assert "test-time shifts" not in unshifted.message and "100.00% on the same test images" in unshifted.message
    # a test accuracy that never comes (its evaluation failed) is not waited for past a minute
    late = views.live_status(status, [], now=1000.0 + views.AWAIT_TEST_SECONDS + 1)
    assert not late.awaiting_test and late.message.endswith(": **100.00%** on the test images, as the chart read them.")


def test_completed_shows_accuracy_only_when_known():
    v = views.live_status({"status": "completed", "epochs_completed": 1, "test_accuracy": float("nan")}, [])
    assert "nan" not in v.message and v.message.endswith(".")


def test_time_left_follows_the_recent_pace():
    """On a busy server the pace fell from 754 to 57 images a second mid-run, and the whole run's
    pace said "about 28 s left" for three minutes: the time left reads the last quarter's pace."""
    steady = [{"progress": k / 10, "train_seconds": float(k)} for k in range(1, 6)]  # 10% a second
    assert views.fit_seconds_left(steady) == pytest.approx(5.0)  # the same as the whole pace
    slowed = steady + [{"progress": 0.55, "train_seconds": 10.0}]  # 5% in the last 5 s: 1% a second
    assert views.seconds_left(0.55, 10.0) == pytest.approx(10 * 0.45 / 0.55)  # the whole pace: about 8 s
    assert views.fit_seconds_left(slowed) == pytest.approx(45.0)  # the recent pace: 45% at 1% a second
    assert views.fit_seconds_left([{"progress": 0.02, "train_seconds": 1.0}]) is None  # too early to say
    assert views.fit_seconds_left([]) is None
    # too little done in the last quarter to read a pace: the whole one
    flat = [{"progress": 0.5, "train_seconds": 5.0}, {"progress": 0.505, "train_seconds": 7.0}]
    assert views.fit_seconds_left(flat) == pytest.approx(views.seconds_left(0.505, 7.0))
    # where the recent and the whole pace differ more than twofold, the line says both, as a range (a
    # walk on a machine whose load swung read "about 28 s", "17 min", then "9 min" left in one run)
    line = views.live_status({"status": "running"}, [{"type": "batch", "step": k, "epoch": 1, **r}
                                                     for k, r in enumerate(slowed, 1)]).message
    # (the whole pace read from the first logged step on: 45% in 9 s)
    assert line.endswith("· about 9 s to 45 s left (the pace is changing)"), line
    steady_line = views.live_status({"status": "running"}, [{"type": "batch", "step": k, "epoch": 1, **r}
                                                            for k, r in enumerate(steady, 1)]).message
    assert steady_line.endswith("· about 5 s left"), steady_line


def test_time_left_leaves_out_the_start_before_the_first_logged_step():
    """A fast-preset run on a busy server (a student's walk): its 10th step was logged after 8.0 s (the
    worker's start, the first build, the precision check), then 10 steps every 0.31 s. The page read
    "about 2 min left" with 13 s to go; the pace is read from the first logged step."""
    fit = [{"type": "batch", "step": s, "epoch": 1, "progress": s / 430, "train_seconds": 8.04 + 0.031 * (s - 10),
            "samples_per_second": 4118.0} for s in range(10, 40, 10)]
    left = views.fit_seconds_left(current := views.current_fit(fit))
    assert left == pytest.approx(0.031 * (430 - 30), rel=1e-6) and current == fit  # 12.4 s, not 115 s
    line = views.live_status({"status": "running"}, fit).message
    assert line.endswith("· about 12 s left"), line  # one figure: the whole pace agrees once the start is left out
    # the command line's bar reads the same pace (its first step is its origin)
    assert views.seconds_left(30 / 430, 8.66, (10 / 430, 8.04)) == pytest.approx(left, rel=1e-6)


def test_progress_text_is_the_command_lines_too():
    assert views.progress_text(2, 5, images_per_second=1234.0, seconds_left=75.0) == "epoch 2/5 · 1,234 images/s · about 75 s left"
    assert views.progress_text(1, 1, images_per_second=None, seconds_left=None, paused=True) == "epoch 1/1 · paused"
    # paused: no pace, and the time is training's still to come ("about 21 s left · paused" read as an end)
    assert views.progress_text(2, 5, images_per_second=1234.0, seconds_left=21.0, paused=True) == (
        "epoch 2/5 · paused · about 21 s of training left")
    assert views.progress_text(2, 5, images_per_second=1.0, seconds_left=8.0, whole_left=45.0, paused=True) == (
        "epoch 2/5 · paused · about 8 s to 45 s of training left (the pace is changing)")
    assert views.seconds_left(0.0, 3.0) is None and views.seconds_left(0.5, 3.0) == pytest.approx(3.0)
    # the first steps' pace is no guide: no estimate before 5% of the fit is done
    assert views.seconds_left(0.02, 1.5) is None and views.seconds_left(0.05, 1.0) == pytest.approx(19.0)
    # a long run says its time left after 10 s, before 5% of it is done (100 steps of the lecture
    # ConvNet on a busy server showed none)
    assert views.seconds_left(0.01, 12.0) == pytest.approx(12.0 * 0.99 / 0.01)
    assert views.live_status({"status": "running", "target_epochs": 3}, [_batch(1, 1, 0.01, seconds=2.0)]).message \
        == "epoch 1/3 · 500 images/s"


def test_a_logged_step_that_is_no_whole_number_is_left_out_of_the_curves():
    """A hand-edited log line with "step": null (or text) raised TypeError on the Train and Runs pages."""
    batches = [_batch(10, 1, 0.5), {**_batch(20, 1, 1.0), "step": None}, {**_batch(25, 1, 1.0), "step": "x"},
               {**_batch(26, 1, 1.0), "step": True}, _batch(30, 1, 1.0)]
    assert [b["step"] for b in views.continued_steps(batches)] == [10, 30]


def test_continued_steps_never_go_back():
    batches = [_batch(10, 1, 0.5), _batch(20, 1, 1.0), _batch(10, 2, 0.5), _batch(20, 2, 1.0), _batch(5, 3, 0.5)]
    steps = [b["step"] for b in views.continued_steps(batches)]
    assert steps == [10, 20, 30, 40, 45]
    assert [b["step"] for b in views.current_fit(batches)] == [5]
    assert views.continued_steps([]) == []
    # killed partway through epoch 2 (steps 30-35), continued from epoch 1: epoch 2 is trained again,
    # and the killed fit's part of it is not drawn as training (it went on from step 35 before)
    killed = [_batch(10, 1, 0.5), _batch(20, 1, 1.0), _batch(30, 2, 0.5), _batch(35, 2, 0.75),
              _batch(10, 2, 0.5), _batch(20, 2, 1.0)]
    assert [(b["step"], b["epoch"]) for b in views.continued_steps(killed)] == [(10, 1), (20, 1), (30, 2), (40, 2)]


def test_run_heading_uses_the_name():
    assert views.run_heading("my first run", "logreg-20260101-x") == "Run my first run"
    assert views.run_heading(None, "logreg-1") == "Run logreg-1"
    assert views.run_heading("20260101-logreg-ab", "20260101-logreg-ab", "logreg") == "Your logreg run"
    # a name of the user's own is never recased, whatever its first word
    assert views.run_heading("your best one", "20260101-logreg-ab", "logreg") == "Run your best one"


def test_config_line():
    line = views.config_line(preset("robust"), "CPU")
    assert line.startswith("fastcnn ×3 · equalize · photo-like augmentation · batch 128") and line.endswith(" · CPU")
    assert views.config_line(preset("lecture", model="logreg")) == "logreg · batch 32 · lr 0.001 · adam · constant"


def test_my_active_run_finds_the_users_running_run():
    class R:
        def __init__(self, status, owner):
            self.s, self.owner = status, owner

        def summary(self):
            return {"status": self.s}

    runs = [R("completed", "me"), R("running", "bob"), R("queued", "me"), R("running", "me")]
    # the run training, not the newer one queued behind it: a new tab showed the queued one and
    # hid the training run and its live chart
    assert views.my_active_run(runs, lambda r: r.owner == "me") is runs[3]
    assert views.my_active_run(runs[:3], lambda r: r.owner == "me") is runs[2]
    assert views.my_active_run(runs[:2], lambda r: r.owner == "me") is None


def test_completed_message_counts_the_whole_run():
    assert views.completed_message({"message": "trained 1 epoch(s)", "epochs": 3}) == "trained 3 epochs"
    assert views.completed_message({"message": "trained 1 epoch", "epochs": 1}) == "trained 1 epoch"
    assert views.completed_message({"message": "trained 2 epochs", "epochs": 5}) == "trained 5 epochs"
    assert views.completed_message({"message": "stopped by request", "epochs": 3}) == "stopped by request"


# --------------------------------------------------------------------------- estimates
def test_a_network_this_server_has_not_trained_gets_a_guess_from_one_of_like_size():
    """"The time it takes shows after its first steps" left a student to start the lecture ConvNet,
    11 minutes on a busy server, blind. A network nearest in mult-adds an image (within 10x) lends
    its speed, scaled by the two networks' work and the batch sizes, said as a guess."""
    lecture = preset("lecture")  # seed_convnet: 6.2 M mult-adds an image, batch 32, 10 epochs
    s2net = {"status": "completed", "model": "s2net", "ensemble": 1, "batch_size": 128, "samples_per_second": 10_000.0}
    speed, like = views.guessed_speed([s2net], lecture)
    ratio = models.mult_adds("s2net") / models.mult_adds("seed_convnet")
    assert like == "s2net" and speed == pytest.approx(10_000 * ratio * (32 / 128) ** 0.5)
    said = views.time_estimate(lecture, [s2net])
    assert said == (f"it takes {views.duration(views.training_images(lecture) / speed).replace('about', 'roughly')}"
                    " of training on this server, guessed from the server's s2net runs and how much work an image is for "
                    "each network (no run here "
                    "has trained seed_convnet yet)")
    assert views.time_estimate(lecture, [s2net], busy=1) == said + ", longer while 1 other run trains here"
    # logistic regression's speed is its overheads': 330 times less work says nothing of a ConvNet
    logreg = {**s2net, "model": "logreg", "samples_per_second": 89_000.0}
    assert views.guessed_speed([logreg], lecture) is None
    assert views.time_estimate(lecture, [logreg]).startswith("the time it takes shows after its first steps")
    assert views.guessed_speed([logreg, s2net], lecture)[1] == "s2net"  # the nearer in work
    # the robust preset's three fastcnn networks, on a server that trained one: not "no run here has trained fastcnn yet"
    robust = preset("robust")
    one = {**s2net, "model": robust.model, "batch_size": robust.batch_size, "samples_per_second": 3000.0}
    said = views.time_estimate(robust, [one])
    assert said.endswith(f"guessed from the server's {robust.model} runs and how much work an image is for each "
                         f"network (no run here has trained "
                         f"an ensemble of {robust.ensemble} {robust.model} networks yet)"), said
    # an aside that times nothing guesses nothing either (Classify's robust "roughly 51 s" took 146 s)
    assert views.time_estimate(robust, [one], guess=False).startswith("the time it takes shows after its first steps")


def test_time_estimate_from_this_servers_speed():
    cfg = preset("fast")
    rows = [{"status": "completed", "model": cfg.model, "ensemble": 1, "samples_per_second": 1000.0},
            {"status": "running", "model": cfg.model, "samples_per_second": 1.0},  # unfinished: not counted
            {"status": "completed", "model": "logreg", "samples_per_second": 1e6}]  # another model
    seconds = views.training_images(cfg, 27_455) / 1000.0
    assert views.measured_speed(rows, cfg) == 1000.0
    # no overhead measured yet (a run that has just finished): said as training time
    assert views.time_estimate(cfg, rows) == f"it takes {views.duration(seconds)} of training on this server"
    assert views.time_estimate(cfg, rows[1:]) == ("the time it takes shows after its first steps (no run on this "
                                                  "server has trained s2net yet)")
    # runs training now share the cores: the estimate says so (measured alone, it was too short)
    assert views.time_estimate(cfg, rows, busy=1).endswith("on this server, longer while 1 other run trains here")
    assert views.time_estimate(cfg, rows, busy=2).endswith(", longer while 2 other runs train here")
    assert views.time_estimate(cfg, rows, busy=1, slots=2).endswith(", longer while 1 other run trains here")
    # other work on the machine (load 5 on 2 cores): a walk read "roughly 41 s" and waited 133 s
    assert views.time_estimate(cfg, rows, machine_load=5.0, cores=2).endswith(
        "on this server; other work keeps this machine busy now (load 5.0 on 2 cores), so it may take longer")
    assert views.time_estimate(cfg, rows, machine_load=1.2, cores=2).endswith("on this server")  # a quiet machine
    assert "busy now" not in views.time_estimate(cfg, rows, busy=1, machine_load=3.0, cores=2)  # that is our run
    # a full server: the run waits first (on a one-slot class server "longer while 1 other run trains
    # here" said it would share the cores)
    assert views.time_estimate(cfg, rows, busy=1, slots=1, waiting=2).endswith(
        "on this server; first it waits, as the server's one training slot is taken now and 2 runs wait in the queue")
    assert views.time_estimate(cfg, rows, busy=3, slots=3).endswith(
        "; first it waits, as all 3 of the server's training slots are taken now")
    # a network not trained here yet: the wait for the slot is still said (a class's first day)
    assert views.time_estimate(cfg, rows[1:], busy=1, slots=1).endswith(
        "(no run on this server has trained s2net yet); first it waits, as the server's one training slot is taken now")
    # the rest of the wait, as this server's runs of the model took it an epoch, for as many epochs:
    # the median of this model's (10 s), not another model's 600 s
    timed = [{**rows[0], "overhead_per_epoch": 15.0}, {**rows[0], "overhead_per_epoch": 5.0},
             {**rows[0], "overhead_per_epoch": 10.0}, {**rows[2], "overhead_per_epoch": 600.0}]
    assert seconds + 2 * 10.0 < 90  # said in seconds: the 20 s added show
    assert views.time_estimate(cfg, timed) == (f"it takes {views.duration(seconds + 2 * 10.0)} on this server "
                                               f"({views.duration(seconds).removeprefix('about ')} of it training)")
    long = preset("fast", epochs=20)  # 549 s of training and 200 s more: about 9 and about 12 min
    assert views.time_estimate(long, timed) == "it takes about 12 min on this server (9 min of it training)"
    # an overhead lost in the rounding says nothing of it ("about 9 min (9 min of it training)" read oddly)
    small = [{**rows[0], "overhead_per_epoch": 0.1}]
    assert views.time_estimate(long, small) == "it takes about 9 min on this server"
    # once a run's share is added once (a 1-epoch run's 3.7 s start-up, counted per epoch, made a
    # 10-epoch estimate say 54 s for 15 s); runs that recorded none are read as before, only alone
    split = [{**rows[0], "overhead_per_epoch": 0.3, "overhead_fixed": 30.0}, *timed]
    assert views.estimate(long, split).whole == pytest.approx(views.estimate(long, split).training + 30.0 + 20 * 0.3)
    assert views.estimate(long, timed).whole == pytest.approx(views.estimate(long, timed).training + 20 * 10.0)
    # a speed of 0 is no measurement: it does not hide the ones there are
    assert views.measured_speed([{**rows[0], "samples_per_second": 0.0}] * 4 + rows, cfg) == 1000.0
    # a run of the same batch size and width speaks for the fast preset before a sweep's batch-32 trial
    trial = {**rows[0], "batch_size": 32, "width": 24, "samples_per_second": 300.0}
    fast_run = {**rows[0], "batch_size": cfg.batch_size, "width": None}
    assert views.measured_speed([trial, fast_run], cfg) == 1000.0
    assert views.measured_speed([trial], cfg) == 300.0  # none alike: any run of the network says something
    # the lecture ConvNet trains at the fixed one's speed (the same layers): one's measurement serves both
    lecture = preset("lecture", model="seed_convnet")
    fixed_run = {"status": "completed", "model": "convnet", "ensemble": 1, "batch_size": lecture.batch_size,
                 "width": None, "samples_per_second": 700.0}
    assert views.measured_speed([fixed_run], lecture) == 700.0
    assert views.measured_speed([fixed_run], preset("fast")) is None


def test_a_network_neither_trained_nor_guessed_is_timed_from_a_trial():
    """A student whose only run was a logistic regression (too little work an image to guess a ConvNet
    from) read that the time "shows after its first steps" at the tour's lecture ConvNet, and started
    an 11-minute run blind: a trial of a few steps says it."""
    lecture = preset("lecture", model="seed_convnet")
    logreg = [{"status": "completed", "model": "logreg", "ensemble": 1, "samples_per_second": 60_000.0}]
    assert views.estimate(lecture, logreg) is None  # no guess from logistic regression
    seconds = views.training_images(lecture, 27_455) / 500.0  # 10 epochs at 500 images a second: 549 s
    est = views.estimate(lecture, logreg, trial=500.0)
    assert est is not None and est.timed and est.training == pytest.approx(seconds) and est.like is None
    assert views.time_estimate(lecture, logreg, trial=500.0) == (
        "it takes roughly 9 min of training on this server, timed from a few of its steps here (no run here "
        "has trained seed_convnet yet; loading the data and checking the accuracy add to it)")
    assert views.time_estimate(lecture, logreg, trial=500.0, busy=1).endswith(
        "accuracy add to it), longer while 1 other run trains here")
    # the robust preset's three networks together, as the guess says it
    assert "(no run here has trained an ensemble of 3 fastcnn networks yet;" in views.time_estimate(preset("robust"), [], trial=900.0)
    assert "(no run on this server has trained an ensemble of 3 fastcnn networks yet)" in views.time_estimate(preset("robust"), [])
    # no trial, or a useless one: as before
    for trial in (None, 0.0, -1.0, float("nan"), float("inf")):
        assert views.time_estimate(lecture, logreg, trial=trial).startswith("the time it takes shows after its first steps")
    # what the server measured wins over a trial
    fixed_run = {"status": "completed", "model": "convnet", "ensemble": 1, "batch_size": lecture.batch_size,
                 "width": None, "samples_per_second": 700.0}
    assert views.estimate(lecture, [fixed_run], trial=500.0) == views.estimate(lecture, [fixed_run])
    # a stopped run measured its speed too: a robust run stopped after 3 epochs (1,675 images a second)
    # left the page guessing from a ConvNet, 3 times too fast
    robust = preset("robust")
    stopped = {"status": "stopped", "model": "fastcnn", "ensemble": 3, "batch_size": robust.batch_size,
               "width": robust.width, "samples_per_second": 1675.0, "overhead_per_epoch": 99.0}
    est = views.estimate(robust, [stopped, fixed_run], trial=9999.0)
    assert est.like is None and not est.timed
    assert est.training == pytest.approx(views.training_images(robust, 27_455) / 1675.0)
    assert est.whole == est.training  # a stopped run's overhead was cut short: not counted
    assert views.estimate(robust, [{**stopped, "status": "failed"}, fixed_run]).like == "convnet"  # a failure measured nothing
    # a trial wins over a guess from another network: work an image leaves out the robust preset's
    # photo-like augmentation (59 s guessed from a ConvNet, about 3 min taken)
    s2 = {"status": "completed", "model": "s2net", "ensemble": 1, "batch_size": 32, "samples_per_second": 4800.0}
    assert views.estimate(lecture, [s2], trial=500.0).timed
    assert views.estimate(lecture, [s2]).like == "s2net"  # no trial (none could run): the guess


def test_training_images_follow_max_steps_and_holdout():
    cfg = preset("fast", epochs=2, max_steps=10, batch_size=32)
    assert views.training_images(cfg, 1000) == 320
    assert views.training_images(preset("fast", epochs=2, val_fraction=0.1), 1000) == 1800


def test_duration_words():
    assert views.duration(0.2) == "about 1 s" and views.duration(45) == "about 45 s"
    assert views.duration(600) == "about 10 min" and views.duration(float("nan")) == views.DASH
    # seconds up to a minute and a half ("about 1 min" for 75 s hid half a minute), minutes after
    assert views.duration(75) == "about 75 s" and views.duration(89.4) == "about 89 s"
    assert views.duration(90) == "about 2 min"
    # a guess says so, and a figure inside a rough one does not repeat "about"
    assert views.duration(40, "roughly") == "roughly 40 s" and views.duration(600, "") == "10 min"
    assert views.duration(None, "") == views.duration(None, "roughly") == views.DASH


def test_the_loss_line_is_smoothed_over_a_fortieth_and_drawn_with_at_most_1500_points():
    """The smoothing window (n // 40 on each side) and the point cap were unpinned: a window four
    times wider, or a chart of every one of 5,000 points, passed every test."""
    from signlab import figures

    step = np.r_[np.zeros(200), np.ones(200)]  # a jump at the middle of 400 points
    smoothed = figures.smooth(step)
    changing = np.flatnonzero((smoothed > 0) & (smoothed < 1))
    assert len(changing) == 2 * (400 // 40), changing  # 10 points each side of the jump
    batches = [{"step": k, "epoch": 1, "loss": 1 / k} for k in range(1, 5001)]
    lines = figures.loss_lines(batches)
    assert [len(ln["x"]) for ln in lines] == [1500, 1500]
    assert lines[0]["x"][0] == 1 and lines[0]["x"][-1] == 5000  # the first and the last step kept


# --------------------------------------------------------------------------- verdict
def _probs(top: float, second_letter: int = 1) -> np.ndarray:
    p = np.full(len(LETTERS), (1 - top - 0.1) / (len(LETTERS) - 2))
    p[0], p[second_letter] = top, 0.1
    return p


def test_verdict_sure():
    v = views.verdict(_probs(0.95), photo=True)
    assert v.kind == "sure" and v.letter == "A" and not v.warnings and "**A**" in v.headline and not v.advice
    assert len(v.top) == 5 and v.top[0]["letter"] == "A"


def test_verdict_not_sure_on_a_drawing():
    v = views.verdict(_probs(UNSURE_BELOW - 0.05), photo=False)
    assert v.kind == "unsure" and v.headline.startswith("Not sure: perhaps A")
    assert "A drawing is not a photo" in v.advice and v.warnings == (f"the model is not sure: its best letter gets "
                                                                     f"{UNSURE_BELOW - 0.05:.0%}",)


def test_verdict_photo_doubt_between_the_thresholds():
    top = (PHOTO_UNSURE_BELOW + PHOTO_DOUBT_BELOW) / 2
    v = views.verdict(_probs(top), photo=True)
    assert v.kind == "doubt" and v.headline.startswith("Perhaps A") and "may well be wrong" in v.warnings[0]


def test_verdict_photo_tiers_sit_higher_where_the_hand_shape_weighed_in():
    """The product of two readings runs more confident: its tiers are its own."""
    assert SHAPE_UNSURE_BELOW >= PHOTO_UNSURE_BELOW and SHAPE_DOUBT_BELOW > PHOTO_DOUBT_BELOW
    p = (PHOTO_DOUBT_BELOW + SHAPE_DOUBT_BELOW) / 2  # sure for the image model alone, not for the product
    assert views.verdict(_probs(p), photo=True).kind == "sure"
    combined = views.verdict(_probs(p), photo=True, shape=True)
    assert combined.kind in ("unsure", "doubt") and combined.warnings
    doubt = views.verdict(_probs((SHAPE_UNSURE_BELOW + SHAPE_DOUBT_BELOW) / 2), photo=True, shape=True)
    assert doubt.kind == "doubt" and f"{SHAPE_UNSURE_BELOW:.0%}–{SHAPE_DOUBT_BELOW:.0%}" in doubt.advice
    assert views.verdict(_probs(0.99), photo=True, shape=True).kind == "sure"


def test_verdict_unusual_input_comes_first():
    v = views.verdict(_probs(0.99), photo=True, unusual=["it is almost all one shade"])
    assert v.kind == "unusual" and v.warnings == ("it is almost all one shade",)
    assert "A guess, not to be trusted" in v.headline and "- it is almost all one shade" in v.advice


def test_read_sign_runs_the_pipeline(tiny_model):
    x = np.zeros((28, 28), np.float32)
    x[6:22, 8:20] = 0.8
    prepared = prepare_array(x)
    v = views.read_sign(tiny_model, prepared, photo=False)
    assert math.isclose(float(v.probs.sum()), 1.0, rel_tol=1e-4) and len(v.top) == 5
    # the model's own reading of the prepared image, not some other: its probabilities, its best letter
    assert np.allclose(v.probs, predict_prepared(tiny_model, prepared), atol=1e-6)
    assert v.letter == LETTERS[int(np.argmax(v.probs))] and v.top[0]["letter"] == v.letter
    assert v.confidence == pytest.approx(float(v.probs.max()))


@pytest.fixture
def tiny_model():
    from signlab.models import create_model

    return create_model("logreg").eval()


# --------------------------------------------------------------------------- tables
def test_latest_runs_never_show_nan():
    rows = views.latest_runs_rows([
        {"name": "a", "model": "logreg", "status": "running", "epochs": 0, "test_accuracy": float("nan"),
         "train_seconds": float("nan")},
        {"name": "b", "model": "logreg", "status": "completed", "epochs": 1, "test_accuracy": 0.5,
         "train_seconds": 2.0},
        {"name": "c", "model": "logreg", "status": "failed", "epochs": 0, "test_accuracy": None,
         "train_seconds": None}])
    assert rows[0]["test accuracy"] == "training…" and rows[0]["training time"] == "training…"
    assert rows[1]["test accuracy"] == "50.00%" and rows[1]["training time"] == "2.0 s, 1 epoch"
    assert rows[2]["test accuracy"] == "failed" and rows[2]["training time"] == views.DASH and "nan" not in str(rows)
    # four columns, so the table fits a phone (with six it was 461 px wide on a 358-px screen): a run that
    # did not complete says so beside the accuracy it has
    assert list(rows[0]) == ["name", "model", "test accuracy", "training time"]
    # a run that completed moments ago, its test accuracy still being measured, says so ("—" read as
    # nothing to come); one whose accuracy never came, a minute on, keeps the dash
    done = {"name": "e", "model": "logreg", "status": "completed", "epochs": 2, "val_accuracy": 0.6,
            "test_accuracy": None, "train_seconds": 2.0, "updated": 1000.0}
    assert views.latest_runs_rows([done], now=1005.0)[0]["test accuracy"] == "measuring…"
    assert views.latest_runs_rows([done], now=1000.0 + views.AWAIT_TEST_SECONDS)[0]["test accuracy"] == views.DASH
    [stopped] = views.latest_runs_rows([{"name": "d", "model": "mlp", "status": "stopped", "epochs": 2,
                                         "test_accuracy": 0.87, "train_seconds": 9.0}])
    assert stopped["test accuracy"] == "stopped: 87.00%" and stopped["training time"] == "9.0 s, 2 epochs"
    # an unnamed run by when it started, as the pickers name it, not by its raw id
    rid = "20261204-043250-seed_convnet-e1e4f1ac06"
    [row] = views.latest_runs_rows([{"run_id": rid, "name": rid, "model": "seed_convnet", "status": "completed",
                                     "epochs": 1, "test_accuracy": 0.3, "train_seconds": 1.0}])
    assert row["name"] == views.md("4 Dec 04:32:50")  # escaped for st.table's markdown; it reads 4 Dec 04:32:50
    # an ensemble says how many networks, as Evaluate does ("fastcnn ×3"; Home said "fastcnn")
    [robust, plain] = views.latest_runs_rows([
        {"name": "r", "model": "fastcnn", "ensemble": 3, "status": "completed", "epochs": 12, "test_accuracy": 1.0,
         "train_seconds": 190.0},
        {"name": "f", "model": "fastcnn", "ensemble": None, "status": "completed", "epochs": 2}])
    assert robust["model"] == "fastcnn ×3" and plain["model"] == "fastcnn"
    # an instructor's Home lists several students' runs: whose each is, as on Runs
    alice, bob = views.latest_runs_rows([
        {"name": "a", "model": "logreg", "status": "completed", "epochs": 1, "owner": "alice@school.edu"},
        {"name": "b", "model": "logreg", "status": "completed", "epochs": 1, "owner": "bob_1@school.edu"}])
    assert list(alice) == ["name", "owner", "model", "test accuracy", "training time"]
    assert (alice["owner"], bob["owner"]) == (views.md("alice@school.edu"), views.md("bob_1@school.edu"))
    assert "_" not in bob["owner"].replace("\\_", "")  # escaped for st.table's markdown


def test_hardest_letters_leave_out_perfect_ones():
    rows = [{"letter": "A", "F1": 100.0}, {"letter": "B", "F1": 90.0}, {"letter": "C", "F1": 100.0},
            {"letter": "D", "F1": 95.0}]
    assert [r["letter"] for r in views.hardest_letters(rows)] == ["B", "D"]
    assert views.hardest_letters([{"letter": "A", "F1": 100.0}]) == []
    # twelve letters at 0% (the lecture ConvNet): the three named are said to be three of them
    zero = [{"letter": c, "F1": 0.0} for c in "BCDEIL"] + [{"letter": "A", "F1": 40.0}]
    listed = views.hardest_letters(zero)
    assert [r["letter"] for r in listed] == ["B", "C", "D"] and views.tied_with_last(zero, listed) == 3
    assert views.tied_with_last(rows, views.hardest_letters(rows)) == 0 and views.tied_with_last(rows, []) == 0


def test_first_of_each():
    assert views.first_of_each(np.array([1, 0, 1, 2, 0]), 3) == [1, 0, 3]


# --------------------------------------------------------------------------- tour
def test_page_title_and_step_name():
    assert views.page_title("app_pages/kernels.py") == "Kernels" and views.page_title("app_pages/map.py") == "Map"
    assert views.step_name("2. Train logistic regression") == "Train logistic regression"


@pytest.mark.parametrize("raw,expected", [("3", 2), (1, 0), ("99", 7), ("-4", 0), ("x", 0), (None, 0)])
def test_tour_step_from_the_link(raw, expected):
    assert views.tour_step(raw, 8) == expected


@pytest.mark.parametrize("raw, words", [("abc", "step abc, and the tour has steps 1 to 8: here is step 1"),
                                        ("99", "here is step 8"), ("0", "here is step 1"), ("-3", "here is step 1"),
                                        ("²", "here is step 1"), ("3", None), ("8", None)])
def test_a_link_to_no_step_of_the_tour_is_said(raw, words):
    """guide?step=99 opened step 8 and step=abc step 1 without a word."""
    said = views.tour_step_notice(raw, 8)
    assert (said is None) if words is None else (words in said), said


def test_tour_page_steps_are_done_once_passed():
    """Steps 1, 3 and 6 open pages: done once the user went past them (and the run they show exists)."""
    assert not guide.step_done(0, [], reached=0)
    assert guide.step_done(0, [], reached=1)
    assert not guide.step_done(2, [], reached=5)  # templates: no logistic regression yet
    assert not guide.step_done(5, [], reached=7)  # kernels: no ConvNet yet


# --------------------------------------------------------------------------- sweeps
def test_sweep_status_from_workers_not_the_clock():
    assert views.sweep_status([], [], True, False).message == "⏳ Starting the worker…"
    # trials done and no worker left in the store: its process is ending, not starting
    assert views.sweep_status([{"state": "COMPLETE"}] * 2, [], True, False).message == \
        "⏳ Finishing: 2 trials done, its worker is closing…"
    # a trial still training while no worker beats (a heartbeat gone quiet): not finishing
    assert views.sweep_status([{"state": "COMPLETE"}, {"state": "RUNNING"}], [], True, False).message == \
        "⏳ Starting the worker…"
    running = views.sweep_status([], [{"current_trial": 3}], True, False)
    assert running.running and running.message == "⏳ Running: 1 worker, training trial #3"
    assert "Stopping" in views.sweep_status([], [{}], True, True).message
    done = views.sweep_status([{"state": "COMPLETE"}, {"state": "PRUNED"}], [], False, False)
    assert not done.running and done.kind == "success" and done.message == "Finished: 2 trials."
    failed = views.sweep_status([], [], False, False, "signlab: no data")
    assert failed.kind == "error" and failed.message == "The sweep could not run: no data"
    assert views.sweep_status([], [], False, False).message == "This study has no trials yet."


def test_a_stopped_sweep_reads_stopped_in_every_tab(tmp_path):
    """The stop is read from the study's stop record, not from the tab that pressed Stop. It holds
    while the workers run if it came after every one of them began (one that joined later goes on), while
    the launched worker still starts if it came after the launch, and once they ended if it came after
    the newest trial started. (Kept in one tab's session state, another tab said "Finished" for a
    stopped sweep.)"""
    from signlab import sweep

    rows = [{"state": "COMPLETE", "started": 100.0}, {"state": "STOPPED", "started": 200.0}]
    stop = sweep.sweeps_dir(tmp_path) / "s.stop"

    def stop_time(rows, workers, running, record=None):
        return sweep.stop_in_force("s", rows, workers, running, record or {}, tmp_path)

    assert stop_time(rows, [], False) is None  # never stopped
    stop.parent.mkdir(parents=True)
    stop.write_text('{"time": 250.0}')
    assert stop_time(rows, [{"since": 240.0, "started": 245.0}], True) == 250.0
    assert stop_time(rows, [{"since": 240.0}, {"since": 260.0}], True) is None  # the later worker goes on
    assert stop_time([], [], True, {"launched": 245.0}) == 250.0  # pressed while the worker starts
    assert stop_time([], [], True, {"launched": 255.0}) is None  # an old stop, before this launch
    assert stop_time([], [], True) is None
    stop_at = stop_time(rows, [], False)  # ended: after the newest trial started
    assert stop_at == 250.0
    assert views.sweep_status(rows, [], False, stop_at is not None).message == "Stopped: 2 trials."
    later = rows + [{"state": "COMPLETE", "started": 300.0}]  # run again after the stop: it finished
    assert stop_time(later, [], False) is None
    assert stop_time([{"state": "FAIL", "started": None}], [], False) is None
    for junk in ('{"time": NaN}', '{"time": 1%s}' % ("0" * 400), '{"time": "soon"}'):
        stop.write_text(junk)
        assert stop_time(rows, [], False) is None, junk


def test_force_stop_keeps_the_time_of_the_stop_it_follows(tmp_path):
    """Force stop after Stop does not write a new stop time: the page's 15-s wait before it offers
    Force stop again would start over while a worker on another host kept running."""
    from signlab import sweep

    sweep.sweeps_dir(tmp_path).mkdir(parents=True)
    (sweep.sweeps_dir(tmp_path) / "s.json").write_text('{"study": "s", "launched": 100.0}')
    sweep.stop_sweep("s", tmp_path)
    first = sweep.stop_request_time("s", tmp_path)
    assert first is not None
    sweep.stop_sweep("s", tmp_path, force=True)
    assert sweep.stop_request_time("s", tmp_path) == first


# --------------------------------------------------------------------------- map and kernels
def test_each_letter_has_its_own_colour_and_the_fists_far_apart():
    colours = figures.letter_colors()
    assert len(colours) == len(LETTERS) == len(set(colours))
    # Dark24 but for its second magenta, which could not be told from E's beside it on the Map
    assert len(set(colours) & set(pc_dark24())) == len(LETTERS) - 1 and "#FB00D1" not in colours
    by = dict(zip(LETTERS, colours))
    fists = [by[k] for k in "AEMNST"]  # closed hands told apart by the thumb: one hue family each

    def hue(c: str) -> float:
        import colorsys

        r, g, b = (int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))
        return colorsys.rgb_to_hsv(r, g, b)[0] * 360

    coloured = sorted(hue(c) for c in fists if c != by["T"])  # T is near-black
    gaps = [b - a for a, b in zip(coloured, coloured[1:])] + [360 - coloured[-1] + coloured[0]]
    assert min(gaps) > 30, [round(h) for h in coloured]  # Dark24's order had E, M, N within 40 degrees
    # and X, the fists' commonest stand-in (T→X), is no magenta beside E's violet and I's pink, nor is C
    assert min(abs(hue(by[k]) - hue(by[e])) for k in "XC" for e in "EI") > 60


def pc_dark24() -> list[str]:
    import plotly.colors as pc

    return list(pc.qualitative.Dark24)


def test_the_weakest_letter_of_a_perfect_model_is_none():
    assert views.weakest_letter_text([{"letter": "A", "recall": 100.0}, {"letter": "T", "recall": 91.5}]) == "T: 91.5%"
    assert views.weakest_letter_text([{"letter": k, "recall": 100.0} for k in "ABC"]) == "all 100%"
    assert views.weakest_letter_text([{"letter": "A", "recall": 99.9}, {"letter": "B", "recall": 100.0}]) == "A: 99.9%"


def test_the_map_says_when_a_drawn_region_holds_no_point():
    assert views.map_selection_note(None, []) == ("caption", views.MAP_TIP)
    assert views.map_selection_note({"points": [], "box": [], "lasso": []}, []) == ("caption", views.MAP_TIP)
    kind, text = views.map_selection_note({"points": [], "box": [{"x": [0, 1], "y": [0, 1]}]}, [])
    assert kind == "info" and "holds no test image" in text
    assert views.map_selection_note({"points": [], "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}, [])[0] == "info"
    assert views.map_selection_note({"points": [{"customdata": 3}], "box": [{}]}, [3]) is None  # a point: the panel


def test_map_region_summarises_the_picked_points():
    coords = np.array([[0.0, 0.0], [1.0, 2.0], [5.0, 5.0]])
    region = views.map_region(coords, np.array([0, 0, 1]), np.array([0, 1, 1]), [0, 1], drawn=2)
    assert region.mask.tolist() == [True, True, False]
    assert region.caption == "2 images here, by true letter: A (2); 1 misclassified. 2 images are drawn where their points lie."
    y = np.array([0] * 5 + [1] * 4 + [2] * 3 + [3] * 2 + [4] + [5] + [6])
    many = views.map_region(np.random.default_rng(0).random((len(y), 2)), y, y, list(range(len(y))), drawn=1)
    assert many.caption == ("17 images here, by true letter: A (5), B (4), C (3), D (2), E (1) and 2 others; "
                            "none misclassified. 1 image is drawn where its point lies.")
    (x0, x1), (y0, y1) = region.zoom
    assert x0 < 0 < 1 < x1 and y0 < 0 < 2 < y1 and x1 - 1 == pytest.approx(0.16)


def test_snapshot_title():
    assert [views.snapshot_title(e) for e in (0, 3, None)] == ["before training", "after epoch 3", "the final weights"]


def test_sweep_words():
    trial = {"lr": 0.003, "batch_size": 64, "augment": True, "weight_decay": None}
    assert views.trial_settings(trial, ["lr", "batch_size", "augment", "weight_decay"]) == \
        "learning rate 3.00e-03, batch size 64, augmentation on"
    assert views.study_label({"study": "s1", "model": "logreg", "epochs": 2, "workers": 1, "running": True}) == \
        "s1 · logreg, 2 epochs per trial"  # not "· running": the picker kept it after the sweep stopped
    assert views.study_label({"study": "s2"}) == "s2"
    assert views.study_label({"study": "s3", "model": "s2net", "epochs": 1}) == "s3 · s2net, 1 epoch per trial"


# --------------------------------------------------------------------------- what the pages compute (issue 17)
def test_page_config_gives_the_config_or_the_message():
    from signlab.settings import page_values

    values = {**page_values("fast"), "preset": "fast"}
    cfg, error = views.page_config(values)
    assert error is None and cfg.model == values["model"]
    cfg, error = views.page_config({**values, "epochs": 0})
    assert cfg is None and error and error.startswith("Epochs: 0 is out of range")


def test_tour_page_run_is_the_run_the_step_shows():
    class R:
        def __init__(self, cfg, weights=True):
            self.config, self.weights = cfg, weights
            self.parent = None  # guide.find_run leaves calibrated runs out

        def has_weights(self):
            return self.weights

        def summary(self):  # a step reads finished runs only
            return {"status": "completed"}

    logreg, seed, fixed = R(guide.LOGREG), R(guide.SEED), R(guide.FIXED, weights=False)
    runs = [fixed, seed, logreg]
    assert views.tour_page_run(runs, "templates") is logreg
    assert views.tour_page_run(runs, "seed") is seed
    assert views.tour_page_run(runs, "kernels") is None  # the fixed ConvNet has no weights yet
    assert views.tour_page_run(runs, "data") is None  # a step without a run of its own
    assert views.tour_run(runs, guide.LOGREG) is logreg
    # step 5's notice asks for the fixed ConvNet's Map of output scores: its button opens just that
    trained = R(guide.FIXED)
    assert views.tour_page_run([trained, seed], "fixed") is trained
    assert [views.tour_map_layer(k) for k in ("seed", "fixed", "kernels")] == ["logits", "logits", None]
    assert next(st for st in guide.STEPS if st.key == "fixed").page == "app_pages/map.py"


def test_dead_logits_health_only_when_measured():
    def health(step, dead_logits=None):
        return {"type": "health", "step": step, "layers": {"fc": {"grad_norm": 1.0, "weight_norm": 2.0}},
                "dead_logits": dead_logits}

    assert views.dead_logits_health([]) is None
    assert views.dead_logits_health([{"type": "batch", "step": 1}, health(1)]) is None  # no clipped scores measured
    series = views.dead_logits_health([health(1, 0.25), {"type": "batch", "step": 3}, health(2, 0.5)])
    assert series["steps"] == [1, 2] and series["dead_logits"] == [0.25, 0.5]
    # in log order: a step that goes back is a continuation's first, counted on after the last
    assert views.dead_logits_health([health(2, 0.5), health(1, 0.25)])["steps"] == [2, 3]


def test_the_sweeps_page_says_how_long_a_trial_takes_an_epoch():
    """The Sweeps page gave no time: a student could not tell a one-minute sweep from an hour's, and
    started none. It says a trial's time an epoch from this server's runs of the model."""
    cfg = _sweep_cfg("fastcnn")
    rows = [{"status": "completed", "model": "fastcnn", "ensemble": 1, "batch_size": 128,
             "width": cfg.width, "samples_per_second": 2000.0, "created": 1.0}]
    seconds = views.training_images(cfg, 27_455) / 2000.0
    said = views.sweep_time_text("fastcnn", rows, 27_455)
    assert said.startswith(f"On this server a trial takes {views.duration(seconds)} an epoch at batch 128; "
                           "a trial at batch 32 takes longer."), said
    # the default budget worked out: 10 trials of 2 epochs (the student had to multiply, and started none)
    assert f"So 10 trials of 2 epochs take {views.duration(seconds * 20)} or more with one worker" in said, said
    assert views.sweep_time_text("fastcnn", [], 27_455).startswith("No run on this server has trained fastcnn yet")
    # the budget typed in: the page said "10 trials of 2 epochs" beside 2 trials of 1 epoch
    said = views.sweep_time_text("fastcnn", rows, 27_455, trials=1, epochs=3)
    assert f"So 1 trial of 3 epochs takes {views.duration(seconds * 3)} or more" in said, said
    # a budget over the time limit says how many trials start within it (a walk read "roughly 32 min or
    # more" beside the default 30-min limit, and no word on it); within the limit, nothing more is said
    trial = seconds * 2
    over = views.sweep_time_text("fastcnn", rows, 27_455, limit_seconds=trial * 4.5)
    assert over.endswith(f"That is more than the time limit of {views.duration(trial * 4.5).removeprefix('about ')}: "
                         "about 5 trials start within it, so raise the limit or lower the trials to run them all."), over
    assert "time limit of" not in views.sweep_time_text("fastcnn", rows, 27_455, limit_seconds=trial * 10)
    assert "time limit of" not in views.sweep_time_text("fastcnn", rows, 27_455, limit_seconds=None)
    # a network neither trained nor guessed from here: a trial of a few of its steps says it, as one
    timed = views.sweep_time_text("fastcnn", [], 27_455, trial=2000.0)
    assert timed.startswith(f"On this server a trial takes {views.duration(seconds).replace('about', 'roughly')} "
                            "an epoch at batch 128 (timed from a few of its steps here); "), timed
    assert views.sweep_base_config("fastcnn") == cfg
    # other work on the machine is said, as on Train: a walk read "roughly 89 s" for 10 trials beside
    # busy processes, and 5 had run after 423 s
    assert "busy" not in views.sweep_time_text("fastcnn", rows, 27_455, machine_load=1.2, cores=2)
    for load_rows in (rows, []):
        busy = views.sweep_time_text("fastcnn", load_rows, 27_455, machine_load=3.1, cores=2)
        assert busy.endswith(" This machine is busy now (load 3.1 on 2 cores), so the sweep takes longer while "
                             "that lasts."), busy


def test_a_sweeps_budget_counts_its_start_and_each_trials_setup_as_measured_here():
    """A 1-epoch logistic regression sweep read "about 1 s" and took 17 s: 7.6 s to start its process, and
    each trial's run, validation and test besides its 1 s of training. Once a sweep has run here, both are
    measured and counted; before, the words say they are left out."""
    cfg = _sweep_cfg("fastcnn")
    seconds = views.training_images(cfg, 27_455) / 2000.0
    speed = {"status": "completed", "model": "fastcnn", "ensemble": 1, "batch_size": 128, "width": cfg.width,
             "samples_per_second": 2000.0, "created": 1.0}
    trials = [{"status": "completed", "kind": "trial", "study": "s1", "created": 100.0 + 10 * i,
               "updated": 106.0 + 10 * i, "train_seconds": 2.0 + i % 2} for i in range(3)]  # 4, 3 and 4 s besides
    rows = [speed, *trials, {"status": "completed", "kind": "train", "created": 50.0, "updated": 99.0,
                             "train_seconds": 1.0}]
    startup, per_trial = views.sweep_overheads(rows, [{"study": "s1", "launched": 92.5}, {"study": "gone"}])
    assert (startup, per_trial) == (7.5, 4.0)
    assert views.sweep_overheads([speed], [{"study": "s1", "launched": 92.5}]) == (None, None)
    said = views.sweep_time_text("fastcnn", [speed], 27_455, trials=2, epochs=1, startup=startup, per_trial=per_trial)
    assert (f"So 2 trials of 1 epoch take {views.duration(7.5 + 2 * (seconds + 4.0))} or more with one worker "
            "(each trial's setup and test and the sweep's start as measured here)") in said, said
    assert "Add " not in said
    unmeasured = views.sweep_time_text("fastcnn", [speed], 27_455, trials=2, epochs=1)
    assert "Add each trial's setup and test and the sweep's start: this server has not measured them yet." in \
        unmeasured, unmeasured


def test_a_stop_of_a_run_that_had_just_ended_says_so():
    """An instructor's Stop pressed as the run finished said nothing, and the run simply read completed."""
    assert views.stop_said("r", RunState.COMPLETED, False) == "Run “r” had already ended (completed): there was nothing to stop."
    assert views.stop_said("r", RunState.STOPPED, False).startswith("Run “r” had already ended (stopped)")
    assert views.stop_said("r", RunState.RUNNING, False) == "Run “r” stops after its current batch."
    assert views.stop_said("r", RunState.STOPPED, True) == "Run “r” taken out of the queue."  # its own Stop did it
    # a queued continuation, cancelled, is put back as its run was: not "had already ended (completed)"
    assert views.stop_said("r", RunState.COMPLETED, True) == "Run “r” taken out of the queue."
    # queued when the page looked, claimed by a worker before the click: it stops after its batch
    assert views.stop_said("r", RunState.RUNNING, True) == "Run “r” stops after its current batch."


def test_the_lecture_networks_extras_are_read_from_the_settings():
    """The note beside logistic regression under another preset named the fast preset's extras under the
    robust preset too (which has no label smoothing nor test-time shifts): it reads the settings."""
    from signlab.config import preset as make

    robust = make("robust", model="logreg").to_dict()
    said = views.lecture_model_text(robust)
    assert "label smoothing" not in said and "test-time shifts" not in said
    assert "an ensemble of 3" in said and "histogram equalisation" in said, said
    plain = {**make("fast", model="logreg").to_dict(), "augment": False, "label_smoothing": 0.0, "schedule": "none",
             "tta": False}
    assert views.lecture_model_text(plain) == ""  # nothing left to say
    assert views.lecture_model_text(make("lecture", model="logreg").to_dict()) == ""
    assert views.lecture_model_text(make("fast").to_dict()) == ""  # the preset's own network


def _sweep_cfg(model):
    from signlab.sweep import base_config

    return base_config(model, epochs=1)


def test_sweep_search_text_names_widths_only_for_models_with_a_width():
    text = views.sweep_search_text("logreg")
    assert text.startswith("Searched: learning rate ") and "width" not in text and "held out" in text
    assert ", width " in views.sweep_search_text("deepcnn")


def test_sweep_command(tmp_path):
    cmd = views.sweep_command({"model": "mlp", "epochs": 3}, "s1", "sqlite:///x.db", tmp_path)
    assert cmd == f"python -m signlab sweep --model mlp --epochs 3 --trials {views.SWEEP_DEFAULT_TRIALS} --study s1 --storage sqlite:///x.db " \
                  f"--runs-dir {tmp_path}"
    default = views.sweep_command({}, "s1", None, tmp_path)
    assert f"--model fastcnn --epochs {views.SWEEP_DEFAULT_EPOCHS} " in default and "--storage None" not in default
    # the settings its workers must share, as the study's record keeps them: without them the command shown
    # was refused for a study started with --val-fraction 0 or --max-steps
    own = views.sweep_command({"model": "mlp", "epochs": 1, "max_steps": 5, "val_fraction": 0.0}, "s1", None, tmp_path)
    assert "--epochs 1 --max-steps 5 --val-fraction 0 --trials" in own, own
    assert "--val-fraction" not in views.sweep_command({"val_fraction": 0.1, "max_steps": None}, "s1", None, tmp_path)


@needs_hand_models
def test_calibration_photo_says_whether_the_detector_found_a_hand():
    import io

    from _hand_image import hand_in_room
    from PIL import Image

    buf = io.BytesIO()
    hand_in_room().save(buf, "JPEG", quality=92)
    found = views.calibration_photo("B", "hand.jpg", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 255, 224, dtype=np.uint8), (224, 1))).save(buf, "PNG")  # a wall, no hand
    missed = views.calibration_photo("A", "wall.png", buf.getvalue())
    assert (found.error, found.hand, missed.error, missed.hand) == ("", True, "", False)
    assert views.no_hand_warning([(found.photo, True)]) is None
    warning = views.no_hand_warning([(found.photo, True), (missed.photo, False)])
    assert warning == ("The hand detector found no hand in 1 photo (A: wall.png), marked “⚠️ no hand” below its "
                       "picture. Calibrate would teach the model its centre square, which may show more room than "
                       "hand. Drop it (✕), or take it again with the whole hand in view, closer to the camera.")
    two = views.no_hand_warning([(missed.photo, False), (missed.photo, False)])
    assert "in 2 photos (A: wall.png; A: wall.png), marked “⚠️ no hand” below their pictures" in two and "Drop them" in two
    # one line under a 96-pixel thumbnail (14 characters wrapped and pushed the ✕ below the others)
    # (a caption is markdown: the name is escaped, "**ab**.png" was drawn in bold)
    assert [views.thumbnail_caption(n, True) for n in ("A_0_big.jpg", "synthetic-hand.png")] == ["A\\_0\\_big.jpg", "synt…nd.png"]
    assert views.thumbnail_caption("A_0_big.jpg", False) == "⚠️ no hand"


def test_no_photo_is_marked_without_a_hand_where_the_detector_cannot_run(monkeypatch):
    """Without ai-edge-litert or the hand models every photo read "no hand", and the warning told the
    student to drop them all."""
    import io

    from PIL import Image

    from signlab import hands

    monkeypatch.setattr(hands, "available", lambda: False)
    monkeypatch.setattr(hands, "find_hand", lambda rgb, **kw: None)
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 255, 224, dtype=np.uint8), (224, 1))).save(buf, "PNG")
    assert views.calibration_photo("A", "wall.png", buf.getvalue()).hand is True


def test_calibration_photo_names_what_cannot_be_read():
    photo, thumb, error, hand = views.calibration_photo("A", "notes.png", b"not an image")
    assert photo is None and thumb is None and error and not hand


def test_calibration_photo_refuses_a_blank_picture_and_the_same_picture_twice(dataset):
    import io

    from PIL import Image

    def png(a) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        return buf.getvalue()

    photo, thumb, error, _ = views.calibration_photo("A", "lens-cap.png", png(np.full((240, 320), 90, np.uint8)))
    assert photo is None and "lens-cap.png" in error and "one shade" in error
    hand = png(np.asarray(Image.fromarray(dataset.test.images[0]).resize((224, 224))))
    first, thumb, error, _ = views.calibration_photo("A", "a1.png", hand)
    assert first is not None and thumb and error == ""
    again, _, error, _ = views.calibration_photo("A", "a1-copy.png", hand, [first])
    assert again is None and error == "a1-copy.png: this picture is already collected (a1.png)"
    other, _, error, _ = views.calibration_photo("B", "b1.png", hand, [first])
    assert other is None and error == "b1.png: the same picture is already a photo of A (a1.png)"


def test_names_students_choose_are_shown_as_written():
    name = "[click](http://x.example) <b>bold</b> & *stars*"
    [row] = views.latest_runs_rows([{"name": name, "model": "mlp", "status": "completed", "epochs": 2,
                                     "test_accuracy": 0.5, "train_seconds": 3.0}])
    assert row["name"] == views.md(name) and "\\[click\\]" in row["name"] and "\\<b\\>" in row["name"]
    fig = figures.runs_overlay({name: [{"epoch": 1, "val_accuracy": 0.5}]})
    # (cut to the legend's length: figures.legend_label)
    assert fig.data[0].name == "[click](http://x.example) &lt;b&gt;bold&lt;/b&gt; &amp;…"
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; *stars*" in fig.data[0].hovertemplate
    fig = figures.runs_loss_overlay({name: [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]})
    assert "<b>" not in fig.data[0].name
    # plotly fills %{y:.1f} in a hover template: a run so named hovered with its own numbers in its name
    named = "%{y:.1f} %{x}"
    for fig in (figures.runs_overlay({named: [{"epoch": 1, "val_accuracy": 0.5}]}),
                figures.runs_loss_overlay({named: [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]})):
        template = fig.data[0].hovertemplate
        extra = template[template.index("<extra>"):]
        assert "%{" not in extra and extra.replace("\u2060", "") == f"<extra>{named}</extra>", template


def test_a_long_legend_name_keeps_what_sets_the_run_apart_and_fits_the_chart():
    """A tour run's legend name ran off the Compare charts' right edge at 1280 px ("tour: Train the
    lecture's ConvNet, as written · model seed_convnet, epoch"): plotly does not wrap a legend entry."""
    long = "tour: Train the lecture's ConvNet, as written · model seed_convnet, epochs 3"
    other = "tour: Train the lecture's ConvNet, as written · model convnet, epochs 5"
    e, b = [{"epoch": 1, "val_accuracy": 0.5}], [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]
    for fig in (figures.runs_overlay({long: e, other: e}), figures.runs_loss_overlay({long: b, other: b})):
        names = [t.name for t in fig.data]
        assert all(len(n) <= figures.LEGEND_CHARS for n in names), names
        assert names[0].endswith("… · model seed_convnet, epochs 3") and names[0].startswith("tour: Train")
        assert len(set(names)) == 2 and long in fig.data[0].hovertemplate  # the whole name on pointing
    assert figures.legend_label("x" * 80).endswith("…") and len(figures.legend_label("x" * 80)) == 46
    # the " (2)" that tells two runs of one name apart is kept (a walk saw two tour runs' legends read
    # alike), and where what sets a run apart is itself long, its start is kept
    assert figures.legend_label("tour: Train the lecture's ConvNet, as written (2)") == \
        "tour: Train the lecture's ConvNet, as… (2)"
    # an unnamed run keeps its model: a walk compared a lecture ConvNet and a logistic regression, and
    # both read "6 Dec 15:0…· epochs 10, lr 0.001 and 9 more" (their model is in their names, not after the dot)
    assert figures.legend_label("6 Dec 10:42:15 (logreg) · weight decay 0.0005, learning rate 0.01, batch size 32") \
        == "10:42 (logreg) · weight decay 0.0005…"
    assert figures.legend_label("6 Dec 15:06:12 (seed_convnet) · epochs 10, lr 0.001 and 9 more") == \
        "15:06 (seed_convnet) · epochs 10, lr 0.001…"
    assert figures.legend_label("6 Dec 15:04:40 (logreg) · epochs 10, lr 0.001 and 9 more") == \
        "15:04 (logreg) · epochs 10, lr 0.001…"
    assert figures.legend_label("6 Dec 15:04:40 (logreg) · epochs 10, lr 0.001") == \
        "6 Dec 15:04:40 (logreg) · epochs 10, lr 0.001"  # short enough: whole


def test_explanations_of_one_input(tiny_model):
    x = np.zeros((28, 28), np.float32)
    x[6:22, 8:20] = 0.8
    p = views.probability(tiny_model, x, 3)
    assert 0.0 <= p <= 1.0
    assert views.model_kind(tiny_model) == "logreg" and views.template_tiles(tiny_model).shape == (24, 28, 28)
    assert views.occlusion_map(tiny_model, x, 3, patch=7).shape == (28, 28)
    assert np.ptp(views.occlude(x, 0, 0, 7)[:7, :7]) < 1e-6 and not views.is_blank(x)


def test_shape_reading_says_what_each_reading_says():
    """The Classify page's line under a photo's verdict: both readings' letters, and the answer."""
    image, shape = _probs(0.6), _probs(0.7, second_letter=2)
    shape[[0, 2]] = shape[[2, 0]]  # the hand's shape: C first, A second
    verdict = views.verdict(combine(image, shape), photo=True, shape=True)
    seen = dataclasses.replace(verdict, shape=shape, image=image)
    line = views.shape_reading(seen)
    assert "the picture says **A** (60%)" in line and "says **C** (70%)" in line
    assert line.startswith("Two readings, combined") and f"{seen.letter} ({seen.confidence:.0%})" in line
    agree = dataclasses.replace(verdict, shape=image, image=image)
    assert views.shape_reading(agree).startswith("Two readings agree")
    # the answer's share is said: agreeing readings make an answer surer than the picture alone
    weak, sure = _probs(0.25), _probs(0.9)
    both = views.verdict(combine(weak, sure), photo=True, shape=True)
    line = views.shape_reading(dataclasses.replace(both, shape=sure, image=weak))
    assert "the picture says **A** (25%)" in line and line.endswith(f"Together they make the answer's {both.confidence:.0%}.")
    assert both.confidence > 0.25  # surer than the picture alone
    assert views.shape_reading(views.verdict(image, photo=True)) is None  # no hand shape: no line
    # neither reading's first letter: "the picture says I (39%); the shape says B (34%). The answer weighs
    # both: L (50%)" read as a contradiction; the line says the answer is the letter both find likely
    pic, hand = np.full(24, 0.01), np.full(24, 0.01)
    pic[[8, 10]], hand[[1, 10]] = (0.39, 0.30), (0.34, 0.30)  # I then L; B then L
    pic, hand = pic / pic.sum(), hand / hand.sum()
    third = views.verdict(combine(pic, hand), photo=True, shape=True)
    assert third.letter == "L"
    line = views.shape_reading(dataclasses.replace(third, shape=hand, image=pic))
    assert "the letter both find likely: **L** (the picture " in line and "The answer weighs both" not in line
    assert f"together {third.confidence:.0%})." in line
    # and how the two combine, in a sentence ("L (80%); the shape says B (34%): L (96%)" read as a
    # surer answer than either reading, from nowhere)
    assert line.endswith("multiplied by the square root of its chance in the shape, then all are scaled to add up "
                         "to 100%: the letters the shape rules out lose their share, so the answer can be surer than "
                         "either reading.)"), line
    # the models' probabilities are float32 (numpy scalars, no Python floats): still numbers, not "—"
    f32 = dataclasses.replace(verdict, shape=shape.astype(np.float32), image=image.astype(np.float32))
    line32 = views.shape_reading(f32)
    assert "the picture says **A** (60%)" in line32 and "says **C** (70%)" in line32 and "—" not in line32
    assert views.percent(np.float32(0.5), 0) == "50%" and views.percent(np.bool_(True)) == views.DASH


@pytest.mark.parametrize("fraction, digits, text", [
    (247 / 248, 0, "99.6%"),  # a letter with one mistake: never "100%"
    (7171 / 7172, 1, "99.99%"),  # a run with one mistake in the test set
    (7171 / 7172, 2, "99.99%"),
    (1.0, 1, "100.0%"),  # exact: as asked
    (0.0, 0, "0%"),
    (1 / 7172, 1, "0.01%"),  # one right answer is not "0.0%"
    (0.5, 1, "50.0%"),
    (0.9449, 1, "94.5%"),  # ordinary rounding elsewhere
    (0.999998, 1, "over 99.99%"),  # a model's probability: it read "99.9998%"
    (1 - 1e-9, 0, "over 99.99%"),  # it read "100.0000%", a false 100% after all
    (2e-7, 1, "under 0.01%"),
    (0.99996, 1, "over 99.99%"),
    (0.99996, 3, "99.996%"),  # as many as asked
])
def test_a_percentage_never_rounds_to_a_false_100_or_0(fraction, digits, text):
    assert views.percent(fraction, digits) == text


def test_one_probability_reads_alike_whatever_decimals_were_asked():
    """Classify said one probability three ways: "over 99.99%" in its verdict (0 decimals asked),
    "over 99.999%" in its top-5 bars and its Why line (1 asked)."""
    for p in (0.999998, 1 - 1e-9, 0.99996, 3e-6):
        assert views.percent(p, 0) == views.percent(p, 1), p


def test_the_tour_and_the_pages_share_one_percentage_rule():
    from signlab.numbers import percent_text
    assert percent_text(7171 / 7172) == "99.99%"  # the tour's one decimal, widened where needed
    assert percent_text(1.0) == "100.0%"
    assert views.percent(None) == views.DASH and views.percent(float("nan")) == views.DASH


@pytest.mark.parametrize("n, noun, plural, text", [
    (1, "photo", None, "1 photo"), (0, "photo", None, "0 photos"), (3, "letter", None, "3 letters"),
    (1200, "image", None, "1,200 images"), (2, "mouse", "mice", "2 mice"), (1, "mouse", "mice", "1 mouse"),
])
def test_counts_read_in_the_right_number(n, noun, plural, text):
    from signlab.numbers import count_text
    assert count_text(n, noun, plural) == text


def test_a_verdict_never_reads_100_percent_short_of_it():
    """Classify's headline said "G (100%)" beside a bar and a sentence at 99.9%: the verdict's
    percentages follow the app's one rule (``signlab.numbers``)."""
    p = np.zeros(len(LETTERS))
    p[0], p[1] = 0.9991, 0.0009
    v = views.verdict(p, photo=False)
    assert v.headline == "The model says **A** (99.9%)"
    p[0], p[1] = 0.8, 0.2
    assert views.verdict(p, photo=False).headline == "The model says **A** (80%)"


def test_a_running_sweep_of_yours_is_named_above_start():
    studies = [{"study": "a1", "owner": "ann", "running": True}, {"study": "a2", "owner": "ann", "running": False},
               {"study": "b1", "owner": "bob", "running": True}]
    said = views.running_sweep_warning(studies, "ann")
    assert said.startswith("A sweep of yours is still running (a1)") and "b1" not in said
    assert views.running_sweep_warning(studies, "cat") is None
    studies[1]["running"] = True
    assert views.running_sweep_warning(studies, "ann").startswith("2 sweeps of yours are still running (a1, a2)")


def test_the_smoothed_loss_follows_a_falling_loss():
    """The exponential average lagged ~10 logged points: 2.2 against a step loss of 1.4 at step 50."""
    falling = 3.2 * np.exp(-np.arange(43) / 6.0) + 0.05  # a fast run's logged losses, every 10 steps
    lines = figures.loss_lines([{"step": 10 * (i + 1), "loss": v} for i, v in enumerate(falling)])
    step, smoothed = lines[0]["y"], lines[1]["y"]
    assert [ln["name"] for ln in lines] == ["step loss", "smoothed"]
    assert max(abs(a - b) for a, b in zip(step, smoothed)) < 0.1 * max(falling)
    assert smoothed[-1] == pytest.approx(falling[-1]) and smoothed[0] == pytest.approx(falling[0])
    noisy = np.r_[np.full(200, 1.0) + np.tile([0.3, -0.3], 100)]
    assert np.ptp(figures.smooth(noisy)[10:-10]) < 0.2 * np.ptp(noisy)  # still smooths noise
    gap = figures.smooth([1.0, float("nan"), 3.0])
    assert gap[1] == pytest.approx(2.0) and np.isfinite(gap).all()  # a non-finite loss is left out


def test_epoch_curves_name_each_line_style_once():
    fig = figures.epoch_curves([{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.9,
                                 "val_accuracy": 0.95} for e in (1, 2)])
    assert [t.name for t in fig.data if t.showlegend is not False] == ["train", "validation"]
    assert len(fig.data) == 4
    # a run validated on the test set (the default, as the lecture did) says so: the Sweeps page's
    # "validation" is a held-out share of the training images
    test = figures.epoch_curves([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_accuracy": 0.9,
                                  "val_accuracy": 0.95}], val_is_test=True)
    assert [t.name for t in test.data if t.showlegend is not False] == ["train", "validation (the test set)"]
    # no y-axis title in the gap between the panels (it was drawn over the loss panel); the titles say it
    assert fig.layout.yaxis.title.text is None and fig.layout.yaxis2.title.text is None
    assert [a.text for a in fig.layout.annotations] == ["Loss per epoch", "Accuracy per epoch (%)"]
    # the legend hangs from below the axis titles, in a margin kept for it (anchored by its bottom at
    # y=-0.25, it sat on the "epoch" title in a window of 820 px)
    assert (fig.layout.legend.yanchor, fig.layout.legend.y, fig.layout.margin.b) == ("top", -0.3, 70)


def test_charts_write_their_text_dark_and_keep_their_own_colours():
    """Streamlit's theme drew ticks and subplot titles light grey; each figure sets them dark, while
    a colour the figure chose (the Map's letter labels) stays."""
    curves = figures.epoch_curves([{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.9,
                                    "val_accuracy": 0.95} for e in (1, 2)])
    assert {a.font.color for a in curves.layout.annotations} == {figures.INK}
    assert curves.layout.xaxis.tickfont.color == curves.layout.yaxis2.tickfont.color == figures.INK_SOFT
    assert curves.layout.xaxis.title.font.color == figures.INK
    tiles = figures.tile_grid(np.zeros((3, 28, 28)), ["A 90%", "B 80%", "C 70%"], cols=3)
    assert {a.font.color for a in tiles.layout.annotations} == {figures.INK}
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(24), 3)
    themap = figures.feature_map(rng.normal(size=(72, 2)), y, y, centres={k: (float(k), 0.0) for k in range(24)})
    label_colours = {a.font.color for a in themap.layout.annotations}
    assert figures.INK not in label_colours and len(label_colours) > 1  # one colour a letter, as chosen
    axes = [{"key": "lr", "label": "learning rate", "values": [0.001, 0.003], "range": (0.001, 0.003)},
            {"key": "val_accuracy", "label": "accuracy (%)", "values": [90.0, 95.0], "range": (90.0, 95.0)}]
    pc = figures.parallel_coordinates(axes, color_key="val_accuracy")
    assert pc.data[0].labelfont.color == figures.INK and pc.data[0].tickfont.color == figures.INK_SOFT


def test_each_chart_keeps_only_the_toolbar_buttons_that_do_something_on_it():
    """Plotly's nine-button toolbar covered small charts' titles on hover (Classify's "What the model
    sees"): an image keeps only the download, a chart its zoom, pan and reset, and only the charts
    that select by dragging keep the selection buttons."""
    all_2d = {"zoom", "pan", "select", "lasso", "zoomin", "zoomout", "autoscale", "resetscale", "toimage"}

    def kept(fig):
        return all_2d - set(fig.layout.modebar.remove)

    images = [figures.single_image(np.zeros((28, 28)), "What the model sees (28x28)"),
              figures.tile_grid(np.zeros((3, 28, 28)), ["A", "B", "C"], cols=3),
              figures.weight_templates(np.zeros((4, 5, 5))),
              figures.image_with_box(np.zeros((64, 64)), (4, 4, 40, 40), "hand"),
              figures.saliency_overlay(np.zeros((28, 28)), np.zeros((28, 28)), "why"),
              figures.confusion_matrix_clickable(np.eye(24, dtype=int) * 5)]
    assert [kept(f) for f in images] == [{"toimage"}] * len(images)
    curve = figures.loss_curve([{"step": s, "loss": 1 / s} for s in range(1, 30)])
    assert kept(curve) == {"zoom", "pan", "resetscale", "toimage"}
    # the toolbar shows over the top right on hover: a legend there was covered (the loss chart's was)
    assert curve.layout.legend.y < 0
    y = np.repeat(np.arange(24), 3)
    themap = figures.feature_map(np.random.default_rng(0).normal(size=(72, 2)), y, y)
    assert {"select", "lasso"} <= kept(themap)  # the Map's box and lasso choose its points
    assert "select" in kept(figures.confusion_matrix(np.eye(24, dtype=int)))


def test_a_run_named_by_its_id_is_called_by_its_model_in_a_sentence():
    assert views.run_phrase("20261203-105231-s2net-3f", "20261203-105231-s2net-3f", "s2net") == "your s2net run"
    assert views.run_phrase("my first", "20261203-105231-s2net-3f", "s2net") == "my first"
    # an instructor watching a student's run read "Your s2net run"
    assert views.run_heading("20261203-105231-s2net-3f", "20261203-105231-s2net-3f", "s2net",
                             "alice@x.edu") == "alice@x.edu's s2net run"


def test_trial_table_leaves_unknown_numbers_blank_and_drops_an_unsearched_width():
    """A running trial has no accuracy, loss or time yet: NaN (a blank cell), not None, which the
    table printed as "None" in a column of nothing else."""
    import pandas as pd
    trials = [{"number": 0, "state": "COMPLETE", "value": 0.84, "val_loss": 0.64, "lr": 1e-3, "batch_size": 32,
               "weight_decay": 1e-4, "augment": True, "width": None, "epochs": 2, "seconds": 5.0,
               "test_accuracy": 0.75, "note": "", "run_id": "a"},
              {"number": 1, "state": "RUNNING", "value": None, "val_loss": None, "lr": 2e-3, "batch_size": 64,
               "weight_decay": 1e-5, "augment": False, "width": None, "epochs": None, "seconds": None,
               "test_accuracy": None, "note": "", "run_id": "b"}]
    table = views.trial_table(trials, [0, 1])
    assert [t["number"] for t in table] == [1, 0]  # newest first
    assert table[1]["value"] == pytest.approx(84.0) and table[1]["test_accuracy"] == pytest.approx(75.0)
    assert [t["augment"] for t in table] == ["off", "on"]
    assert [t["state"] for t in table] == ["running", "completed"]  # the app's words, not Optuna's "COMPLETE"
    assert trials[0]["state"] == "COMPLETE"  # the trials themselves (sweep --json) keep Optuna's
    assert all("width" not in t for t in table)
    df = pd.DataFrame(views.trial_table(trials[1:], [0]))  # only the running trial: no column of None
    assert all(df[c].dtype.kind == "f" for c in ("value", "val_loss", "seconds", "test_accuracy", "epochs"))
    assert df[["value", "val_loss", "seconds"]].isna().all().all()
    assert views.trial_table(trials, []) == []
    with_width = [dict(t, width=16) for t in trials]
    assert [t["width"] for t in views.trial_table(with_width, [0, 1])] == [16.0, 16.0]


def test_run_display_name_reads_a_generated_id_as_its_start_time():
    from signlab.runs import new_run_id

    assert views.run_display_name("20261204-035651-s2net-c66772cf94") == "4 Dec 03:56:51"
    assert views.run_display_name("20261204-035651-s2net-c66772cf94", "my best") == "my best"
    assert views.run_display_name("convnet-ready", "convnet-ready") == "convnet-ready"  # not generated: as it is
    assert views.run_display_name("20261304-035651-s2net-c66772cf94") == "20261304-035651-s2net-c66772cf94"
    generated = new_run_id("fast_cnn")  # the model's name may hold '_' and '-'
    assert views.run_display_name(generated) != generated and ":" in views.run_display_name(generated)
    from signlab.runs import display_name
    assert display_name("20261204-035651-s2net-c66772cf94", with_model=True) == "4 Dec 03:56:51 (s2net)"
    assert display_name("20261204-035651-fast_cnn-c66772cf94", with_model=True).endswith("(fast_cnn)")


def test_epoch_charts_do_not_blow_up_a_hair_of_difference():
    """After one epoch the loss axis ran from 2.1210 to 2.1215, so train and validation, nearly equal,
    looked far apart: each axis spans at least a floor; wider spreads keep plotly's own range."""
    from signlab import figures

    one = [{"epoch": 1, "train_loss": 2.1210, "val_loss": 2.1215, "train_accuracy": 0.3641, "val_accuracy": 0.3642}]
    fig = figures.epoch_curves(one)
    lo, hi = fig.layout.yaxis.range
    assert hi - lo >= 0.4 and lo < 2.121 and hi > 2.1215
    lo, hi = fig.layout.yaxis2.range
    assert hi - lo >= 2.0 and lo < 36.41 and hi > 36.42
    top = figures.epoch_curves([{**one[0], "train_accuracy": 1.0, "val_accuracy": 0.9995}])
    # never above 100% (a student read the tick "100.5" as a bug), and a marker at 100% is drawn whole
    assert top.layout.yaxis2.range[1] == 100 and top.layout.yaxis2.range[1] - top.layout.yaxis2.range[0] >= 2.0
    assert all(t.cliponaxis is False for t in top.data if t.xaxis == "x2")
    runs = figures.runs_overlay({"a": [{"epoch": 1, "val_accuracy": 1.0}, {"epoch": 2, "val_accuracy": 0.9990}]})
    assert runs.layout.yaxis.range[1] == 100 and runs.data[0].cliponaxis is False
    # near 0 the floor holds too: the range starts at 0 and is still the floor's width
    low = figures.epoch_curves([{"epoch": 1, "train_loss": 0.01, "val_loss": 0.012, "train_accuracy": 0.003,
                                 "val_accuracy": 0.005}]).layout
    assert low.yaxis.range[0] == 0 and low.yaxis.range[1] >= 0.1
    assert low.yaxis2.range[0] == 0 and low.yaxis2.range[1] >= 2.0
    wide = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.1 / e, "train_accuracy": e / 10, "val_accuracy": e / 11}
            for e in (1, 2, 3, 4, 5)]
    fig = figures.epoch_curves(wide)
    assert fig.layout.yaxis.range is None and fig.layout.yaxis2.range is None


def test_a_mistake_is_called_confident_only_when_it_was():
    """Evaluate said "A confident mistake often shows two letters that look alike" over mistakes made
    at 30%, and over the lecture ConvNet's 4% (every letter scored the same)."""
    def m(c):
        return {"index": 0, "true": "T", "predicted": "X", "confidence": c}

    sure = views.mistakes_caption([m(0.93), m(0.6)], 2)
    assert "A confident mistake" in sure and "shown" not in sure
    unsure = views.mistakes_caption([m(0.31), m(0.30)], 40)
    assert "A confident mistake" not in unsure and "Even the surest got only 31%" in unsure
    assert "the 2 surest of 40 shown" in unsure
    flat = views.mistakes_caption([m(1 / 24 + 0.001)], 1)
    assert "A confident mistake" not in flat and "as if every letter scored the same" in flat
    assert "A confident mistake" in views.mistakes_caption([m(0.55)], 1)  # over half is confident
    assert "A confident mistake" not in views.mistakes_caption([m(0.49)], 1)


def test_runs_that_draw_the_same_curves_are_named():
    """Three runs of the fast preset with seed 0 drew one line on the Runs page: the page says so, and
    says why only when their settings (seed included) are the same."""
    from types import SimpleNamespace

    ep = lambda acc: [{"type": "epoch", "epoch": 1, "val_accuracy": acc}]  # noqa: E731
    bt = lambda loss: [{"type": "batch", "step": 1, "loss": loss}]  # noqa: E731
    run = lambda seed: SimpleNamespace(config=preset("fast", seed=seed))  # noqa: E731
    epochs = {"a": ep(0.99), "b": ep(0.99), "c": ep(0.98), "d_*x*": ep(0.99)}
    batches = {"a": bt(1.0), "b": bt(1.0), "c": bt(1.0), "d_*x*": bt(1.00001)}
    text = views.same_curves_text(epochs, batches, "val_accuracy", [run(0), run(0), run(0), run(0)])
    assert text.startswith(f"**a**, **b** and **{views.md('d_*x*')}** draw the same curves"), text  # names escaped
    assert "**c**" not in text and "the same settings and seed" in text
    # the same curves from other settings: said, with no cause claimed
    other = views.same_curves_text(epochs, batches, "val_accuracy", [run(0), run(1), run(0), run(0)])
    assert other.endswith("draw the same curves, one on top of the other.") and "seed" not in other
    batches["d_*x*"] = bt(1.2)  # another loss: another line
    assert views.same_curves_text(epochs, batches, "val_accuracy").startswith("**a** and **b** draw")
    assert views.same_curves_text({"a": ep(0.99), "c": ep(0.98)}, {}, "val_accuracy") is None


def test_the_overlays_legend_says_which_setting_each_run_changed():
    """Four fast-preset runs that differ in their optimizer read "5 Dec 19:20:06 (s2net)" alike in
    the overlay's legend; each entry now names what differs (its model only where the name does not
    already show it), at most two settings, in 3 digits: half a 1,280-px page cut longer entries."""
    from types import SimpleNamespace

    from signlab import compare

    def run(i, name=None, **changes):
        rid = f"20261205-19200{i}-{changes.get('model', 's2net')}-000000000{i}"
        return SimpleNamespace(id=rid, name=name or rid, config=preset("fast", **changes), metrics=lambda: [])

    runs = [run(1), run(2, optimizer="muon"), run(3, optimizer="sgd", lr=0.05)]
    epochs, _ = compare.curve_series(runs)
    assert list(epochs) == ["5 Dec 19:20:01 (s2net) · lr 0.004, optimizer adamw",
                            "5 Dec 19:20:02 (s2net) · lr 0.004, optimizer muon",
                            "5 Dec 19:20:03 (s2net) · lr 0.05, optimizer sgd"]
    epochs, _ = compare.curve_series([run(1), run(2, model="logreg", name="mine")])  # a named run: its model said
    assert list(epochs) == ["5 Dec 19:20:01 (s2net)", "mine · model logreg"]
    epochs, _ = compare.curve_series([run(1), run(2, lr=0.000120113, seed=4, batch_size=64, weight_decay=0.0)])
    assert list(epochs)[1] == "5 Dec 19:20:02 (s2net) · lr 0.00012, batch size 64 and 2 more"  # a sweep's rate
    # what sets a run apart from most of the others comes first: two of four runs read "lr 0.004, optimizer
    # adamw and 1 more" alike, the hidden one their seed
    four = [run(1), run(2, seed=1), run(3, optimizer="sgd"), run(4, lr=0.002)]
    assert [n.split(" · ")[1] for n in compare.curve_series(four)[0]] == [
        "lr 0.004, optimizer adamw and 1 more", "seed 1, lr 0.004 and 1 more", "optimizer sgd, lr 0.004 and 1 more",
        "lr 0.002, optimizer adamw and 1 more"]
    # a tie (two runs of each value) sets no run apart: the settings' own order
    tie = [run(1), run(2, seed=1), run(3, seed=1, optimizer="sgd"), run(4, optimizer="sgd")]
    assert [n.split(" · ")[1] for n in compare.legend_names(tie)] == [
        "optimizer adamw, seed 0", "optimizer adamw, seed 1", "optimizer sgd, seed 1", "optimizer sgd, seed 0"]
    epochs, _ = compare.curve_series([run(1), run(2)])  # the same settings: nothing to tell apart
    assert list(epochs) == ["5 Dec 19:20:01 (s2net)", "5 Dec 19:20:02 (s2net)"]


def test_comparing_settings_run_once_each_says_what_a_seed_alone_moves():
    """A student trained the fast preset with four optimizers, one run each, and read a 0.04-point lead
    as the better optimizer; nothing said that a seed alone moves a run as much. A walk then found the
    word gone whenever one run of the comparison was far off, and quoting s2net's seeds for logreg; a
    review found it silent after two seeds tied, and counting a run on another device as another seed."""
    from types import SimpleNamespace

    from signlab import compare
    from signlab.config import TrainConfig
    from signlab.errors import ConfigError

    def run(i, acc, parent=None, **changes):
        return SimpleNamespace(id=f"r{i}", name=f"run {i}", config=preset("fast", **changes),
                               summary=lambda: {"test_accuracy": acc, "parent": parent})

    def said_of(runs, *picks, words):  # the caption's words on runs[picks], by their legend names
        names = compare.legend_names(runs)
        return " and ".join(f"**{views.md(names[k])}**" for k in picks) + words

    # settings run once each: the closest pair is named, though a third run is far off
    once = [run(1, 0.9975), run(2, 0.9971, optimizer="muon"), run(3, 0.9395, optimizer="sgd")]
    said = views.seed_luck_text(once)
    assert said.startswith(said_of(once, 0, 1, words=" differ in their settings but end only 0.04 points apart")), said
    assert "another **Seed**" in said and "99.71" not in said  # no other model's figures
    same = views.seed_luck_text([run(1, 0.9975), run(2, 0.9975, optimizer="muon")])  # "0.00 points apart"
    assert " differ in their settings but end at the same accuracy in test accuracy" not in same
    assert "end at the same test accuracy (the table's column)" in same and "0.00" not in same, same
    near = views.seed_luck_text([run(1, 0.9975), run(2, 0.99752, optimizer="muon")])  # 0.002 points: 0.00 when said
    assert "end at the same test accuracy (the table's column)" in near and "0.00" not in near, near
    # the page passes the legend names it already has (curve_series' keys), in the runs' order
    assert views.seed_luck_text(once, ["x", "y", "z"]).startswith("**x** and **y** differ in their settings")
    # named as the runs are, not with the legend's words on what sets each apart (three lines for two runs);
    # the whole names where the short ones are one name
    long = ["5 Dec 20:39:14 (logreg) · seed 1, lr 0.003 and 1 more", "r2 · optimizer muon", "r3 · optimizer sgd"]
    assert views.seed_luck_text(once, long).startswith(f"**{views.md('5 Dec 20:39:14 (logreg)')}** and **r2** differ")
    assert views.seed_luck_text(once, ["r · a", "r · b", "c"]).startswith(f"**{views.md('r · a')}** and **")
    # past the seeds' spread but under a point: named, never "by less" than a spread it exceeds
    seeds = [run(1, 0.9000, optimizer="sgd"), run(2, 0.9050, optimizer="sgd", seed=1), run(3, 0.9130)]
    said = views.seed_luck_text(seeds)
    assert "end 0.50 points apart" in said and "by less" not in said, said
    assert said.endswith(said_of(seeds, 1, 2, words=" differ in their settings by 0.80 points, little more than that "
                                                     "and under one point, so that difference may be luck too.")), said
    # settings that far apart are not called luck
    assert views.seed_luck_text([run(1, 0.9971), run(3, 0.9395, optimizer="sgd")]) is None
    # one setting with two seeds: its spread is what luck moved here, and a pair of other settings
    # closer than that is named; a run on another device is another setting, not another seed
    seeds = [run(1, 0.6736), run(2, 0.6658, seed=1), run(3, 0.5574, optimizer="sgd"), run(4, 0.6662, lr=0.002),
             run(5, 0.6100, device="cuda")]
    said = views.seed_luck_text(seeds)
    assert said.startswith(said_of(seeds, 0, 1, words=" differ only in their seed and end 0.78 points apart")), said
    assert said_of(seeds, 1, 3, words=" differ in their settings by less (0.04 points)") in said
    assert views.seed_luck_text(seeds[:3]).endswith("luck alone moved a run here.")  # no pair closer than luck
    # a run made without a preset (the API's) is the fast preset's settings: only the seed differs
    bare = [run(1, 0.6736), SimpleNamespace(id="r9", name="run 9", config=TrainConfig(seed=1),
                                            summary=lambda: {"test_accuracy": 0.6658})]
    assert "differ only in their seed" in views.seed_luck_text(bare)
    # two seeds that tie say nothing of luck, and do not silence a close pair of settings
    tied = [run(1, 1.0), run(2, 1.0, seed=1), run(3, 0.9996, optimizer="muon")]
    said = views.seed_luck_text(tied)
    assert "only in their seed" not in said and "end only 0.04 points apart" in said, said
    # left out: a calibrated run (its parent's settings, photos' accuracy), a NaN accuracy, an unreadable config
    class Unreadable:
        id, name = "r7", "run 7"

        @property
        def config(self):
            raise ConfigError("config.json: not JSON")

        def summary(self):
            return {"test_accuracy": 0.6660}

    assert views.seed_luck_text([run(1, 0.6736), run(2, 0.6650, parent="r1", seed=1)]) is None
    said = views.seed_luck_text([run(1, 0.6736), run(2, float("nan"), optimizer="muon"), run(3, 0.6730, lr=0.002)])
    assert "0.06 points apart" in said and "run 2" not in said, said
    assert views.seed_luck_text([run(1, 0.6736), Unreadable()]) is None
    # the same run twice (same seed) is not luck, and one run, a run with no accuracy: nothing to say
    assert views.seed_luck_text([run(1, 0.9971), run(2, 0.9971)]) is None
    assert views.seed_luck_text([run(1, 0.9971)]) is None
    assert views.seed_luck_text([run(1, 0.9971), run(2, None, optimizer="muon")]) is None


def test_the_runs_table_says_when_a_run_left_its_presets_model():
    """A walk read "fast" in the preset column beside a logreg run: `train --model logreg` starts from the
    fast preset, whose network is s2net."""
    from types import SimpleNamespace

    def run(i, **changes):
        cfg = preset(changes.pop("preset", "fast"), **changes)
        summary = {"name": None, "model": cfg.model, "preset": cfg.preset, "epochs": 1, "target_epochs": 2,
                   "status": "completed", "batch_size": cfg.batch_size, "lr": cfg.lr, "optimizer": cfg.optimizer,
                   "schedule": cfg.schedule, "augment": cfg.augment, "test_accuracy": 0.9, "train_seconds": 1.0,
                   "created": 0.0}
        return SimpleNamespace(id=f"r{i}", summary=lambda: summary)

    rows = views.runs_table([run(1), run(2, model="logreg"), run(3, preset="robust"), run(4, preset="lecture"),
                             run(5, preset="lecture", model="mlp"), run(8, preset="lecture", model="logreg"),
                             run(9, lr=0.01), run(10, preset="lecture", model="logreg", batch_size=64),
                             run(11, epochs=9)])
    # the lecture trained logistic regression with its settings too: not "lecture (other model)", as the
    # tour's read. Any other change is "custom", the Train page's word (a teacher saw "fast (other model)"
    # on Runs where Train had said "Custom"); more epochs alone is the preset's recipe, run longer
    assert [r["preset"] for r in rows] == ["fast", "custom (from fast)", "robust", "lecture", "custom (from lecture)",
                                           "lecture", "custom (from fast)", "custom (from lecture)", "fast"]
    # a sweep's trial and a calibrated run were made by no preset: said by what made them (a walk read
    # "fast (other model)" beside both)
    trial, calibrated = run(6, model="mlp"), run(7, model="logreg")
    trial.summary()["kind"] = "trial"
    calibrated.summary()["parent"] = "r2"
    assert [r["preset"] for r in views.runs_table([trial, calibrated])] == ["sweep trial", "calibrated"]
    # and a calibrated run's epochs are its parent's, not epochs it trained (it read "1/2")
    assert [r["epochs"] for r in views.runs_table([trial, calibrated])] == ["1/2", "1 (its parent's)"]
    calibrated.summary()["epochs"] = 0  # being made, or failed: no epochs to say of the parent
    assert views.runs_table([calibrated])[0]["epochs"] == 0


def test_runs_with_no_accuracy_are_left_out_of_the_parallel_coordinates_and_counted():
    """A queued or stopped run, drawn with no accuracy, ran down to the bottom of the accuracy axis
    as if it were the worst run."""
    rows = [{"run_id": "a", "accuracy": 99.5}, {"run_id": "b", "accuracy": None}, {"run_id": "c", "accuracy": 60.0},
            {"run_id": "d", "accuracy": None}]
    drawn, said = views.rows_with_accuracy(rows)
    assert [r["run_id"] for r in drawn] == ["a", "c"]
    # failed too (a walk's run on a device the server has not: the words left it out)
    assert said == "2 runs with no accuracy (queued, training, failed, or stopped before an epoch) are not drawn."
    assert views.rows_with_accuracy(rows[:1]) == (rows[:1], "")


def test_grad_cam_says_how_coarse_its_map_is():
    """s2net's last maps are 3x3, stretched over the 28x28 input: a student read the glow on the
    background beside a drawn hand as the model looking at nothing."""
    net = models.create_model("s2net").eval()
    said = views.cam_caption(net, "W")
    assert said.startswith("Bright regions are where the last convolution found evidence *for* W.")
    assert "only 3×3 cells, stretched over the 28×28 image" in said and "occlusion map is finer" in said


def test_a_tiny_upload_is_not_called_the_size_of_the_datasets_crops():
    """A 5×5 upload was told it was "about the size of the dataset's crops": it is stretched to 28×28."""
    assert views.small_image_text((5, 5)).startswith("This image is only 5×5 pixels, smaller than the model's 28×28")
    assert "about the size of the dataset's crops" in views.small_image_text((28, 28))


def test_the_phantom_column_names_the_lectures_flaw_only_for_a_model_that_has_it():
    """Evaluate's phantom-column warning, now a view model: 300 test images (12 letters x 25) of which
    those of letters 12-23 are all called A, the lecture ConvNet's failure."""
    from signlab.evaluate import Evaluation

    y_true = np.repeat(np.arange(12, 24), 25)
    y_true = np.concatenate([np.repeat(np.arange(12), 25), y_true])
    y_pred = np.where(y_true >= 12, 0, y_true)
    ev = Evaluation(y_true, y_pred, np.eye(24, dtype=np.float32)[y_pred])
    said, icon = views.crowded_column_text(ev, "seed_convnet")
    assert said.startswith("**A phantom column:** 325 test images (54%) are predicted as **A**, which has only 25")
    assert icon == "👻"
    assert "the lecture's flaw" in said and "all 24 scores are 0" in said
    # the same column, without the ReLU on its scores: a lean, not the tour's phantom column (a student
    # reading the ghost beside logistic regression blamed the lecture's flaw)
    plain, icon = views.crowded_column_text(ev, "convnet")
    assert plain.startswith("**A crowded column:** 325 test images") and "flaw" not in plain and "phantom" not in plain
    assert icon != "👻"
    assert views.crowded_column_text(Evaluation(y_true, y_true, np.eye(24, dtype=np.float32)[y_true]), "convnet") is None


def test_force_stop_is_offered_only_once_a_stop_has_had_its_time():
    assert not views.force_stop_offered(None, 1000.0)  # no stop asked
    assert not views.force_stop_offered(1000.0, 1000.0 + views.FORCE_STOP_AFTER)
    assert views.force_stop_offered(1000.0, 1000.1 + views.FORCE_STOP_AFTER)


def test_a_cell_of_the_confusion_matrix_in_words():
    assert views.pair_text(0, 0, 0, 331, 0) == "No test image of **A** was predicted right."
    assert views.pair_text(18, 22, 0, 248, 0) == "No test image of **T** was predicted as X."
    assert views.pair_text(18, 22, 1, 248, 1) == ("**1** of the 248 test images of **T** was predicted as **X**. "
                                                  "Each title is the model's confidence in its answer.")
    assert views.pair_text(0, 0, 1200, 1331, 48).startswith("**1,200** of the 1,331 test images of **A** were "
                                                               "predicted right (the 48 surest shown).")
    # label smoothing caps the confidence a right answer was taught: a 100% model's surest read 92-95%
    assert views.pair_text(0, 0, 1200, 1331, 48, 0.1).endswith(
        "Trained with label smoothing 0.1, its target for the right letter was 90.4%, not 100%: never pushed to be "
        "fully sure, even its surest right answers stay short of 100% (above or below that target).")
    assert "smoothing" not in views.pair_text(18, 22, 1, 248, 1, 0.1)  # a mistake is not about that


def test_the_first_layers_words_follow_its_kind_and_size():
    conv = [{"out": 8, "k": 3, "name": "features.0", "frozen": False}]
    heading, caption = views.first_layer_words("conv", conv)
    assert heading == "First-layer kernels" and caption.startswith("The 8 kernels of size 3×3 that slide over the "
                                                                   "image (layer features.0).")
    assert caption.endswith("edge or blob detectors.")
    # a fixed layer (s2net's whitening) is said as what it is, not as what trained kernels tend to look like
    fixed = views.first_layer_words("conv", [{**conv[0], "frozen": True}])[1]
    assert "edge or blob" not in fixed and fixed.endswith("blue to dark ones.")
    assert views.first_layer_words("logreg")[0] == "Weight templates, one per letter"
    assert set(views.FIRST_LAYER_KINDS) == {"conv", "logreg", "mlp"}


def test_the_why_map_follows_the_model_kind():
    """Classify's left "why" map and its words, per kind of model (the page branched on it itself)."""
    from signlab.models import create_model

    x = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    votes = views.saliency_view(create_model("logreg").eval(), x, 0, 0.5)
    assert votes.signed and votes.title == "Template × input for A" and votes.colorbar == "vote"
    assert votes.values.shape == (28, 28) and "red pixels vote for A" in votes.caption
    mlp = views.saliency_view(create_model("mlp").eval(), x, 1, 0.5)
    assert not mlp.signed and mlp.title == "Gradient saliency for B"
    conv = create_model("convnet").eval()
    faint = views.saliency_view(conv, x, 2, 0.001)  # a letter the model gives almost nothing: nothing glows
    assert faint.title == "Grad-CAM for C" and not faint.values.any() and "almost nothing here (0.1%)" in faint.caption
    said = views.saliency_view(conv, x, 2, 0.5).caption
    assert said.startswith(("Bright regions are where", "Grad-CAM finds no evidence for C")), said
    assert views.nothing_to_classify_text(False).endswith("draw a hand, or start from a dataset image.")
    assert "one flat shade" in views.nothing_to_classify_text(True)


def test_a_tie_at_the_top_is_said_to_be_one():
    """The Map listed A, B, C, D and E at 4.2% each beside "predicted A" for the lecture ConvNet's
    dead-logit images (every score clipped to 0), which read like a bug."""
    import numpy as np

    dead = views.tie_note(np.full(24, 1 / 24, dtype=np.float32))
    assert dead.startswith("All 24 letters tie at 4.2%") and "dead logits" in dead and "the prediction, A," in dead
    two = np.zeros(24)
    two[[2, 5]] = 0.5
    assert views.tie_note(two) == ("2 letters tie at 50.0% (C, F): the prediction, C, is the first of them in the "
                                   "alphabet, not a choice between them.")
    one = np.full(24, 0.01)
    one[7] = 0.77
    assert views.tie_note(one) is None and views.tie_note([1.0]) is None


def test_a_tour_step_says_what_the_students_own_run_took_before_the_estimate():
    """Under step 4 a walk read "about 61 s on this server" after its own run had trained in 33 s (the
    estimate followed a later, slower run of a network of the same speed): the step says its run's
    time first, and only a finished run's."""

    class FakeRun:
        def __init__(self, **row):
            self.row = row

        def status(self):
            return self.row

    text = "it takes about 61 s on this server (49 s of it training)"
    assert views.tour_time_caption(views.tour_run_seconds(None), text) == \
        "It takes about 61 s on this server (49 s of it training)."
    done = FakeRun(status="completed", train_seconds=32.84)
    assert views.tour_time_caption(views.tour_run_seconds(done), text) == f"Your run trained for 32.8 s. Again, {text}."
    for row in ({"status": "stopped", "train_seconds": 5.0}, {"status": "completed", "train_seconds": None}):
        assert views.tour_time_caption(views.tour_run_seconds(FakeRun(**row)), text).startswith("It takes")
    # the page then reads "again" from that run alone (the server's newest five of the network, trained
    # under other loads, said "about 54 s" under "Your run trained for 27.1 s")
    assert views.tour_run_seconds(done) == 32.84 and views.tour_run_seconds(None) is None
    for row in ({"status": "stopped", "train_seconds": 5.0}, {"status": "completed", "train_seconds": None}):
        assert views.tour_run_seconds(FakeRun(**row)) is None


def test_a_finished_runs_loss_keeps_the_live_charts_colour_and_axis():
    """On the tour a run's loss line turned from the live chart's blue to plotly's purple, and its axis
    from "cross-entropy loss" to "smoothed loss", the moment it finished; with two runs the second is red."""
    b = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]
    fig = figures.runs_loss_overlay({"logreg": b, "seed": b})
    assert [t.line.color for t in fig.data] == [figures.BLUE, figures.RED]
    assert figures.live_loss_spec(b)["yTitle"] == "cross-entropy loss"
    assert fig.layout.yaxis.title.text == "cross-entropy loss (smoothed)"


def test_a_run_keeps_one_colour_in_both_overlays():
    """The Runs page draws the epoch chart and the loss chart side by side; the epoch chart took
    plotly's palette and the loss chart ours, and a run with no epoch yet (still training) shifted
    every later run's colour in one chart and not the other."""
    b = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]
    e = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}]
    epochs = {"first": e, "training": [], "third": e}
    batches = {"first": b, "training": b, "third": b}
    by_epoch = {t.name: t.line.color for t in figures.runs_overlay(epochs).data}
    by_step = {t.name: t.line.color for t in figures.runs_loss_overlay(batches).data}
    assert by_epoch == {"first": figures.BLUE, "third": figures.GREEN}
    assert by_step == {"first": figures.BLUE, "training": figures.RED, "third": figures.GREEN}
    # two seeds 0.38 points apart filled the whole accuracy axis: it spans two points at least, as a run's own
    close = {"seed 0": [{"epoch": 1, "val_accuracy": 0.6542}], "seed 1": [{"epoch": 1, "val_accuracy": 0.6580}]}
    lo, hi = figures.runs_overlay(close).layout.yaxis.range
    assert hi - lo >= 2.0 and lo < 65.42 and hi > 65.80
    # an epoch record without the metric (or None) is a gap in the line, not a KeyError
    gaps = figures.runs_overlay({"a": [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2}, {"epoch": 3, "val_accuracy": None}]})
    assert list(gaps.data[0].y) == [50.0, None, None]


def test_a_brush_slider_writes_each_value_apart():
    """Two sweep trials' learning rates both read "1.2e-03" on the brush's slider, and a brush set to
    the lower one kept the other trial (a flaky page test found it: Streamlit's select_slider maps a
    label back to the last value that has it, so (0.0012, 0.0012) came back as (0.00124, 0.00124))."""
    from signlab.compare import distinct_format

    fmt = distinct_format([0.0012, 0.00124, 0.05], log=True)
    assert [fmt(v) for v in (0.0012, 0.00124, 0.05)] == ["1.20e-03", "1.24e-03", "5.00e-02"]
    assert distinct_format([0.001, 0.05], log=True)(0.001) == "1.0e-03"  # no more digits than it takes
    assert [distinct_format([0.25, 0.5])(v) for v in (0.25, 0.5)] == ["0.25", "0.50"]
    assert [distinct_format([0.101, 0.104])(v) for v in (0.101, 0.104)] == ["0.101", "0.104"]
    assert [distinct_format([32, 128])(v) for v in (32, 128)] == ["32", "128"]


def test_a_run_keeps_its_colour_while_it_stays_picked():
    """Colours came from each run's place among the picked, so dropping the first run turned the
    second one's line from red to blue and every later one's too: the line a student followed
    changed colour under them."""
    from signlab.compare import keep_colors

    first = keep_colors(["a", "b", "c"], {}, 10)
    assert first == {"a": 0, "b": 1, "c": 2}
    assert keep_colors(["b", "c"], first, 10) == {"b": 1, "c": 2}  # "a" dropped: the others keep theirs
    assert keep_colors(["b", "c", "d"], {"b": 1, "c": 2}, 10) == {"b": 1, "c": 2, "d": 0}  # a new pick: first free
    assert keep_colors(["x", "y"], {"x": 3, "y": 3}, 10) == {"x": 3, "y": 0}  # never two runs one colour
    assert keep_colors(["x"], {"x": 12}, 10) == {"x": 0}  # a number the palette has not: a fresh one
    many = keep_colors([str(i) for i in range(12)], {}, 10)  # more runs than colours: shared, the least used first
    assert sorted(many.values()) == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    # both overlays draw each run in the colour given, in the series' order
    b = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]
    e = [{"epoch": 1, "val_accuracy": 0.5}]
    by_epoch = {t.name: t.line.color for t in figures.runs_overlay({"b": e, "c": e}, colors=[1, 2]).data}
    by_step = {t.name: t.line.color for t in figures.runs_loss_overlay({"b": b, "c": b}, colors=[1, 2]).data}
    assert by_epoch == by_step == {"b": figures.RED, "c": figures.GREEN}
    with pytest.raises(ValueError, match="1 colours for 2 runs"):
        figures.runs_overlay({"b": e, "c": e}, colors=[1])


def test_the_best_trial_says_how_a_tie_was_broken():
    """A walk saw four trials at 100.00% and the best named #3, then #5, with no word why."""
    rows = [{"number": n, "state": "COMPLETE", "value": v, "val_loss": l}
            for n, v, l in [(0, 0.97, 0.2), (3, 1.0, 0.05), (4, 1.0, 0.08), (5, 1.0, 0.01)]]
    rows.append({"number": 6, "state": "RUNNING", "value": None})
    best = views.best_trial(rows)
    assert best["number"] == 5
    assert views.best_trial_text({**best, "test_accuracy": 0.9664}, rows) == (
        "**Best: trial #5** — 100.00% validation accuracy, 96.64% on the test set (3 trials reach 100.00%: "
        "the lowest validation loss decides, then the earlier trial)")
    alone = views.best_trial(rows[:2])
    assert views.best_trial_text(alone, rows[:2]) == "**Best: trial #3** — 100.00% validation accuracy"
    # two accuracies that only print alike are no tie: the higher one won, not the lower loss
    close = [{"number": 1, "state": "COMPLETE", "value": 13726 / 13727, "val_loss": 0.5},
             {"number": 2, "state": "COMPLETE", "value": 13725 / 13727, "val_loss": 0.01}]
    assert views.percent(close[0]["value"]) == views.percent(close[1]["value"])
    assert views.best_trial_text(views.best_trial(close), close) == "**Best: trial #1** — 99.99% validation accuracy"
    # validation far above test is explained, not left to read as the model's worth (a walk: 95.27% / 68.75%)
    far = {"number": 3, "state": "COMPLETE", "value": 0.9527, "test_accuracy": 0.6875}
    assert views.best_trial_text(far, [far]) == (
        "**Best: trial #3** — 95.27% validation accuracy, 68.75% on the test set. Its validation accuracy runs 27 "
        "points above its test accuracy: the held-out images are drawn at random from the training images, so most "
        "have near copies (other variations of the same photo) among those it trained on. Validation still ranks the "
        "trials against each other; quote the test accuracy.")


def test_a_drawing_starts_from_the_letters_own_images_in_turn(dataset):
    """The Classify page's "a dataset image": the n-th test image of the chosen letter, counting round
    so that "Another image" never runs out, as floats in [0, 1]."""
    test = dataset.test
    first, img = views.nth_image_of(test.images, test.targets, "T", 0)
    assert LETTERS[int(test.targets[first])] == "T" and img.dtype == np.float32 and img.shape == (28, 28)
    assert np.array_equal(img, test.images[first] / np.float32(255.0))
    n_t = int((test.targets == LETTERS.index("T")).sum())
    second, _ = views.nth_image_of(test.images, test.targets, "T", 1)
    assert second > first and views.nth_image_of(test.images, test.targets, "T", n_t)[0] == first


def test_continue_first_offers_the_epochs_a_stopped_run_fell_short_of():
    """Asked for 5 epochs and stopped after 2, the Continue box said 2 and the run ended at 4 with the
    Epochs box still reading 5: it now starts at the 3 missing. A completed run has none missing."""
    stopped = views.live_status({"status": "stopped", "epochs_completed": 2, "target_epochs": 5}, [],
                                has_weights=True)
    assert stopped.can_continue and stopped.missing_epochs == 3 and stopped.epoch == 2 and stopped.target_epochs == 5
    done = views.live_status({"status": "completed", "epochs_completed": 5, "target_epochs": 5}, [], has_weights=True)
    assert done.can_continue and done.missing_epochs == 0
    running = views.live_status({"status": "running", "epochs_completed": 2, "target_epochs": 5}, [])
    assert running.missing_epochs == 0  # nothing to continue while it trains


def test_calibrating_on_fewer_than_three_photos_of_a_letter_is_said_first():
    """One photo of one letter calibrated without a word; Classify then started on that run."""
    from signlab.calibrate import Photo

    one = [Photo("A", "a.png", b"")]
    line = views.few_photos_warning(one)
    assert line.startswith("Fewer than 3 photos of this letter: A (1).") and "calibrate anyway" in line
    plenty = [Photo(k, f"{k}{i}.png", b"") for k in "AB" for i in range(3)]
    assert views.few_photos_warning(plenty) is None
    mixed = plenty + [Photo("C", "c.png", b""), Photo("C", "c2.png", b"")]
    assert views.few_photos_warning(mixed).startswith("Fewer than 3 photos of this letter: C (2).")


def test_calibrating_on_some_letters_says_the_others_may_be_read_less_well():
    """A walk calibrated on 4 photos of A and B: the new run read 57.5% of the dataset's test set against
    its parent's 68.6%, with no word before or after. Before Calibrate the letters without photos are
    named; after it, a fall of 2 points or more is explained."""
    from signlab.calibrate import Photo

    two = [Photo(k, f"{k}{i}.png", b"") for k in "AB" for i in range(2)]
    note = views.missing_letters_note(two)
    assert note.startswith("No photos of 22 letters (C, D, E, F, G, H, I, K, …).") and "less well" in note
    every = [Photo(k, f"{k}.png", b"") for k in LETTERS]
    assert views.missing_letters_note(every) is None and views.missing_letters_note([]) is None
    assert views.missing_letters_note(every[:-1]) == (
        "No photos of 1 letter (Y). The new run leans towards the letters it sees photos of, so it may read the "
        "others less well than the run it comes from: add photos of every letter you will show it.")
    fell = views.calibration_drop_note(0.575, 0.686, 2)
    assert fell.startswith("That is 11.1 points below its parent on the dataset's images. It saw photos of 2 "
                           "letters only, and leans towards them.") and "Classify" in fell
    assert "letters only" not in views.calibration_drop_note(0.90, 0.95, 24)
    assert views.calibration_drop_note(0.68, 0.686, 2) is None  # within 2 points: nothing to explain
    assert views.calibration_drop_note(None, 0.686, 2) is None and views.calibration_drop_note(0.5, None, 2) is None


def test_the_runs_table_gives_a_queued_runs_place_in_the_queue():
    """An instructor's Runs page showed a class's waiting runs as a column of "queued", in no order it
    said, and a student could not tell whether their run was next."""
    from types import SimpleNamespace

    def run(rid, status):
        summary = {"name": None, "model": "s2net", "preset": "fast", "epochs": 0, "target_epochs": 2,
                   "status": status, "batch_size": 128, "lr": 4e-3, "optimizer": "adamw", "schedule": "onecycle",
                   "augment": True, "test_accuracy": None, "train_seconds": None, "created": 0.0}
        return SimpleNamespace(id=rid, summary=lambda: summary)

    runs = [run("a", "queued"), run("b", "running"), run("c", "queued"), run("d", "completed")]
    rows = views.runs_table(runs, queue=["c", "x", "a"])  # "x": a classmate's run this user cannot see
    assert [r["status"] for r in rows] == ["queued: 3 of 3", "running", "queued: 1 of 3", "completed"]
    assert [r["status"] for r in views.runs_table(runs)] == ["queued", "running", "queued", "completed"]


def test_the_train_pages_settings_say_they_are_not_the_runs_beside_them():
    """A student who started the tour's lecture ConvNet saw the fast preset's s2net settings beside
    it, and its Continue button under them, and took them for the run's."""
    from signlab.config import preset
    from signlab.errors import SignlabError

    class Run:
        def __init__(self, cfg):
            self.cfg = cfg

        @property
        def config(self):
            if self.cfg is None:
                raise SignlabError("config.json: unreadable")
            return self.cfg

    text = views.settings_beside_run_text(preset("fast"), Run(preset("lecture")))
    assert text.startswith("These settings are for the next run you start. The run beside them has its own "
                           "(architecture seed_convnet, epochs 10, learning rate 0.001, batch size 32 and ")
    assert text.endswith(" more), and continuing it keeps those.")
    assert views.settings_beside_run_text(preset("fast"), Run(preset("fast"))) is None  # the same: nothing to say
    assert views.settings_beside_run_text(preset("fast"), Run(None)) is None
    assert views.settings_beside_run_text(None, Run(preset("lecture"))) is None  # settings that make no config


def test_the_ensemble_caption_counts_only_a_size_the_setting_allows():
    """Ensemble size 50 (out of range, refused above the Start button) read "50 networks averaged"."""
    assert views.ensemble_members(3) == 3
    assert views.ensemble_members(50) == views.ensemble_members(0) == views.ensemble_members("3") == 1


def test_evaluate_says_when_a_run_learned_from_another_dataset_than_it_tests_on():
    """Evaluate tests every run on the server's test set; a run trained with train --data showed another
    accuracy there than in the runs list (its own test set's), with no word why."""
    assert views.other_data_text(None, None) is None and views.other_data_text("/srv/d", "/srv/d") is None
    assert views.other_data_text("/data/my_signs", None) == (
        "This run was trained on /data/my\\_signs; this page tests it on this server's dataset, the bundled "
        "Sign Language MNIST, so its accuracy here can differ from the one the runs list shows.")
    assert "trained on the bundled Sign Language MNIST; this page tests it on this server's dataset, /srv/d," in \
        views.other_data_text(None, "/srv/d")


def test_user_text_is_text_wherever_a_page_draws_it_as_markdown():
    """A review found user text drawn as markdown unescaped: a photo's file name in the no-hand warning
    and under its thumbnail, a study's name (``--study __x__``) in the running-sweeps warning, a
    worker's last line (which may quote a --storage or a path), and a failed run's message on Train
    (Runs escaped it). Each is :func:`views.md` of the text now, said once."""
    from types import SimpleNamespace

    evil = "**b** see www.evil.example"
    photo = SimpleNamespace(letter="A", name=evil)
    warning = views.no_hand_warning([(photo, False)])
    assert f"(A: {views.md(evil)})" in warning and "**b**" not in warning
    assert views.thumbnail_caption("**ab**.png", True) == views.md("**ab**.png") == "\\*\\*ab\\*\\*.png"
    said = views.running_sweep_warning([{"study": "__x__", "owner": "ann", "running": True}], "ann")
    assert "(\\_\\_x\\_\\_)" in said, said
    failed = views.sweep_status([], [], False, False, f"signlab: {evil}")
    assert failed.message == f"The sweep could not run: {views.md(evil)}"
    for state, start in (("failed", "Training failed: "), ("diverged", "📉 Diverged: ")):
        v = views.live_status({"status": state, "message": evil, "epochs_completed": 1}, [])
        assert v.message == start + views.md(evil), v.message


def test_an_id_in_a_code_span_is_shown_as_it_is():
    """A code span does not read escapes: the run-gone warning showed ``seed\\_convnet`` for an id's
    ``_``. :func:`views.code` keeps the id whole, and a backtick in the text inside the span."""
    assert views.code("20261204-035651-seed_convnet-c66") == "`20261204-035651-seed_convnet-c66`"
    assert views.code("a`b") == "``a`b``" and views.code("`x") == "`` `x ``"


def test_a_finished_runs_loss_can_be_replayed_falling():
    """A 2-epoch logistic regression trains in 2-3 s, before the Train page's first poll: a student
    who pressed Start saw the finished curve, never the loss falling. The finished chart has a
    Replay button that draws the lines again, step by step, on axes fixed to the whole run."""
    batches = [{"step": s, "loss": 3.0 / s} for s in range(1, 2001)]
    still = figures.loss_curve(batches)
    assert not still.frames and not still.layout.updatemenus
    fig = figures.loss_curve(batches, replay=True)
    [menu] = fig.layout.updatemenus
    [button] = menu.buttons
    assert button.label == "▶ Replay" and button.method == "animate"
    assert menu.y < 0  # under the chart: at the top right the toolbar took the click
    frames = fig.frames
    assert 2 <= len(frames) <= figures.REPLAY_FRAMES
    lengths = [len(f.data[1].x) for f in frames]
    assert all(a <= b for a, b in zip(lengths, lengths[1:]))  # the line grows
    assert max(lengths[:-1]) <= figures.REPLAY_POINTS  # a long run's frames stay small
    # the last frame is the chart as drawn, and the axes do not move while it plays
    for drawn, last in zip(fig.data, frames[-1].data):
        assert list(last.x) == list(drawn.x) and list(last.y) == list(drawn.y)
    assert list(fig.layout.xaxis.range) == [fig.data[0].x[0], fig.data[0].x[-1]]
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= max(y for y in fig.data[0].y)
    # frames hold only the first points of each line, in order
    first = frames[0].data[1]
    assert list(first.x) == list(fig.data[1].x[:len(first.x)])
    assert not figures.loss_curve(batches[:1], replay=True).frames  # one point: nothing to play


def test_words_are_listed_as_a_sentence_lists_them():
    """One helper for "a, b and c" (the Train page's Custom line, its lecture-network note, the Runs
    page's seed note and the sweep budget each wrote it)."""
    from signlab.numbers import and_list

    assert [and_list(w) for w in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]
    assert and_list(w for w in "xy") == "x and y"


def test_the_runs_tables_numbers_are_read_as_everywhere_else():
    """compare had a finite-number check of its own, which raised OverflowError on a 400-digit int (a
    hand-edited meta.json); numbers.finite, which every other reader uses, says it is no number."""
    from signlab import compare

    rows = [{"x": 10**400}, {"x": 1}, {"x": 2}]
    assert compare.column_kind(rows, "x") == "category"  # not all numbers: not drawn on a number axis
    assert compare.number_bounds(rows, "x") == (1, 2)
