"""View models: what the pages, the guided tour and the command line show, as plain data.

Pages draw these with widgets; nothing here imports Streamlit, so every rule a page follows (what
a run's status says, how long it has left, which buttons are enabled, whether the model is "not
sure", how long a preset takes on this machine) is reachable from a unit test. Inputs are the run
store's status rows, the run log's metric records and plain numbers; outputs are frozen
dataclasses, strings and lists of dicts.
"""
from __future__ import annotations

import functools
import math
import shlex
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np

from . import calibrate as _calibrate
from . import compare as _compare
from . import config as _config
from . import confusion as _confusion
from . import embedding as _embedding
from . import guide as _guide
from . import inference as _inference
from . import kernels as _kernels
from . import models as _models
from . import preprocess as _preprocess
from . import runs as _runs
from . import sampling as _sampling
from . import settings as _settings
from . import sweep as _sweep
from . import teach as _teach
from .data import TRAIN_ROWS, class_counts as _class_counts
from .errors import SignlabError
from .events import ONE_THREAD, STOPPED_BY_REQUEST, Logged, logged
from .events import continued_steps as _continued_steps
from .export import onnx_path as _onnx_path
from .policy import Policy as _Policy
from .health import health_records, health_series, layer_labels as _layer_labels
from .labels import IMAGE_SIZE, LETTERS, NUM_CLASSES
from .normalize import input_norm as _input_norm
from .numbers import DASH, and_list, count_text, duration, finite, newest_median, percent_text, whole_number
from .numbers import code as _code
from .numbers import md as _md
from .preprocess import Prepared
from .progress import PACE_PROGRESS, _pause_words, progress_text, seconds_left  # the Train page's line is the command line's
from .store import ACTIVE, HOLDER_LOST, HOLDING, RunState

# --------------------------------------------------------------------------- numbers as a student reads them
TRAINING_IMAGES = TRAIN_ROWS  # the bundled training CSV; a page passes the loaded dataset's size when it has it


def percent(v: Any, digits: int = 2) -> str:
    """A fraction as a percentage (never a false 100%: :func:`signlab.numbers.percent_text`), or a dash."""
    n = finite(v)
    return percent_text(n, digits) if n is not None else DASH


# --------------------------------------------------------------------------- live status of one run
@dataclass(frozen=True)
class LiveStatus:
    """What a run is doing now, for the Train page, the tour and the command line."""

    state: str  # a RunState value, or "" when there is no run
    kind: str  # how to show the message: "progress", "info", "success", "warning" or "error"
    message: str
    progress: float | None = None  # 0..1 through this fit, None when no bar is shown
    epoch: int | None = None
    target_epochs: int = 0
    images_per_second: float | None = None
    seconds_left: float | None = None  # from this run's own measured speed
    queue_position: int | None = None
    active: bool = False  # queued or holding a slot: the page keeps polling
    paused: bool = False
    can_start: bool = True
    can_stop: bool = False
    can_pause: bool = False  # the third button reads "Pause"...
    can_resume: bool = False  # ...or "Resume" when this is true
    can_continue: bool = False
    more_epochs: int = _runs.MAX_EPOCHS  # the most it may be continued for (a run's total stays within the range)
    # the epochs it stopped short of what was asked (stopped at 2 of 5: 3), else 0: Continue's first value
    missing_epochs: int = 0
    notice: str = ""  # said beside the buttons: this run was started in another tab or session
    notice_aside: bool = False  # the notice only says why Start is off here: small print, not a box
    awaiting_test: bool = False  # completed, its test accuracy not written yet: the page looks again

    @property
    def pause_label(self) -> str:
        return pause_label(self.paused)


AWAIT_TEST_SECONDS = 60.0  # how long after a run completes the Train page waits for its test accuracy


RECENT_SHARE = 0.25  # the time left reads the pace of this last share of the training time so far


def fit_seconds_left(fit: Sequence[dict[str, Any]]) -> float | None:
    """Time left of a fit from its recent pace: the last quarter of its training time, where that
    holds at least two records and some progress, else its whole pace (:func:`seconds_left`). On a
    busy server the pace fell from 754 to 57 images a second mid-run, and the whole run's pace said
    "about 28 s left" for three minutes."""
    return fit_times_left(fit)[0]


def fit_times_left(fit: Sequence[dict[str, Any]]) -> tuple[float | None, float | None]:
    """(recent, whole): the time left at the recent pace (:func:`fit_seconds_left`) and at the whole
    fit's pace, read from its first logged step (:func:`seconds_left`); the Train line says both
    where they differ."""
    if not fit:
        return None, None
    last = fit[-1]
    p, t = finite(last.get("progress")), finite(last.get("train_seconds"))
    first = (finite(fit[0].get("progress")), finite(fit[0].get("train_seconds")))
    whole = seconds_left(p, t, first)  # None for a missing figure, or too early to say
    if whole is None or p is None or t is None:
        return whole, whole
    earlier = [r for r in fit[:-1] if (finite(r.get("train_seconds")) or 0.0) <= t * (1 - RECENT_SHARE)
               and finite(r.get("progress")) is not None]
    if not earlier:
        return whole, whole
    p0, t0 = finite(earlier[-1]["progress"]), finite(earlier[-1]["train_seconds"]) or 0.0
    if p - p0 < PACE_PROGRESS or t - t0 <= 0:  # too little done since to read a pace
        return whole, whole
    return (t - t0) / (p - p0) * (1 - min(p, 1.0)), whole


def current_fit(batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch records of the latest fit: a continued run restarts its step count at 1."""
    start = 0
    for k in range(1, len(batches)):
        if batches[k].get("step", 0) <= batches[k - 1].get("step", 0):
            start = k
    return list(batches[start:])


def _completed_message(status: dict[str, Any], done: int, now: float | None, validated_on_test: bool,
                       shifted: bool) -> tuple[str, bool]:
    """A completed run's line, and whether its test accuracy is still to come (:func:`live_status`).

    The test accuracy (test-time shifts included) is written a few seconds after the run completes;
    until then the last validation (the network alone, no shifts) is shown, named as such. The two
    can differ (100% and 99.74% for one fast-preset run), so the page looks again for up to a minute
    rather than stay on the first and contradict the Evaluate page."""
    test, val = finite(status.get("test_accuracy")), finite(status.get("val_accuracy"))
    secs = finite(status.get("train_seconds")) or 0.0
    awaiting = awaiting_test(status, now)
    if test and val and percent(test) != percent(val):  # a student reads 100% on the chart and 99.74% here
        # in plain words: "the network alone" against "the model as it predicts" read as jargon
        if not validated_on_test:
            why = f"The chart read {percent(val)} on images held out from training, not the test images."
        elif shifted:
            why = (f"The chart read {percent(val)} on the same test images: it asks the network once an "
                   "image, while the test accuracy averages its answers for each image and four copies "
                   # the difference of the two numbers shown (99.71 and 99.69 read "0.01" from unrounded ones)
                   f"moved by one pixel (test-time shifts), which moved it "
                   f"{'up' if round(100 * test, 2) > round(100 * val, 2) else 'down'} by "
                   f"{abs(round(100 * test, 2) - round(100 * val, 2)):.2f} points.")
        else:
            why = f"The chart read {percent(val)} on the same test images after the last epoch."
        result = f": **{percent(test)}** test accuracy. {why}"
    elif test:
        result = f": **{percent(test)}** test accuracy."
    elif val:
        # where the chart validates on the test images, "validation accuracy" taught a student to call
        # the test set a validation set
        result = ((f": **{percent(val)}** on the test images, as the chart read them" if validated_on_test
                   else f": **{percent(val)}** validation accuracy")
                  + ("; the test accuracy follows in a few seconds." if awaiting else "."))
    else:
        result = "."
    return f"✅ Finished {count_text(done, 'epoch')} in {secs:.1f} s of training" + result, awaiting


def awaiting_test(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether a completed run's test accuracy is still to come: it has a validation accuracy, no
    test accuracy, and changed under :data:`AWAIT_TEST_SECONDS` ago (``now``: ``time.time()``). Train's
    line and Home's table ask the same."""
    test, val = finite(status.get("test_accuracy")), finite(status.get("val_accuracy"))
    since = (time.time() if now is None else now) - (finite(status.get("updated")) or 0.0)
    return bool(val and not test and since < AWAIT_TEST_SECONDS)


def pause_label(paused: bool) -> str:
    """The Pause/Resume button's label, the same on Train and Runs."""
    return "⏯ Resume" if paused else "⏸ Pause"


def live_status(status: dict[str, Any], records: Sequence[dict[str, Any]], *, mine: bool = True,
                queue_position: int | None = None, job_limit: int = 1, has_weights: bool = False,
                target_epochs: int | None = None, elsewhere: bool = False, now: float | None = None,
                validated_on_test: bool = True, shifted: bool = True, start_refused: str = "",
                new_refused: str = "") -> LiveStatus:
    """The live status of a run from its status row (``Run.status()``) and its metric records.

    ``elsewhere``: the page shows the user's active run that another tab or session started; Start
    stays enabled (a second run beside it is the user's choice) and the notice says so. ``now``:
    the time (``time.time()``) that decides whether a completed run's test accuracy may still come.
    ``start_refused``: why this user may not start a run now (a quota); Start is then off, and the
    notice says why. ``new_refused``: why they may not make a new run (the runs a student may keep):
    Start is off and says why, Continue (no new run) stays on.
    """
    state = str(status.get("status") or "")
    active = state in ACTIVE
    continuable = mine and not active and has_weights
    # "Start trains another one beside it" sat under the quota's refusal to start one; Continue, a
    # start too, was on and refused after the click
    refused = (f"**{'Start** and **Continue** are' if continuable else 'Start** is'} off: {start_refused}."
               if start_refused else f"**Start** is off: {new_refused}." if new_refused else "")
    if not state:
        return LiveStatus("", "info", "", can_start=not (start_refused or new_refused), notice=refused)
    target = int(status.get("target_epochs") or target_epochs or 0)
    done = int(status.get("epochs_completed") or 0)
    message = str(status.get("message") or "")
    paused = state == RunState.PAUSED
    resuming = paused and not status.get("control")  # Resume pressed (not Stop): waiting for a slot
    notice, aside = _start_notice(state, mine, elsewhere, paused, job_limit, refused)
    if paused and not resuming and message.startswith("paused"):  # how long it may stay paused (api.ControlWatcher)
        message = paused_message(message, md(person(status["paused_by"])) if status.get("paused_by") else None)
        notice = " ".join(filter(None, [notice, message[:1].upper() + message[1:] + "."]))
    buttons = dict(active=active, paused=paused,
                   can_start=(elsewhere or not (active and mine)) and not (start_refused or new_refused),
                   can_stop=active and mine, notice=notice, notice_aside=aside,
                   can_pause=mine and state == RunState.RUNNING, can_resume=mine and paused and not resuming,
                   can_continue=continuable and not start_refused and _runs.epochs_left(done) > 0,
                   more_epochs=_runs.epochs_left(done), target_epochs=target,
                   missing_epochs=max(0, target - done) if not active else 0)
    if state == RunState.QUEUED:
        # a run taken back from its holder (it died, or its worker was shut down): why it waits again
        again = message[:1].upper() + message[1:] + ". " if message.startswith(HOLDER_LOST) else ""
        return LiveStatus(state, "info", f"⏳ {again}Waiting for a free slot: number {queue_position or '?'} "
                          f"in the queue ({job_limit} training job{'s' if job_limit > 1 else ''} at a time on this server).",
                          queue_position=queue_position, **buttons)
    if state in HOLDING:
        fit = current_fit(logged(records, Logged.BATCH))
        if not fit:
            return LiveStatus(state, "progress", "starting the worker and loading the data…" +
                              _pause_words(paused, resuming), progress=0.0, **buttons)
        last = fit[-1]
        # from the log, a file: NaN or text there made the live feed's JSON a 500 on every poll
        p = min(max(finite(last.get("progress")) or 0.0, 0.0), 1.0)
        speed = finite(last.get("samples_per_second"))
        left, whole = fit_times_left(fit)
        epoch = last.get("epoch")
        epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else done + 1
        return LiveStatus(state, "progress", progress_text(epoch, target, images_per_second=speed, seconds_left=left,
                                                        paused=paused, resuming=resuming, whole_left=whole),
                          progress=p,
                          epoch=epoch, images_per_second=speed, seconds_left=left, **buttons)
    if state == RunState.COMPLETED:
        text, awaiting = _completed_message(status, done, now, validated_on_test, shifted)
        return LiveStatus(state, "success", text, epoch=done, awaiting_test=awaiting, **buttons)
    if state == RunState.DIVERGED:
        return LiveStatus(state, "warning", f"📉 Diverged: {md(message)}", epoch=done, **buttons)
    if state == RunState.FAILED:  # the error's words may quote a source or a file the user gave: text
        return LiveStatus(state, "error", f"Training failed: {md(message)}", epoch=done, **buttons)
    if state == RunState.STOPPED:  # blue, not yellow: most often its user pressed Stop, and nothing went wrong
        return LiveStatus(state, "info", _stopped_words(message, status.get("stopped_by"), done, mine), epoch=done,
                          **buttons)
    return LiveStatus(state, "warning", f"{state.capitalize()}: {md(message)}", epoch=done, **buttons)


def taken_up_text(status: dict[str, Any]) -> str:
    """What the Train page says of a run whose training process died or was shut down and which
    signlab queued again (the store's ``taken_up``), until its user continues it; "" for none. A
    student whose server was killed mid-run read only "epoch 3/5", then "Finished 5 epochs"."""
    taken = status.get("taken_up")
    n = taken.get("times") if isinstance(taken, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return ""
    epoch = taken.get("epoch")
    times = {1: "once", 2: "twice"}.get(n, f"{n} times")
    went_on = (f"from epoch {epoch}, whose weights were kept" if isinstance(epoch, int) and epoch > 0
               else "from its start (no epoch had finished)")
    return (f"🔁 Its training process stopped {times} (a server restart, or its worker stopped or killed), "
            f"and signlab took the run up again {went_on}.")


def _start_notice(state: str, mine: bool, elsewhere: bool, paused: bool, job_limit: int,
                  refused: str) -> tuple[str, bool]:
    """What the Train page says about its Start button while it shows this run: why it is off, or
    what a click does beside the user's active run; ``refused`` (a quota's words) when nothing else.
    With whether it is only the why of a Start that is off here (small print: as a box it pushed the
    live chart below the fold of a 1280x900 window)."""
    if not (state in ACTIVE and mine):
        return refused, False
    # "beside it" only where the server trains more than one run at a time: with one slot a second
    # run waits in the queue (a student read "trains another one beside it" and waited for two)
    beside = "beside it" if job_limit > 1 else "after it (this server trains one run at a time)"
    if elsewhere:
        doing = "waiting in the queue" if state == RunState.QUEUED else "still training"
        return (f"This is your run that is {doing}, started in another tab or session. "
                + (refused or f"**Start** {'trains' if job_limit > 1 else 'queues'} another one {beside}, "
                              "with the settings below.")), False
    if refused or paused:
        return refused, False
    # Start is off here: say so, as the other tab's words do
    doing = "waits in the queue" if state == RunState.QUEUED else "trains"
    # why a new tab: a walk read "open Train in a new tab" as advice without a reason
    # with one slot, "to start another after it" read as a contradiction: why a tab for a run that
    # cannot start? It is queued there, to train when this one ends
    # kept short, as small print above the live chart (at three lines it pushed the chart below the fold)
    another = "To start another beside it" if job_limit > 1 else "To queue another, to train after this one"
    return (f"**Start** is off while this page follows this run (it {doing}). {another}, open Train in a "
            "new tab, where Start is on."), True


def _stopped_words(message: str, stopped_by: str | None, done: int, mine: bool = True) -> str:
    """A stopped run's line: who stopped it (drawn as markdown: a user id is text) and what is kept, then
    why it slowed down, if it went on with one thread. Said inside the first sentence, that note ("on
    one thread after step 1650: another program kept this computer's processor busy…") turned a Stop
    the student had pressed into an alarm about threads. ``mine``: Continue is named only to the run's
    owner (a classmate looking on read "Continue trains on from there", and had no Continue)."""
    message, note = stopped_and_slowed(message, md(person(stopped_by)) if stopped_by else None)
    said = message[:1].upper() + message[1:] if message.lower().startswith("stopped") else \
        (f"Stopped: {message}" if message else "Stopped")
    kept = (f" The weights after epoch {done} are kept" + (": Continue trains on from there." if mine else ".")
            if done else " No epoch finished, so there are no weights to keep.")
    slowed = f" (It trained {ONE_THREAD}{note}.)" if note is not None else ""
    return f"⏹ {said}.{kept}{slowed}"


def run_phrase(name: str | None, run_id: str, model: str | None = None, owner: str | None = None) -> str:
    """A run inside a sentence or on a button: its name, or "your <model> run" where its name is
    only its id ("Calibrate 20261203-105231-s2net-3f… on 9 photos" read as noise); "<owner>'s
    <model> run" when ``owner`` names someone else (an instructor watching a student's run)."""
    if name and name != run_id:
        return name
    if not model:
        return run_id
    return f"{owner}'s {model} run" if owner else f"your {model} run"


def quoted_run(name: str | None, run_id: str, model: str | None = None) -> str:
    """:func:`run_phrase` with a run's own name in quotes, for a button whose verb runs into it
    ('Calibrate calibrated on 6 photos · 4 Dec on 6 photos' read as a stammer)."""
    phrase = run_phrase(name, run_id, model)
    return f"“{phrase}”" if phrase == name else phrase


def mistakes_caption(mistakes: Sequence[dict[str, Any]], wrong: int) -> str:
    """The words over Evaluate's mistakes: a "confident mistake" only where the surest one was
    confident (a run whose worst mistakes got 30%, or the lecture ConvNet's 4% for every letter, read
    "A confident mistake…" above them)."""
    order = ("Wrong answers, the ones the model was surest of first (true → predicted, confidence)"
             + (f"; the {len(mistakes)} surest of {wrong:,} shown" if wrong > len(mistakes) else "") + ". ")
    top = max(m["confidence"] for m in mistakes)
    if top >= 0.5:
        return order + ("A confident mistake often shows two letters that really look alike, or an image that is "
                        "hard even for a person.")
    if top <= 1.5 / NUM_CLASSES:
        return order + (f"Even the surest got only {percent(top, 0)}: about 1/{NUM_CLASSES} each, as if every letter scored the "
                        "same. The model is not choosing between look-alikes here; it has no answer for these images.")
    return order + (f"Even the surest got only {percent(top, 0)}: the model was unsure of every image it got wrong, "
                    "which is what you want from a model that errs.")


def run_heading(name: str | None, run_id: str, model: str | None = None, owner: str | None = None) -> str:
    """The Train page heads a run with its name; a run named by its id (an older or a command-line
    run) is called by its model instead (:func:`run_phrase`), the id staying in the caption."""
    phrase = run_phrase(name, run_id, model, owner)
    if phrase in (name, run_id):
        return f"Run {phrase}"
    return phrase if owner else phrase[0].upper() + phrase[1:]  # "Your s2net run"; an e-mail stays as it is


def model_label(model: Any, ensemble: Any = 1) -> str:
    """A run's model with its ensemble size: "fastcnn ×3" (Home said "fastcnn" of the robust preset's
    three networks, beside Evaluate's "fastcnn ×3")."""
    members = int(finite(ensemble) or 1)
    return f"{model} ×{members}" if members > 1 else str(model)


def _config_parts(cfg: Any) -> tuple[str, list[str]]:
    """A run's model (with its ensemble size) and its other settings worth a glance, as words."""
    model = model_label(cfg.model, cfg.ensemble)
    rest = (["equalize"] if cfg.input_norm == "equalize" else []) + (
        ["photo-like augmentation"] if cfg.augment_photo else [])
    # schedule "none" read as nothing at all ("adam, none, seed 0"): a constant rate says what it is
    schedule = _config.SETTING["schedule"].option_text(cfg.schedule)
    return model, rest + [f"batch {cfg.batch_size}", f"lr {cfg.lr:g}", cfg.optimizer, schedule]


def config_line(cfg: Any, device: str = "") -> str:
    """The settings of a run in one line, under its heading."""
    model, rest = _config_parts(cfg)
    return " · ".join([model, *rest] + ([device] if device else []))


def weakest_letter_text(rows: Sequence[dict[str, Any]]) -> str:
    """Evaluate's "weakest letter": the letter of lowest recall (``rows`` as per_class gives them, recall
    in percent). A model right on every image has none (it named A, the first of 24 at 100%)."""
    weakest = min(rows, key=lambda r: r["recall"])
    # "none: all 100%" was cut to "none: all…" in the 170-px metric
    # one decimal, as the table below gives it ("T: 92%" above a table reading 91.5%)
    return "all 100%" if weakest["recall"] >= 100 else f"{weakest['letter']}: {percent(weakest['recall'] / 100, 1)}"


def start_line(cfg: Any) -> str:
    """What Start will train, beside the button: every number a student may have typed, as the run
    will use it. A number too long for the browser (23 digits) never reaches the server: its box
    turns red and keeps the old value, which this line shows (without it, Start trained 2 epochs
    while the box read 12345678901234567890123)."""
    model, rest = _config_parts(cfg)
    return f"**{model} for {count_text(cfg.epochs, 'epoch')}** ({', '.join(rest)}, seed {cfg.seed})"


def my_active_run(runs: Iterable[Any], mine: Callable[[Any], bool]) -> Any | None:
    """This user's newest run that is training (or paused), else the newest queued one: what a new
    tab or session shows. The newest alone showed a queued run and hid the one training."""
    queued = None
    for r in runs:  # newest first
        try:
            state = str(r.summary()["status"])
            if state in ACTIVE and mine(r):
                if state != RunState.QUEUED:
                    return r
                queued = queued or r
        except (SignlabError, OSError, KeyError):  # an unreadable run is not the one being trained
            continue
    return queued


# why a run's validation curve and its test accuracy can disagree (the Runs page, beside both)
VALIDATION_VS_TEST = ("Validation is read after each epoch from the network alone; a run's test accuracy (the "
                      "table, Evaluate) is its finished model as it predicts, with test-time shifts where the "
                      "model has them (the image and its four 1-pixel shifts, averaged). When validation is the "
                      "test set (the default), the two can differ either way: by a few images for a strong "
                      "model, by hundreds for a weak one (a logistic regression with test-time shifts moved by "
                      "3 points); a run that holds out part of the training set validates on other images.")


def stopped_and_slowed(message: str, by: str | None) -> tuple[str, str | None]:
    """A stopped run's message naming ``by`` (:func:`stopped_message`), and apart from it the note
    on why it went on with one thread (the rest of "; on one thread after step …"), or None. Said
    inside the first sentence, that note turned a Stop the student had pressed into an alarm."""
    said, sep, note = stopped_message(message, by).partition(f"; {ONE_THREAD}")
    return said, (note if sep else None)


def stopped_message(message: str, by: str | None) -> str:
    """A stopped run's message, naming ``by`` (the store's ``stopped_by``: set only when someone
    other than the owner stopped it, an instructor) where the trainer wrote "stopped by request",
    which would tell the student they had."""
    if not by:
        return message
    if message.startswith(STOPPED_BY_REQUEST):
        return f"stopped by {by}{message.removeprefix(STOPPED_BY_REQUEST)}"
    return f"stopped by {by}" + (f" ({message})" if message else "")


def person(user_id: str | None) -> str | None:
    """Who a user id is, in a sentence: a signed-in user by their id (an e-mail address), an account of
    the server's own machine (``local:NAME``: its command line, or a dashboard without sign-in) by
    name and where ("Stopped by local:root" told a student nothing)."""
    if user_id and user_id.startswith("local:"):
        return f"{user_id.removeprefix('local:')} (an account on the server itself)"
    return user_id


def paused_message(message: str, by: str | None) -> str:
    """A paused run's message, naming ``by`` (the store's ``paused_by``: someone other than its owner,
    an instructor), as a stop by them is named: the student's page said only "paused"."""
    if by and message.startswith("paused") and not message.startswith("paused by"):
        return f"paused by {by}{message.removeprefix('paused')}"
    return message


def completed_message(status: dict[str, Any]) -> str:
    """A run's message with the epoch count over the whole run: a continued run's trainer says
    "trained 1 epoch" for its last fit only, beside a table that counts all of them (runs saved
    by an older signlab say "trained 1 epoch(s)"); a stopped run's names who stopped it."""
    message = str(status.get("message") or "")
    if str(status.get("status")) == RunState.STOPPED:
        # why it slowed, after who stopped it and when, as on Train: inside it, a teacher read a Stop
        # they had pressed as a fault about threads
        said, note = stopped_and_slowed(message, person(status.get("stopped_by")))
        return said + (f" (it trained {ONE_THREAD}{note})" if note is not None else "")
    if str(status.get("status")) == RunState.PAUSED:
        if not status.get("control") and "control" in status:  # Resume pressed: it waits for a slot
            return "resuming as soon as a slot is free"
        return paused_message(message, person(status.get("paused_by")))
    done = status.get("epochs") if "epochs" in status else status.get("epochs_completed")
    if re.fullmatch(r"trained \d+ epoch(\(s\)|s)?", message) and isinstance(done, int):
        return f"trained {count_text(done, 'epoch')}"
    return message


# --------------------------------------------------------------------------- time estimates
# the runs whose speed is measured: completed ones, and stopped ones (a robust run stopped after 3
# epochs had timed 1,675 images a second, and the page went on guessing 3 times too fast)
SPEED_STATES = (RunState.COMPLETED, RunState.STOPPED)


def _alike(rows: Iterable[dict[str, Any]], cfg: Any) -> list[dict[str, Any]]:
    """The completed or stopped runs whose speed says something of ``cfg``'s: the same network (or
    one that trains at the same speed, :func:`signlab.models.speed_family`) and ensemble; of those,
    the ones of the same batch size and width when there are any (a sweep's batch-32 trials ran at a
    third of the fast preset's pace)."""
    family, ensemble = _models.speed_family(cfg.model), int(getattr(cfg, "ensemble", 1) or 1)
    done = [r for r in rows if str(r.get("status")) in SPEED_STATES and r.get("model")
            and _models.speed_family(str(r["model"])) == family and int(r.get("ensemble") or 1) == ensemble]
    same = [r for r in done if r.get("batch_size") == cfg.batch_size
            and r.get("width") == getattr(cfg, "width", None)]
    return same or done


SPEED_ROWS = 500  # the newest completed runs of every user the estimates read (one query)


def server_speed_rows(mine: Iterable[dict[str, Any]], everyone: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the time estimates read, newest first: the user's own runs (``mine``: their summaries,
    config included) and every other completed run on the server (``everyone``: the store's rows,
    whose batch size and width were recorded when the run was made). A server's speed is not
    anyone's private data: reading only the user's own runs, a class server told a student it "has
    not trained logreg yet" beside a classmate's twenty logistic regressions."""
    out = list(mine)
    seen = {r.get("run_id") for r in out}
    out += [r for r in everyone if r.get("run_id") not in seen]
    return sorted(out, key=lambda r: finite(r.get("created")) or 0.0, reverse=True)


def measured_speed(rows: Iterable[dict[str, Any]], cfg: Any) -> float | None:
    """Images a second this server trained ``cfg``'s network at, from its completed runs (median of
    the newest five, :func:`_alike`); None when it has not trained that network yet."""
    return _speed(_alike(rows, cfg))


def _speed(alike: Sequence[dict[str, Any]]) -> float | None:
    return newest_median(alike, "samples_per_second", least=1e-9)


GUESS_WITHIN = 10.0  # a network guessed from one this many times more or less work an image, at most


def guessed_speed(rows: Iterable[dict[str, Any]], cfg: Any) -> tuple[float, str] | None:
    """A guess at the images a second ``cfg``'s network trains at, on a server that has not trained
    it, and the network it comes from: the measured speed of the one nearest in work an image
    (mult-adds, times its ensemble size), scaled by the ratio of the two, and by the square root of
    the batch sizes' ratio. None when no trained network is within ``GUESS_WITHIN`` of its work
    (logistic regression's speed is its overheads', and said nothing of a ConvNet's).

    Measured on a 2-core AMD EPYC: s2net (2.4 M mult-adds) at batch 128 trained 10,000 images a
    second and at batch 32 4,800; the lecture ConvNet (6.2 M) at batch 128 4,700, guessed 3,850."""
    def work(model: str, ensemble: Any) -> float:
        return _models.mult_adds(model) * int(ensemble or 1)

    try:
        target = work(cfg.model, getattr(cfg, "ensemble", 1))
    except SignlabError:
        return None
    best = None
    for r in rows:
        speed = finite(r.get("samples_per_second"))
        if str(r.get("status")) not in SPEED_STATES or not r.get("model") or not speed or speed <= 0:
            continue
        try:
            theirs = work(str(r["model"]), r.get("ensemble"))
        except SignlabError:
            continue
        gap = abs(math.log(theirs / target)) if theirs > 0 and target > 0 else math.inf
        if gap <= math.log(GUESS_WITHIN) and (best is None or gap < best[0]):
            batch = (int(cfg.batch_size) / int(r.get("batch_size") or cfg.batch_size)) ** 0.5
            best = (gap, speed * theirs / target * batch, str(r["model"]))
    return None if best is None else (best[1], best[2])


def training_images(cfg: Any, n_train: int = TRAINING_IMAGES) -> int:
    """How many images a configuration trains on in total (epochs, held-out share and max_steps)."""
    per_epoch = int(n_train * (1 - float(getattr(cfg, "val_fraction", 0.0) or 0.0)))
    total = per_epoch * int(cfg.epochs)
    max_steps = getattr(cfg, "max_steps", None)
    if max_steps:
        total = min(total, int(max_steps) * int(cfg.batch_size))
    return total


@dataclass(frozen=True)
class Estimate:
    """How long a configuration takes on this server: its ``training`` seconds, the ``whole`` wait
    (training and the measured overhead of data, validation and saves), ``like``: the network a
    guessed speed comes from (None when this server has trained this one), and ``timed``: the speed
    is a trial's, a few of its steps timed on this machine (:func:`signlab.trial.measure`)."""

    training: float
    whole: float
    like: str | None = None
    timed: bool = False


def estimate(cfg: Any, rows: Iterable[dict[str, Any]], n_train: int = TRAINING_IMAGES,
             trial: float | None = None, guess: bool = True) -> Estimate | None:
    """:class:`Estimate` of ``cfg`` from the measured speed of this server's completed (or stopped)
    runs; when it has not trained this one, from ``trial`` (the images a second a few of its steps
    trained at on this machine), else a guess from a network of like size; None when nothing says.
    The trial comes before the guess: work an image leaves out augmentation, and the robust
    preset's photo-like images made it train 3 times slower than guessed from a ConvNet's speed
    (59 s said, about 3 min taken; the fast preset 2 s said, 4.3 s taken). ``guess`` False: no guess
    (an aside that times nothing: Classify said the robust preset takes "roughly 51 s", a walk timed 146 s)."""
    rows = list(rows)
    alike = _alike(rows, cfg)  # read once for the speed and the overhead
    speed, like = _speed(alike), None
    if speed is None:
        if trial is not None and math.isfinite(trial) and trial > 0:
            seconds = training_images(cfg, n_train) / trial  # steps only: whole epochs ran 3-8% slower (a 2-core Xeon)
            return Estimate(seconds, seconds, timed=True)
        guessed = guessed_speed(rows, cfg) if guess else None
        if guessed is None:
            return None
        speed, like = guessed
    training = training_images(cfg, n_train) / speed
    # the rest of the wait (data, network, validation, saves, the test accuracy), as those runs took it
    # an epoch, for as many epochs: with the fast preset it was a third of the training time (7 s to
    # Finished, 5 s said); a guess has no overhead of its own network to go by, and a stopped run's
    # overhead is cut short
    finished = [r for r in alike if str(r.get("status")) == RunState.COMPLETED]
    if like is not None:
        return Estimate(training, training, like)
    # each epoch's share (validation, saves) for every epoch, the once-a-run share (data, network, test
    # accuracy) once. Runs that recorded no once-a-run share (before 2026-12-06) counted all of it per
    # epoch: they are read as they were, and only when no newer run split it
    split = [r for r in finished if finite(r.get("overhead_fixed")) is not None]
    per_epoch = newest_median(split or finished, "overhead_per_epoch")
    fixed = newest_median(split, "overhead_fixed") or 0.0
    if per_epoch is None:
        return Estimate(training, training)
    return Estimate(training, training + fixed + per_epoch * int(cfg.epochs))


def busy_load(machine_load: float | None, cores: int | None) -> str | None:
    """"load 3.1 on 2 cores" when the machine's load average is at or above its core count (other work
    slows a run then), else None."""
    if machine_load is None or not cores or machine_load < cores:
        return None
    return f"load {machine_load:.1f} on {count_text(cores, 'core')}"


def time_estimate(cfg: Any, rows: Iterable[dict[str, Any]], n_train: int = TRAINING_IMAGES, busy: int = 0,
                  slots: int | None = None, waiting: int = 0, machine_load: float | None = None,
                  cores: int | None = None, trial: float | None = None, guess: bool = True,
                  timing_now: bool = False) -> str:
    """How long ``cfg`` takes on this machine, from the measured speed of its completed runs.
    ``busy``: runs training on the server now, which share its cores (the measured speed was not).
    ``slots``: the server's job limit; when ``busy`` fills it, a new run waits first (behind
    ``waiting`` queued runs): "longer while 1 other run trains here" said it would share the cores
    on a one-slot class server, where it waits in the queue instead. ``machine_load``: the machine's
    load average (``os.getloadavg``) over its ``cores``: with none of this server's runs training, a
    load of other work at or above the core count is said (a walk beside other busy processes, load 5
    on 2 cores, read "roughly 41 s", measured on a quiet machine, and took 133 s). ``trial``: the
    images a second a few of its steps trained at on this machine, for a network this server has not
    trained nor can guess from (:func:`estimate`); ``guess`` False: none of another network's.
    ``timing_now``: with no estimate, a few of its steps are being timed in the background now."""
    if slots is not None and 0 < slots <= busy:
        taken = "the server's one training slot is" if slots == 1 else f"all {slots} of the server's training slots are"
        queue = f" and {count_text(waiting, 'run')} {'waits' if waiting == 1 else 'wait'} in the queue" if waiting else ""
        # a sentence of its own: after a guess's "(no run here has trained an ensemble of 3 fastcnn networks yet)",
        # ", once it starts: …" ran two ideas together
        shared = f"; first it waits, as {taken} taken now{queue}"
    else:
        shared = (f", longer while {count_text(busy, 'other run')} {'trains' if busy == 1 else 'train'} here"
                  if busy > 0 else "")
    load = busy_load(machine_load, cores)
    if busy == 0 and load:
        # no factor: the speeds it comes from may have been measured under load too (a run timed beside
        # a test suite read "about 4 min", then "perhaps 4.5 times as long" on top)
        shared += f"; other work keeps this machine busy now ({load}), so it may take longer"
    est = estimate(cfg, rows, n_train, trial, guess)
    # What it has not trained is the network as configured: the robust preset's three fastcnn networks
    # were said to be "guessed from its fastcnn runs (it has not trained fastcnn yet)"
    members = int(getattr(cfg, "ensemble", 1) or 1)
    target = f"an ensemble of {members} {cfg.model} networks" if members > 1 else cfg.model  # "3 fastcnn networks together" read as jargon
    if est is None and timing_now:
        # Classify's robust button gave no time before the click: its aside now times a few steps
        # in the background and says so until the time shows
        return f"this server is timing a few of its steps now (no run here has trained {target} yet)" + shared
    if est is None:
        # said as a fact of this server: "the page says how long" read as a promise not kept; the
        # wait for a slot too (on a class's first day no network has been trained yet)
        return f"the time it takes shows after its first steps (no run on this server has trained {target} yet)" + shared
    if est.timed:  # a student whose only run was a logistic regression started an 11-minute ConvNet blind
        return (f"it takes {duration(est.training, 'roughly')} of training on this server, timed "
                f"from a few of its steps here (no run here has trained {target} yet; loading the data and "
                "checking the accuracy add to it)" + shared)
    if est.like is not None:
        # a guess, said as one: "shows after its first steps" left a student to start an 11-minute run blind.
        # "guessed from its s2net runs and the work an image of each" left a student to work out whose runs
        return (f"it takes {duration(est.training, 'roughly')} of training on this server, guessed "
                f"from the server's {est.like} runs and how much work an image is for each network (no run here "
                f"has trained {target} yet)" + shared)
    if est.whole == est.training:  # no overhead measured yet: a run just finished, or older runs
        # said as training: the tour read "about 18 s on this server" right after a run of 22 s in all
        return f"it takes {duration(est.training)} of training on this server" + shared
    if duration(est.whole) == duration(est.training):  # the overhead lost in the rounding
        return f"it takes {duration(est.training)} on this server" + shared
    return (f"it takes {duration(est.whole)} on this server ({duration(est.training, '')} "
            f"of it training)" + shared)


def stop_said(name: str, state: Any, waiting: bool) -> str:
    """The Runs page's word after a Stop (``name`` as markdown, ``state`` what the store says now): a run
    that ended between the page's look and the click is said to have ended (an instructor's Stop then
    said nothing, and the run simply read completed)."""
    now = RunState(str(state))
    if now in HOLDING:  # a worker holds it (it may have been claimed since the page looked): told to stop
        return f"Run “{name}” stops after its current batch."
    if waiting:  # cancelled: stopped, or a queued continuation put back as its run was (completed, …)
        return f"Run “{name}” taken out of the queue."
    return f"Run “{name}” had already ended ({now}): there was nothing to stop."


def box_problem(label: str, value: Any, lo: int, hi: int) -> str | None:
    """Why a whole-number box's ``value`` is not one from ``lo`` to ``hi``, said as the Train page's
    settings say it ("Trials (the budget): 0 is out of range; allowed 1 to 1000"); None when it is."""
    problem = _config.range_problem((lo, hi), value, integer=True)
    return f"{label}: {problem}" if problem else None


def sweep_base_config(model: str) -> Any:
    """The settings a sweep's trials of ``model`` share, at one epoch: what :func:`sweep_time_text` times."""
    return _sweep.base_config(model, epochs=1)


SWEEP_MEASURES = 5  # the newest trials (and sweeps) a sweep's overheads are the median of


def sweep_overheads(rows: Iterable[dict[str, Any]], studies: Iterable[dict[str, Any]] = ()
                    ) -> tuple[float | None, float | None]:
    """(seconds from a sweep's start to its first trial, seconds of a trial that are not its training),
    measured on this server: medians of its newest sweeps (``studies``, :func:`signlab.sweep.list_studies`,
    whose ``launched`` time the first trial's row follows) and completed trials (store rows of kind
    ``trial``: from the row's creation to its last change, less its training time, a wait for a free slot
    included, which on a busy class server is part of what a trial takes); None where nothing is measured
    yet. Counted as training alone, a 1-epoch logistic regression sweep read "about 1 s"
    and took 17 s: 7.6 s to start its process, and a trial's run, validation and test besides its 1 s."""
    rows = list(rows)
    trials = [r for r in rows if r.get("kind") == "trial" and str(r.get("status")) == RunState.COMPLETED]
    extra = [max(0.0, u - c - t) for r in trials[:SWEEP_MEASURES]
             if None not in (u := finite(r.get("updated")), c := finite(r.get("created")),
                             t := finite(r.get("train_seconds")))]
    first: dict[str, float] = {}
    for r in rows:
        if r.get("kind") == "trial" and r.get("study") and (c := finite(r.get("created"))) is not None:
            first[r["study"]] = min(c, first.get(r["study"], c))
    starts = [first[rec["study"]] - launched for rec in studies
              if rec.get("study") in first and (launched := finite(rec.get("launched"))) is not None
              and first[rec["study"]] >= launched][:SWEEP_MEASURES]
    return (float(np.median(starts)) if starts else None, float(np.median(extra)) if extra else None)


def sweep_time_text(model: str, rows: Iterable[dict[str, Any]], n_train: int = TRAINING_IMAGES,
                    trials: int = _sweep.DEFAULT_TRIALS, epochs: int = _sweep.DEFAULT_EPOCHS,
                    trial: float | None = None, machine_load: float | None = None, cores: int | None = None,
                    limit_seconds: float | None = None, startup: float | None = None,
                    per_trial: float | None = None) -> str:
    """The Sweeps page's words on how long a trial of ``model`` takes an epoch on this server (at the
    sweep's base batch size; its trials also try smaller batches, which take longer), and so the
    budget of ``trials`` trials of ``epochs`` epochs. Without it a student could not tell whether a
    sweep would take a minute or an hour, and started none. ``trial``: the images a second a few of
    its steps trained at on this machine, for a network the server neither trained nor can guess from.
    ``machine_load`` (the load average, over ``cores``): at or above the core count it is said, as on
    Train (a walk read "roughly 89 s" for 10 trials beside busy processes, and 5 had run after 423 s).
    ``limit_seconds``: the time limit chosen; where the budget takes longer, how many trials fit in it
    (a walk read "roughly 32 min or more" beside the default limit of 30 min, and no word on it).
    ``startup``, ``per_trial``: :func:`sweep_overheads`, counted in the budget when measured, and said
    as not counted when not."""
    rows = list(rows)
    cfg = sweep_base_config(model)
    est = estimate(cfg, rows, n_train, trial)
    load = busy_load(machine_load, cores)
    busy = f" This machine is busy now ({load}), so the sweep takes longer while that lasts." if load else ""
    if est is None:
        return (f"No run on this server has trained {model} yet: the first trial shows how long one takes, and the "
                "time limit stops the sweep starting new ones." + busy)
    def _said(seconds: float) -> str:  # a guess is said as one, in both figures
        return duration(seconds, "roughly" if est.like or est.timed else "about")

    said = _said(est.whole)
    smallest = min(_sweep.BATCH_SIZES)
    # a trial's own setup, validation and test, measured on the server's trials, in place of the Train
    # runs' overhead (a sweep keeps the data loaded); and the sweep's process start, once
    each = est.training * epochs + per_trial if per_trial is not None else est.whole * epochs
    total = (startup or 0.0) + each * trials
    parts = (("each trial's setup and test", per_trial), ("the sweep's start", startup))
    counted, left = [w for w, v in parts if v is not None], [w for w, v in parts if v is None]
    # the whole budget worked out, not left to the student (who then started nothing)
    return (f"On this server a trial takes {said} an epoch at batch {cfg.batch_size}"
            + (f" (guessed from the server's {est.like} runs)" if est.like else "")
            + (" (timed from a few of its steps here)" if est.timed else "")
            + (f"; a trial at batch {smallest} takes longer" if smallest < cfg.batch_size else "")
            + f". So {count_text(trials, 'trial')} of {count_text(epochs, 'epoch')} take{'s' if trials == 1 else ''} "
              f"{_said(total)} or more with one worker"
            + (f" ({and_list(counted)} as measured here)" if counted else "")
            + ", less when trials are pruned early; the time limit stops it starting new trials."
            + (f" Add {and_list(left)}: this server has not measured {'it' if len(left) == 1 else 'them'} "
               "yet." if left else "")
            + _over_the_limit(each, trials, limit_seconds) + busy)


def _over_the_limit(trial_seconds: float, trials: int, limit_seconds: float | None) -> str:
    """Words for a budget longer than the time limit: about how many trials start within it."""
    if not limit_seconds or trial_seconds <= 0 or trial_seconds * trials <= limit_seconds:
        return ""
    fit = max(1, math.ceil(limit_seconds / trial_seconds))  # the last one starts before the limit and finishes
    return (f" That is more than the time limit of {duration(limit_seconds, '')}: about "
            f"{count_text(min(fit, trials), 'trial')} start{'s' if min(fit, trials) == 1 else ''} within it, "
            "so raise the limit or lower the trials to run them all.")


def tie_note(probs: Any) -> str | None:
    """Words for an image whose highest probability several letters share (None when one letter leads).
    The lecture ConvNet's final ReLU clips every score of many images to 0: the Map's panel then
    listed A, B, C, D and E at 4.2% each beside "predicted A", which read like a bug."""
    p = np.asarray(probs, dtype=float).ravel()
    if p.size < 2:
        return None
    tied = np.flatnonzero(np.isclose(p, p.max(), rtol=1e-5, atol=1e-7))
    if len(tied) < 2:
        return None
    first = LETTERS[int(tied[0])]
    if len(tied) == p.size:
        return (f"All {p.size} letters tie at {percent(p.max(), 1)}: every score is the same (a ReLU on the "
                f"output scores, as in the lecture's ConvNet, clipped them all to 0: dead logits), so the prediction, {first}, is only the first "
                "letter in the alphabet, not a choice.")
    return (f"{count_text(len(tied), 'letter')} tie at {percent(p.max(), 1)} "
            f"({', '.join(LETTERS[int(j)] for j in tied)}): the prediction, {first}, is the first of them in the "
            "alphabet, not a choice between them.")


def small_image_text(shape: tuple[int, int]) -> str:
    """Classify's words on an upload of at most ``SMALL_IMAGE`` pixels a side (``shape``: height, width),
    read whole. One smaller than the model's 28×28 input is stretched to it: a 5×5 upload was told it
    was "about the size of the dataset's crops"."""
    h, w = shape
    if max(h, w) < IMAGE_SIZE:
        return (f"This image is only {w}×{h} pixels, smaller than the model's {IMAGE_SIZE}×{IMAGE_SIZE} input: "
                "it is stretched to fit "
                "and shows the model little. A photo or a drawing gives it more to go on.")
    return (f"This image is only {w}×{h} pixels, about the size of the dataset's crops, so it is read whole (the "
            "hand detector looks for hands in larger photos). The sliders still zoom and move the square.")


def enlarged_image_text(shape: tuple[int, int]) -> str:
    """Classify's words on an upload that is a 28×28 image enlarged in pixel blocks (``shape``: its
    height and width), read whole like the dataset's images (:func:`signlab.preprocess.read_whole`)."""
    h, w = shape
    return (f"This {w}×{h} image is a {IMAGE_SIZE}×{IMAGE_SIZE} image enlarged in blocks of pixels, like the dataset's "
            "own crops, so it is read whole, as they are (the hand detector looks for hands in photos, and its "
            "square would show this hand smaller than the model has seen one). The sliders still zoom and move "
            "the square.")


def tsne_wait_text(seconds: float | None, n: int) -> str:
    """The Map page's words before a t-SNE map is computed: this server's measured time when it has
    made one (a constant was 3-4x off: "about a minute" said, 20 s taken on an AMD EPYC)."""
    kept = "the map is then kept with the run."
    if seconds is None:
        return (f"t-SNE on the {n:,} test images takes from about 20 s to a few minutes, depending on the "
                f"CPU (no t-SNE map has been made on this server yet); {kept}")
    return f"t-SNE on the {n:,} test images takes {duration(seconds)} on this server (its earlier maps); {kept}"


# --------------------------------------------------------------------------- the verdict on one input
# Verdict, verdict and read_sign live in signlab.inference (api.predict_files needs them, and an
# operation must not import the view models above it); the pages reach them here, with the top letters.
Verdict = _inference.Verdict
verdict = _inference.verdict
read_sign = _inference.read_sign
top_k = _inference.top_k


def shape_reading(v: Verdict) -> str | None:
    """The Classify page's line on the two readings behind a photo's verdict, when the hand shape
    weighed in: the picture's best letter, the landmarks' best letter, and how they combine."""
    if v.shape is None or v.image is None:
        return None
    i, s = int(np.argmax(v.image)), int(np.argmax(v.shape))
    picture = f"the picture says **{LETTERS[i]}** ({percent(v.image[i], 0)})"
    shape = f"the hand's shape (its 21 landmarks, green on the photo) says **{LETTERS[s]}** ({percent(v.shape[s], 0)})"
    if i == s:
        # the answer's share too: beside "B (99%)" above, "the picture says B (25%)" read as a contradiction
        return (f"Two readings agree: {picture}, and {shape}. Together they make the answer's "
                f"{percent(v.confidence, 0)}.")
    a = int(v.index)
    # how, in one sentence: "L (80%), the shape says B (34%): the answer L (96%)" read as a surer
    # answer than either reading, from nowhere
    how = (f" (How: each letter's chance in the picture is multiplied by {_shape_weight_words()} its "
           "chance in the shape, then all are scaled to add up to 100%: the letters the shape rules out lose "
           "their share, so the answer can be surer than either reading.)")
    if a not in (i, s):
        # "the picture says I (39%); the shape says B (34%). The answer weighs both: L (50%)" read as a
        # contradiction: L is neither's first choice, but the one both found likely
        return (f"Two readings, combined: {picture}; {shape}. Neither is sure, and the answer is the letter "
                f"both find likely: **{LETTERS[a]}** (the picture {percent(v.image[a], 0)}, the shape "
                f"{percent(v.shape[a], 0)}; together {percent(v.confidence, 0)})." + how)
    return (f"Two readings, combined: {picture}; {shape}. The answer weighs both: "
            f"{LETTERS[a]} ({percent(v.confidence, 0)})." + how)


def _shape_weight_words() -> str:
    """The hand shape's weight in the product (``handshape.WEIGHT``) in words."""
    from .handshape import WEIGHT

    return "the square root of" if WEIGHT == 0.5 else f"the {WEIGHT:g}th power of"


# --------------------------------------------------------------------------- tables
md = _md  # user text made safe for markdown (signlab.numbers.md; ui.md is this)
code = _code  # an id or a path in a code span, shown exactly (signlab.numbers.code)


def latest_runs_rows(summaries: Iterable[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
    """Home's "Latest runs": four columns, so the table fits a phone (with six, 461 px of a 358-px
    screen). A completed run shows its accuracy, any other its state beside whatever accuracy it has
    ("training…", "queued", "stopped: 87.00%"); the time, how long it trained (and over how many epochs).
    ``st.table`` renders its cells as markdown, so the names (students choose them) are escaped. Runs
    of several owners (an instructor's Home) get an ``owner`` column after the name, as on Runs: a
    teacher read five students' runs told apart by their times alone. A run completed less than
    :data:`AWAIT_TEST_SECONDS` ago (``now``: ``time.time()``) whose test accuracy is still being
    measured says so: a student read "—" beside a finished run."""
    summaries = list(summaries)
    owners = len({s.get("owner") for s in summaries}) > 1
    rows = []
    for s in summaries:
        state = str(s.get("status"))
        busy = state in ACTIVE
        secs = finite(s.get("train_seconds"))
        acc = finite(s.get("test_accuracy"))
        if busy:
            result = "training…" if state != RunState.QUEUED else "queued"
        elif state == RunState.COMPLETED:
            result = "measuring…" if awaiting_test(s, now) else percent(acc)
        else:
            result = f"{state}: {percent(acc)}" if acc is not None else state
        epochs = s.get("epochs")
        took = DASH if secs is None else f"{secs:.1f} s" + (
            " calibrating" if s.get("parent") else f", {count_text(epochs, 'epoch')}" if epochs else "")
        name = run_display_name(s["run_id"], s.get("name")) if s.get("run_id") else s.get("name")  # as the pickers
        rows.append({"name": md(name or ""), **({"owner": md(s.get("owner") or "")} if owners else {}),
                     "model": model_label(s["model"], s.get("ensemble")) if s.get("model") else None,
                     "test accuracy": result,
                     "training time": "training…" if busy else took})
    return rows


def hardest_letters(rows: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The letters with the lowest F1 (in percent), leaving out those the model gets perfectly."""
    return sorted((r for r in rows if finite(r.get("F1")) is not None and r["F1"] < 100), key=lambda r: r["F1"])[:n]


def tied_with_last(rows: Sequence[dict[str, Any]], listed: Sequence[dict[str, Any]]) -> int:
    """How many letters not ``listed`` have the last listed letter's F1: "B, C, D (0.0%)" named the first
    three in the alphabet of twelve letters at 0% (the lecture ConvNet), as if they were the worst."""
    if not listed:
        return 0
    names = {r["letter"] for r in listed}
    return sum(1 for r in rows if r["letter"] not in names and r.get("F1") == listed[-1]["F1"])


# --------------------------------------------------------------------------- the guided tour
# the sidebar's names of pages whose file name is not their title (app.py's router uses them too)
PAGE_TITLES = {"guide": "Guided tour", "calibrate": "Teach it your hand"}


def page_title(page: str) -> str:
    """"app_pages/kernels.py" -> "Kernels": the name of a page, as the sidebar shows it."""
    name = page.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
    return PAGE_TITLES.get(name) or name.replace("_", " ").capitalize()


def run_display_name(run_id: str, name: str | None = None) -> str:
    return _runs.display_name(run_id, name)


def step_name(title: str) -> str:
    """"2. Train logistic regression" -> "Train logistic regression" (a run's name in the tour)."""
    return re.sub(r"^\d+\.\s*", "", title)


def tour_step(raw: Any, n_steps: int) -> int:
    """A tour step index from the URL (1-based there), clamped; 0 for anything unreadable: read as
    :func:`tour_step_notice` reads it ("+3" and "٣" were step 3 under a notice that refused them)."""
    number = whole_number(str(raw).strip(), 12)
    return 0 if number is None else min(max(number - 1, 0), n_steps - 1)


def tour_step_notice(raw: Any, n_steps: int) -> str | None:
    """What to say when a link's ``step`` is no step of the tour (``guide?step=99`` opened step 8,
    and ``step=abc`` step 1, without a word, while Train names a bad setting in a link); None for a
    good one."""
    text = str(raw).strip()
    number = whole_number(text, 3)
    if number is not None and 1 <= number <= n_steps:
        return None
    shown = tour_step(raw, n_steps) + 1
    return (f"The link asked for step {md(text[:12])!s}, and the tour has steps 1 to {n_steps}: "
            f"here is step {shown}.")


# --------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class SweepStatus:
    """What a sweep is doing, from its live workers in the run store (no guessing from the clock)."""

    running: bool
    kind: str  # "info", "success" or "error" (the page maps each to its box)
    message: str
    error: str = ""


def sweep_status(rows: Sequence[dict[str, Any]], workers: Sequence[dict[str, Any]], running: bool,
                 stop_requested: bool, last_log: str = "", stopped_by: str | None = None) -> SweepStatus:
    """``running`` is :func:`signlab.sweep.sweep_running`: a worker registered in the store, or a
    process this server launched that is still starting. ``stopped_by``: who stopped it where that
    was not its owner (as a run stopped by an instructor says so)."""
    by = f" by {md(person(stopped_by))}" if stopped_by else ""  # drawn as markdown: a user id is text
    done = sum(r.get("state") != "RUNNING" for r in rows)
    if running:
        if stop_requested:
            return SweepStatus(True, "info", f"⏳ Stopping{by}: the running trial ends after its current batch…")
        # every trial ended and its worker has left the store: its process is ending (it said "Starting
        # the worker…" under "Completed 2" for seconds); a trial still RUNNING is a worker gone quiet
        if not workers and rows and done == len(rows):
            return SweepStatus(True, "info",
                               f"⏳ Finishing: {count_text(done, 'trial')} done, its worker is closing…")
        if not workers:
            return SweepStatus(True, "info", "⏳ Starting the worker…")
        current = [f"#{w['current_trial']}" for w in workers if w.get("current_trial") is not None]
        return SweepStatus(True, "info", f"⏳ Running: {len(workers)} worker{'s' if len(workers) != 1 else ''}"
                           + (f", training trial {', '.join(current)}" if current else ", loading the data"))
    reason = md(last_log.removeprefix("signlab: "))  # it may quote a --study, --storage or path given
    if not rows and reason:
        return SweepStatus(False, "error", f"The sweep could not run: {reason}")
    if not rows:
        return SweepStatus(False, "info", "This study has no trials yet.")
    return SweepStatus(False, "info" if stop_requested else "success",
                       f"{f'Stopped{by}' if stop_requested else 'Finished'}: {count_text(done, 'trial')}.",
                       error=f"A worker of this study ended with an error: {reason}" if reason else "")


def first_of_each(targets: np.ndarray, n_classes: int) -> list[int]:
    """The index of the first image of each class (Home's one image a letter)."""
    return [int(np.flatnonzero(np.asarray(targets) == k)[0]) for k in range(n_classes)]


# --------------------------------------------------------------------------- the map's selected region
@dataclass(frozen=True)
class Region:
    """A region of points picked on the Map: what it holds and the view that frames it."""

    mask: np.ndarray  # (N,) bool: the picked points
    zoom: tuple[tuple[float, float], tuple[float, float]]  # x and y ranges, with a margin
    caption: str


def map_region(coords: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, picked: Sequence[int],
               drawn: int) -> Region:
    """The summary of the ``picked`` points of a 2-D map: their commonest true letters, how many are
    misclassified, and a zoom around them with 8% margin; ``drawn`` images are shown as thumbnails."""
    picked = np.asarray(picked, dtype=int)
    pts = np.asarray(coords)[picked]
    pad = 0.08 * max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 1e-6)
    zoom = ((float(pts[:, 0].min() - pad), float(pts[:, 0].max() + pad)),
            (float(pts[:, 1].min() - pad), float(pts[:, 1].max() + pad)))
    mask = np.zeros(len(y_true), bool)
    mask[picked] = True
    letters = np.bincount(np.asarray(y_true)[picked], minlength=len(LETTERS))
    top = [k for k in np.argsort(-letters)[:5] if letters[k]]
    common = ", ".join(f"{LETTERS[k]} ({letters[k]:,})" for k in top)
    rest = int(len(picked) - sum(letters[k] for k in top))
    if rest:
        common += f" and {count_text(rest, 'other')}"
    wrong = int((np.asarray(y_true)[picked] != np.asarray(y_pred)[picked]).sum())
    mistakes = "none misclassified" if wrong == 0 else f"{wrong:,} misclassified"
    return Region(mask, zoom, f"{count_text(len(picked), 'image')} here, by true letter: {common}; {mistakes}. "
                              f"{count_text(drawn, 'image')} {'is' if drawn == 1 else 'are'} drawn where "
                              f"{'its point lies' if drawn == 1 else 'their points lie'}.")


def snapshot_title(epoch: int | None) -> str:
    """The title of a saved weight snapshot on the Kernels page."""
    return "before training" if epoch == 0 else (f"after epoch {epoch}" if epoch else "the final weights")


# --------------------------------------------------------------------------- sweeps' words
def number_format(name: str) -> str | None:
    """A table column's printf format for a numeric setting: on a log scale, 3.00e-03 (as
    :func:`trial_settings` writes it), not a sweep trial's 0.00622807100500451; else the table's own."""
    return _config.LOG_SCALE_FORMAT if SETTING[name].log_scale else None


def trial_settings(trial: dict[str, Any], params: Sequence[str]) -> str:
    """"learning rate 3.00e-03, batch size 64, …": a trial's searched settings in one line."""
    return ", ".join(f"{SETTING[k].words} {SETTING[k].text(trial[k])}" for k in params if trial.get(k) is not None)


def study_label(record: dict[str, Any], viewer: str | None = None) -> str:
    """A study in the picker: its name, model and epochs per trial, and its owner where that is not
    ``viewer`` (a classmate's or a student's sweep, shown to those who may see it). Not whether it
    runs: a select box keeps showing the label it had when chosen, so "· running" stayed beside
    "Stopped" until a reload (the status line under the picker says it, live)."""
    bits = [str(record.get("study"))]
    if record.get("model"):
        epochs = record.get("epochs")
        bits.append(f"{record['model']}, {count_text(epochs, 'epoch') if epochs is not None else '? epochs'} per trial")
    owner = record.get("owner")
    if viewer is not None and owner and owner != viewer:
        bits.append(f"{owner}'s")
    return " · ".join(bits)


# --------------------------------------------------------------------------- what the pages compute (issue 17)
# The pages talk to two seams, signlab.ui (session, caching, actions) and this module (plain data
# and computations). The functions below hand the pages what the package computes, so no page
# imports a package module of its own; constants the pages show are names here too.

# constants and record types the pages name (names, not modules)
PRESETS = _config.PRESETS
PHOTO_PRESET = _config.PHOTO_PRESET
PRESET_DESCRIPTIONS = _config.PRESET_DESCRIPTIONS
SETTING = _config.SETTING
PAGE_SETTINGS = _settings.PAGE_SETTINGS
NAME_CHARS = _runs.NAME_CHARS  # the longest run name, for the name boxes
RUN_COLUMNS = _compare.RUN_COLUMNS
TRIAL_COLUMNS = _compare.TRIAL_COLUMNS
SWEEP_PARAMS = _sweep.PARAMS
trial_counts = _sweep.trial_counts
continued_steps = _continued_steps  # the pages' too: steps counted over a continued run's fits
SWEEP_DEFAULT_EPOCHS = _sweep.DEFAULT_EPOCHS
SWEEP_DEFAULT_MODEL, SWEEP_DEFAULT_TRIALS = _sweep.DEFAULT_MODEL, _sweep.DEFAULT_TRIALS
SWEEP_MAX_TRIALS, SWEEP_MAX_WORKERS = _sweep.MAX_TRIALS, _sweep.MAX_WORKERS
CALIBRATION_METHODS = _calibrate.METHODS
# what each method changed, said after it ran: "the hand-shape network learned the 6 hands" alone left a
# student of the tour's "retraining its last layer takes seconds" unsure what had been retrained
CALIBRATION_DONE = {"head": "Its last layer was retrained on your photos.",
                    "finetune": "Its last layer and last convolution were fine-tuned on your photos.",
                    "ncm": "Each letter is now matched against the mean of your photos of it, in the features its "
                           "last layer reads."}
MAP_METHODS = _embedding.METHODS
MAP_METHOD_NAMES = _embedding.METHOD_NAMES
MAP_METHOD_WORDS = _embedding.METHOD_WORDS
NO_EVIDENCE_BELOW = _inference.NO_EVIDENCE_BELOW
MIN_PAD_ZOOM = _preprocess.MIN_PAD_ZOOM
# how a robust run reads a photo, said on the Classify page: how many views, and which, in words
TTA_VIEWS, TTA_WORDS = _preprocess.TTA_VIEWS, _preprocess.TTA_WORDS
# what the Classify and Calibrate uploaders take: the suffixes calibration reads, and the size limit
UPLOAD_TYPES = [s.lstrip(".") for s in _calibrate.PHOTO_SUFFIXES]
UPLOAD_MB = _preprocess.MAX_FILE_BYTES // 2**20
Crop = _preprocess.Crop
TOUR_STEPS = _guide.STEPS


# the dataset
def class_counts(split: Any) -> np.ndarray:
    """Images per letter of a split."""
    return _class_counts(split)


def sample_indices(targets: np.ndarray, letters: Sequence[int] | None, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` random images of ``letters`` (all when empty), the same for the same ``seed``."""
    return _sampling.sample_indices(targets, letters, n, seed)


def letter_titles(targets: np.ndarray) -> list[str]:
    return _sampling.letter_titles(targets)


def random_test_index(targets: np.ndarray, letter: int | None, seed: int) -> int | None:
    return _sampling.random_test_index(targets, letter, seed)


letters_present = _sampling.letters_present


nth_image_of = _sampling.nth_image_of


# the Evaluate page
def per_class_rows(ev: Any) -> list[dict[str, Any]]:
    return _confusion.per_class_rows(ev)


def crowded_column(ev: Any) -> dict[str, Any] | None:
    return _confusion.crowded_column(ev)


def crowded_column_text(ev: Any, model: str) -> tuple[str, str] | None:
    """Evaluate's warning on a letter that collects far more predictions than it has images
    (:func:`crowded_column`), and its icon; None when no column is crowded. The tour teaches "the
    phantom column" as the lecture's flaw (a ReLU on the scores sends images to the first letter), so
    only that is called one; another model's crowded column (logistic regression leaning to R) is
    said as a lean, not blamed on a flaw it does not have."""
    crowded = crowded_column(ev)
    if not crowded:
        return None
    counts = (f"{crowded['predicted']:,} test images ({100 * crowded['share']:.0f}%) are predicted as "
              f"**{crowded['letter']}**, which has only {crowded['support']:,} test images; {crowded['wrong']:,} of "
              f"them are mistakes: the column of red cells under {crowded['letter']} in the matrix below.")
    if _models.model_info(model).output_relu and crowded["index"] == 0:
        return (f"**A phantom column:** {counts} This is the lecture's flaw at work: a ReLU on the output scores "
                f"sets every negative score to 0, and when all {NUM_CLASSES} scores are 0 the model picks the first "
                f"letter, **{LETTERS[0]}**. Train `convnet` (the same layers without that ReLU) and compare.", "👻")
    return (f"**A crowded column:** {counts} When unsure, this model leans towards {crowded['letter']}; the "
            "letters in that column are the ones it has not learnt to tell from it.", "🧲")


DATA_SPLITS, DATA_COUNTS, DATA_COUNT = ("train", "test"), (16, 32, 48, 64), 32  # the Data page's sample choices
LinkProblem = _settings.LinkProblem  # a link's value that cannot be used, said as the Train page says it


def data_link(query: dict[str, Any]) -> tuple[dict[str, Any], list[LinkProblem]]:
    """The Data page's link: ``split`` (train or test), ``letters`` (``M,N``) and ``count`` (16 to 64 images),
    as ``(the values it sets, a problem for each value it cannot use)``: a refresh put the split and the
    filter back to their defaults."""
    values: dict[str, Any] = {}
    problems = []
    if "split" in query:
        raw = str(query["split"]).strip()
        if raw in DATA_SPLITS:
            values["split"] = raw
        else:
            problems.append(LinkProblem("split", raw, "is not train or test", DATA_SPLITS[0]))
    if "letters" in query:
        raw = str(query["letters"]).strip()
        wanted = [t.strip().upper() for t in raw.split(",") if t.strip()]
        if wanted and all(len(t) == 1 and t in LETTERS for t in wanted):
            values["letters"] = sorted({LETTERS.index(t) for t in wanted})
        else:
            problems.append(LinkProblem("letters", raw, "is not a list of the 24 letters (like M,N)", "all"))
    if "count" in query:
        raw = str(query["count"]).strip()
        number = whole_number(raw, 3)
        if number in DATA_COUNTS:
            values["count"] = number
        else:
            problems.append(LinkProblem("count", raw, f"is not one of {', '.join(map(str, DATA_COUNTS))}", DATA_COUNT))
    return values, problems


def data_query(split: str, letters: Sequence[int], count: int) -> dict[str, str]:
    """The Data page's choices as its link writes them (:func:`data_link` reads them back)."""
    return {"split": split, "count": str(count), **({"letters": ",".join(LETTERS[i] for i in letters)} if letters else {})}


EVAL_SHOWS = ("counts", "normalised")  # the Evaluate page's matrix: raw counts, or each row's shares


def cell_text(pair: tuple[int, int]) -> str:
    """A confusion matrix's cell as a link writes it: ``T-X`` (the true and the predicted letter)."""
    return f"{LETTERS[pair[0]]}-{LETTERS[pair[1]]}"


def eval_link(query: dict[str, Any], worst: tuple[int, int]) -> tuple[tuple[int, int] | None, str | None,
                                                                      list[LinkProblem]]:
    """The Evaluate page's link: ``cell=T-X`` (:func:`cell_text`) and ``show`` (one of :data:`EVAL_SHOWS`),
    as ``(pair or None, show or None, a problem for each value it cannot use)``; ``worst``: the cell the
    page starts on without one. A refresh put the picked cell and the normalised matrix back to the
    page's defaults; only ``run`` was kept."""
    pair, show, problems = None, None, []
    if "cell" in query:
        raw = str(query["cell"]).strip()
        true, _, pred = raw.upper().partition("-")
        if true in LETTERS and pred in LETTERS and len(true) == len(pred) == 1:
            pair = (LETTERS.index(true), LETTERS.index(pred))
        else:
            problems.append(LinkProblem("cell", raw, "is not two of the 24 letters, true and predicted (like T-X)",
                                        cell_text(worst)))
    if "show" in query:
        raw = str(query["show"]).strip()
        if raw in EVAL_SHOWS:
            show = raw
        else:
            problems.append(LinkProblem("show", raw, f"is not one of {', '.join(EVAL_SHOWS)}", EVAL_SHOWS[0]))
    return pair, show, problems


def worst_pair(ev: Any) -> tuple[int, int]:
    return _confusion.worst_pair(ev)


def click_to_pair(points: Sequence[dict[str, Any]] | None) -> tuple[int, int] | None:
    return _confusion.click_to_pair(points)


def confidence_titles(confidences: np.ndarray) -> list[str]:
    return _confusion.confidence_titles(confidences)


def mistake_titles(mistakes: Sequence[dict[str, Any]]) -> list[str]:
    return _confusion.mistake_titles(mistakes)


# runs and their comparison
def run_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    return _compare.run_rows(runs)


def trial_rows(trials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return _compare.trial_rows(trials)


TRIAL_STATE_WORDS = {"COMPLETE": "completed", "PRUNED": "pruned early", "RUNNING": "running", "FAIL": "failed",
                     "WAITING": "waiting"}
TRIAL_TABLE_NUMBERS = ("value", "val_loss", "epochs", "seconds", "test_accuracy", "lr", "batch_size",
                       "weight_decay", "width")


def trial_table(trials: Sequence[dict[str, Any]], inside: Sequence[int]) -> list[dict[str, Any]]:
    """The Sweeps table: the trials at positions ``inside``, newest first, accuracies in percent,
    augmentation as on/off, and a number not known yet (a running trial's accuracy, loss and
    seconds) as NaN, which the table leaves blank (``None`` read "None" in a column of nothing else).
    ``width`` is left out when no trial searched it."""
    has_width = any(t.get("width") is not None for t in trials)
    out = []
    for i in inside:
        t = dict(trials[i])
        for k in TRIAL_TABLE_NUMBERS:
            if k in t:
                t[k] = math.nan if t[k] is None else float(t[k]) * (100 if k in ("value", "test_accuracy") else 1)
        if "augment" in t:
            t["augment"] = {True: "on", False: "off"}.get(t["augment"], "")
        if isinstance(t.get("state"), str):  # Optuna's words ("COMPLETE"), as the rest of the app says them
            t["state"] = TRIAL_STATE_WORDS.get(t["state"], t["state"].lower())
        if not has_width:
            t.pop("width", None)
        out.append(t)
    return sorted(out, key=lambda t: -t["number"])


def brush_axes(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], brush: Any = None
               ) -> list[dict[str, Any]]:
    """The parallel-coordinates axes of ``rows``, each brush drawn on its axis."""
    return _compare.axes(rows, columns, brush)


def rows_with_accuracy(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows the parallel coordinates draw: those with an accuracy, and a word on the rest, or "".
    A queued or stopped run, drawn with none, ran down to the bottom of the accuracy axis, as if it
    were the worst run."""
    drawn = [r for r in rows if r.get("accuracy") is not None]
    left = len(rows) - len(drawn)
    return drawn, (f"{count_text(left, 'run')} with no accuracy (queued, training, failed, or stopped before an "
                   f"epoch) {'is' if left == 1 else 'are'} not drawn." if left else "")


def apply_brush(rows: Sequence[dict[str, Any]], brush: Any) -> list[int]:
    return _compare.apply_brush(rows, brush)


def runs_table(runs: Sequence[Any], queue: Sequence[str] = ()) -> list[dict[str, Any]]:
    return _compare.runs_table(runs, queue)


status_word = _compare.status_word
watch_key = _compare.watch_key


def curve_series(runs: Sequence[Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    return _compare.curve_series(runs)


def same_curves_text(epochs: dict[str, list[dict[str, Any]]], batches: dict[str, list[dict[str, Any]]],
                     metric: str, runs: Sequence[Any] = ()) -> str | None:
    """The Runs page's word on runs whose curves lie on top of each other, or None. ``runs``: the
    runs of ``epochs`` in its order; where a group's settings (seed included) are the same, that is
    said to be why (the same settings and seed train the same model, step for step)."""
    groups = _compare.same_curves(epochs, batches, metric)
    if not groups:
        return None
    settings = {}
    for name, run in zip(epochs, runs):
        try:
            settings[name] = run.config.to_dict()
        except SignlabError:  # an unreadable config: its cause is not said
            continue
    parts, why = [], True
    for names in groups:  # the cause is said when it holds for every group
        parts.append(_and_names(names))
        why = why and all(n in settings for n in names) and all(settings[n] == settings[names[0]] for n in names)
    text = "; ".join(parts) + " draw the same curves, one on top of the other"
    if why:
        return text + (": the same settings and seed train the same model, step for step. Change the seed to "
                       "see how much luck moves a run.")
    return text + "."


def seed_luck_text(runs: Sequence[Any], names: Sequence[str] | None = None) -> str | None:
    """The Runs page's word on what the seed alone may explain among the compared runs, or None
    (:func:`signlab.compare.seed_luck`; ``names``: the runs' legend names, where the page has them)."""
    # the caption names runs as "5 Dec 20:39:14 (logreg)": their whole legend names, what sets each
    # apart included, made it three lines for two runs
    said = _compare.seed_luck(runs, _compare.short_names(names) if names is not None else None)
    if said is None:
        return None
    parts = []
    if said["luck"]:
        spread, names = said["luck"]
        parts.append(f"{_and_names(names)} differ only in their seed and end {spread:.2f} points apart in test "
                     "accuracy (the table's column): that is how far luck alone moved a run here.")
    if said["close"]:
        gap, a, b = said["close"]
        if said["luck"] and gap < said["luck"][0]:
            parts.append(f"**{md(a)}** and **{md(b)}** differ in their settings by less ({gap:.2f} points), so "
                         "that difference may be luck too.")
        elif said["luck"]:  # past the seeds' spread, under the point a setting must beat (compare.LUCK_LIMIT)
            parts.append(f"**{md(a)}** and **{md(b)}** differ in their settings by {gap:.2f} points, little "
                         "more than that and under one point, so that difference may be luck too.")
        else:
            # "end only 0.00 points apart" read as a broken number: the same accuracy is said as such
            apart = (f"end only {gap:.2f} points apart in test accuracy" if round(gap, 2) > 0 else
                     "end at the same test accuracy")
            parts.append(f"**{md(a)}** and **{md(b)}** differ in their settings but {apart} "
                         "(the table's column), each from one seed: a difference that small may "
                         "be a seed's luck. Train each again with another **Seed** before deciding which is better.")
    return " ".join(parts)


def _and_names(names: Sequence[str]) -> str:
    return and_list(f"**{md(n)}**" for n in names)


def onnx_path(run: Any) -> Path | None:
    """The run's exported ONNX file, None until it has been exported (or after new weights)."""
    return _onnx_path(run)


# models and training settings
def model_names() -> list[str]:
    return _models.model_names()


def model_info(name: str) -> Any:
    return _models.model_info(name)


def layer_summary(name: str) -> list[dict[str, Any]]:
    return _models.layer_summary(name)


def model_kind(model: Any) -> str:
    """"conv", "logreg", "mlp" or another kind: what the explanation pages can show of a model."""
    return _models.model_kind(model)


def first_network(model: Any) -> Any:
    """The model itself, or the first network of an ensemble."""
    return _models.first_network(model)


def preset(name: str) -> Any:
    """The training configuration of a preset."""
    return _config.preset(name)


def page_config(values: dict[str, Any]) -> tuple[Any, str | None]:
    """The Train page's settings as a configuration, or ``(None, the message)`` when they do not make one."""
    try:
        return _settings.page_config(values), None
    except SignlabError as err:
        return None, str(err)


def preset_changes(values: dict[str, Any]) -> str:
    """A caption saying which settings differ from the chosen preset ("" when none do), so the
    Preset box, which still names the preset, does not pass for a description of the run."""
    changed = _settings.changed_from_preset(values)
    if not changed:
        return ""
    return f"✏️ Custom: {and_list(s.label for s in changed)} changed from the {values['preset']} preset."


def other_data_text(run_data: str | None, pages_data: str | None) -> str | None:
    """Evaluate's word when a run was trained on another dataset than the pages test it on (a run
    trained with ``train --data``), else None: the page tests every run on the server's test set, while
    the runs list shows the test accuracy the run got on its own, and the two disagreed unexplained."""
    if (run_data or None) == (pages_data or None):
        return None

    def named(source: str | None) -> str:
        return md(source) if source else "the bundled Sign Language MNIST"

    return (f"This run was trained on {named(run_data)}; this page tests it on this server's dataset, "
            f"{named(pages_data)}, so its accuracy here can differ from the one the runs list shows.")


def network_count(model: Any) -> int:
    """How many networks a loaded model averages (1 unless it is an ensemble)."""
    return len(model.members) if isinstance(model, _models.Ensemble) else 1


def ensemble_members(value: Any) -> int:
    """How many networks the Train page's caption says are averaged: the Ensemble size box's value where
    the setting allows it, else 1 (at 50, out of range and refused above, it read "50 networks averaged")."""
    return int(value) if SETTING["ensemble"].problem(value) is None else 1


LECTURE_LOGREG_EPOCHS = _config.LECTURE_LOGREG_EPOCHS  # the Train page's "Use 2 epochs" button


def lecture_epochs_text(values: dict[str, Any]) -> str:
    """Under the Train page's model, with the lecture preset and logistic regression at the preset's
    epochs: the lecture trained that model for fewer ("" otherwise). The tour said 2 epochs, the Train
    page's lecture preset gave 10 (its ConvNet's), and a teacher matching the two got other results."""
    lecture = _config.PRESETS["lecture"]
    if values.get("preset") != "lecture" or values.get("model") != "logreg" or values.get("epochs") != lecture["epochs"]:
        return ""
    n = _config.LECTURE_LOGREG_EPOCHS
    return (f"The lecture trained logistic regression for {n} epochs (the preset's {lecture['epochs']} are its "
            f"ConvNet's): set Epochs to {n} to train it as the lecture did.")


LECTURE_MODEL_EPOCHS = _config.LECTURE_MODEL_EPOCHS


def lecture_model_text(values: dict[str, Any]) -> str:
    """Under the Train page's model, with one of the lecture's own networks under another preset: that
    preset's extras train it too ("" otherwise). A student told to start with logistic regression picked
    it under the fast preset, and trained it with augmentation, label smoothing, a one-cycle schedule and
    test-time shifts; the page then explained a loss floor from label smoothing the lecture never had."""
    model, name = values.get("model"), values.get("preset")
    if model not in LECTURE_MODEL_EPOCHS or name == "lecture" or name not in _config.PRESETS:
        return ""
    # what these settings add, read from the boxes (the robust preset has no label smoothing nor
    # test-time shifts, and a student may have switched one off)
    schedule = values.get("schedule")
    extras = [word for word, on in (
        ("augmentation", values.get("augment")),
        ("label smoothing", (finite(values.get("label_smoothing")) or 0) > 0),
        (f"a {'one-cycle' if schedule == 'onecycle' else schedule} schedule", schedule not in (None, "none")),
        ("test-time shifts", values.get("tta")),
        (f"an ensemble of {values.get('ensemble')}", (finite(values.get("ensemble")) or 1) > 1),
        ("histogram equalisation", values.get("input_norm") == "equalize")) if on]
    if not extras:
        return ""
    plain = {"logreg": "logistic regression", "seed_convnet": "lecture's ConvNet"}[model]
    return (f"These settings train the {plain} with {and_list(extras)}. The lecture trained it plainly: Adam at 0.001, "
            f"batches of 32, {count_text(LECTURE_MODEL_EPOCHS[model], 'epoch')}.")


def settings_beside_run_text(cfg: Any | None, run: Any | None, limit: int = 4) -> str | None:
    """The Train page's word under its settings when the run beside it was trained with others, or
    None. A student who started the tour's lecture ConvNet saw the fast preset's s2net settings next
    to it, and its Continue button under them, and took them for the run's."""
    if cfg is None or run is None:
        return None
    try:
        run_cfg = run.config
    except SignlabError:  # an unreadable config: the run's pane says so
        return None
    differ = [s for s in PAGE_SETTINGS if getattr(run_cfg, s.name, None) != getattr(cfg, s.name, None)]
    if not differ:
        return None

    def shown(s: Any, v: Any) -> str:  # as the boxes above write it (0.001, not the sweep's 1.00e-03)
        return f"{v:g}" if isinstance(v, float) else s.text(v)

    said = ", ".join(f"{s.words} {shown(s, getattr(run_cfg, s.name))}" for s in differ[:limit])
    more = f" and {len(differ) - limit} more" if len(differ) > limit else ""
    return (f"These settings are for the next run you start. The run beside them has its own ({said}{more}), "
            "and continuing it keeps those.")


def link_query(values: dict[str, Any]) -> dict[str, str]:
    """The settings as the link's query parameters."""
    return _settings.link_query(values)


# the guided tour
def tour_step_done(index: int, runs: Sequence[Any], reached: int) -> bool:
    return _guide.step_done(index, list(runs), reached)


def tour_resume_step(runs: Sequence[Any]) -> int:
    return _guide.resume_step(list(runs))


def tour_run_seconds(run: Any | None) -> float | None:
    """The training seconds of a tour step's own run once it has completed, else None (then its
    "again" is estimated from that run alone: the server's newest five of the network, trained under
    other loads, said "about 54 s" under "Your run trained for 27.1 s")."""
    status = run.status() if run is not None else {}
    return finite(status.get("train_seconds")) if str(status.get("status")) == RunState.COMPLETED else None


def tour_time_caption(seconds: float | None, estimate_text: str) -> str:
    """A tour step's words on time: what the user's own run of the step took (``seconds``, from
    :func:`tour_run_seconds`), when it has finished, then ``estimate_text`` (:func:`time_estimate`) for
    training it again. A walk read "about 61 s" under step 4 after its run had trained in 33 s: the
    estimate followed a later, slower run of a network of the same speed, and said nothing of the run
    on the page."""
    if seconds is None:
        return estimate_text[:1].upper() + estimate_text[1:] + "."
    return f"Your run trained for {seconds:.1f} s. Again, {estimate_text}."


def tour_unfinished_text(runs: Sequence[Any], cfg: Any) -> str | None:
    """Under a tour step's Train button while the step has no finished run: the user's runs of its
    model that it does not count, and why (:func:`signlab.guide.others_text`), or None. A run of the
    step stopped on Train left the step as if never started ("▶ Train seed_convnet", no word of it)."""
    said = _guide.others_text(list(runs), cfg, here=True).removeprefix(". ")
    return said + "." if said else None


def tour_run(runs: Sequence[Any], cfg: Any) -> Any | None:
    """The user's newest run trained with a tour step's configuration."""
    return _guide.find_run(list(runs), cfg)


def tour_active_run(runs: Sequence[Any], cfg: Any) -> Any | None:
    """The user's run queued or training with a tour step's configuration (:func:`signlab.guide.tours`),
    the one that turns the step's Train button off. Matched on the model and preset only, a queued
    10-epoch run turned it off and was shown as the step's run, which the step then did not count."""
    return my_active_run(runs, lambda r: _guide.tours(r.config, cfg))


_TOUR_PAGE_RUNS = {**_guide.NEEDS, "seed": _guide.SEED, "fixed": _guide.FIXED}


def tour_page_run(runs: Sequence[Any], step_key: str) -> Any | None:
    """The run a tour step's page opens on (the logistic regression for the templates, the fixed
    ConvNet for the kernels and its Map, the lecture's ConvNet for its health), None for other steps or when
    the user has not trained it yet."""
    cfg = _TOUR_PAGE_RUNS.get(step_key)
    return _guide.find_run(list(runs), cfg) if cfg is not None else None


def tour_missing_text(runs: Sequence[Any], step_key: str) -> str:
    """A tour step's words when the run it opens on is missing: which step trains it, and the user's
    runs of that model with other settings, which it does not count."""
    cfg = _TOUR_PAGE_RUNS[step_key]
    title = next(s.title for s in _guide.STEPS if s.config == cfg)  # "2. Train logistic regression"
    number, _, name = title.partition(". ")
    return f"Do step {number} ({name}) first" + _guide.others_text(list(runs), cfg) + "."


def tour_page_waits(runs: Sequence[Any], step_key: str) -> str | None:
    """Why a training step's page button waits (4 and 5: the Map of the run the step trains), or None: it
    opened the Map before that run existed, on whatever run the student had (a robust model, read as
    their fixed ConvNet). Steps 3 and 6, which train nothing, say it in :func:`tour_step_missing`."""
    if step_key in _guide.NEEDS or step_key not in _TOUR_PAGE_RUNS or tour_page_run(runs, step_key) is not None:
        return None
    return "Train it first (the button above): the page opens on your run of this step."


def tour_step_missing(runs: Sequence[Any], step_key: str) -> str | None:
    """For a step that trains nothing but looks at a run (3: the templates, 6: the kernels), what to do
    first while that run is missing; None otherwise. Its page button waits for the run: step 3 opened
    the Kernels page on no logistic regression, or on whatever run the student had."""
    if step_key not in _guide.NEEDS or tour_page_run(runs, step_key) is not None:
        return None
    return tour_missing_text(runs, step_key)


# the runs whose losses a tour step draws side by side: the lecture ConvNet's stall against where
# logistic regression ended, then the fixed ConvNet against the stall (the step sent students to the
# Runs page, whose overlay starts on the newest three runs and left the tour's logistic regression out);
# step 2 its own run's, once it has finished: its live chart went with the run, and the step's notice
# speaks of the loss the student just watched
# the lecture ConvNet second in both of its steps, so it keeps plotly's second colour (red): it was red
# beside logistic regression at step 4 and blue beside the fixed ConvNet at step 5
_TOUR_LOSS_RUNS = {"logreg": (_guide.LOGREG,), "seed": (_guide.LOGREG, _guide.SEED),
                   "fixed": (_guide.FIXED, _guide.SEED)}


def tour_loss_runs(runs: Sequence[Any], step_key: str) -> list[Any]:
    """The user's runs whose loss curves a tour step draws, once every one of them is there; else []."""
    found = [_guide.find_run(list(runs), cfg) for cfg in _TOUR_LOSS_RUNS.get(step_key, ())]
    return found if found and all(found) else []


def tour_map_layer(step_key: str) -> str | None:
    """The Map layer a tour step's button opens on: the output scores for steps 4 and 5, whose notices
    ask for them (the Map opened on the last hidden layer, and the student had to find the menu)."""
    return _embedding.LOGITS if step_key in ("seed", "fixed") else None


def tour_check(step: Any, runs: Sequence[Any], evaluate: Callable[[Any], Any]) -> str | None:
    return _guide.check(step, list(runs), evaluate)


TOUR_FINISH = _guide.FINISH


def tour_results_text(runs: Sequence[Any], evaluate: Callable[[Any], Any]) -> str:
    """The user's results of the tour as a markdown list, each step's title in bold (a bare
    "- 2. Train …" is a list inside a list in markdown)."""
    return "\n".join(f"- **{title}**: {result}" for title, result in _guide.results(list(runs), evaluate))


def dead_logits_health(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The health series of a run's metric records when its last health record measured clipped
    scores (the lecture ConvNet's flaw), else None."""
    health = health_records(list(records))
    if not health or health[-1].get("dead_logits") is None:
        return None
    return health_series(health)


def health_labels(cfg: Any) -> dict[str, str]:
    """The health charts' legend names for a run of ``cfg`` (its model, its width): "conv 2
    (features.0.0)" where the records say "features.0.0". Empty when the model cannot be built
    (a run of a model this version no longer has): the charts then show the module names."""
    return dict(_health_labels(cfg.model, getattr(cfg, "width", None)))


@functools.lru_cache(maxsize=32)
def _health_labels(model: str, width: int | None) -> tuple[tuple[str, str], ...]:
    # the names depend on the architecture only: one network is built once per process, not on every rerun
    try:
        # build_model: its weights come from a forked generator, so this leaves the page's random stream alone
        return tuple(_layer_labels(_models.build_model(_config.TrainConfig(model=model, width=width))).items())
    except Exception:  # noqa: BLE001 - only a legend's names: never a reason to lose the charts
        return ()


# kernels, feature maps and explanations
def template_tiles(model: Any) -> np.ndarray:
    """The first layer's weights of ``model`` as 28x28 tiles (a logistic regression's templates)."""
    return _kernels.first_layer_tiles(_kernels.first_layer_weight(model))


def first_layer_weight(model: Any) -> np.ndarray:
    return _kernels.first_layer_weight(model)


def first_layer_tiles(weight: Any) -> np.ndarray:
    return _kernels.first_layer_tiles(weight)


def kernel_change(history: dict[int, Any]) -> dict[int, float]:
    return _kernels.kernel_change(history)


DETAILS_WHILE_TRAINING = (
    "While it trains, the loss chart above follows every step. The epoch curves and the network's health "
    "are drawn when the run pauses or ends, or now if you ask: the first interactive chart on a page costs the "
    "browser about 2 s of CPU, and on a laptop that time is taken from the training.")
FROZEN_TITLE = "set before training, the same in every epoch"  # not "the final weights": they were never trained
FROZEN_FIRST_LAYER = (
    "This first layer is not learned. Before training, s2net sets it to the four principal directions "
    "of the images' 2×2 patches, each paired with its opposite and scaled so that its output varies as "
    "much as the others' over the images (whitening: a direction in which the patches vary little gets "
    "larger weights, so the kernels look unequal). So the layers after it start from inputs with no "
    "redundancy and learn faster. Its kernels stay the same in every epoch. The learned kernels are in "
    "the deeper layers below.")


def conv_layer_info(model: Any) -> list[dict[str, Any]]:
    return _kernels.conv_layer_info(model)


FIRST_LAYER_KINDS = tuple(_teach.FIRST_LAYER)  # the model kinds whose first layer the Kernels page shows


def first_layer_words(kind: str, layers: Sequence[dict[str, Any]] = ()) -> tuple[str, str]:
    """The Kernels page's heading and caption for the first layer of a ``kind`` model
    (``conv_layer_info``'s ``layers`` name a convolution's size, and say whether it is fixed)."""
    heading, caption = _teach.FIRST_LAYER[kind]
    if not layers:
        return heading, caption
    return heading, (_teach.FROZEN_FIRST_LAYER_CAPTION if layers[0]["frozen"] else caption).format(**layers[0])


def conv_kernels(model: Any, layer: str, in_channel: int) -> np.ndarray:
    return _kernels.conv_kernels(model, layer, in_channel)


def strongest_units(weight: Any, n: int) -> np.ndarray:
    return _kernels.strongest_units(weight, n)


def feature_maps(model: Any, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return _inference.feature_maps(model, image)


def feature_map_tiles(maps: np.ndarray, cap: int = 32) -> tuple[np.ndarray, list[str]]:
    return _kernels.feature_map_tiles(maps, cap)


def equalized(model: Any) -> bool:
    """Whether the model equalises its inputs' histogram first (its input, as shown, is equalised)."""
    return _input_norm(model) == "equalize"


def model_view(model: Any, x: np.ndarray) -> np.ndarray:
    return _inference.model_view(model, x)


def probability(model: Any, x: np.ndarray, target: int) -> float:
    """The model's probability of letter ``target`` for the one 28x28 input ``x``."""
    return float(_inference.predict(model, [x])[0][target])


def cam_caption(model: Any, letter: str) -> str:
    """What a Grad-CAM map shows, and how coarse it is: s2net's last maps are 3x3, stretched over the
    28x28 input, and a student read its glow on the background beside a drawn hand as the model
    looking at nothing."""
    said = f"Bright regions are where the last convolution found evidence *for* {letter}."
    size = _inference.cam_size(model)
    if size is None or min(size) > 7:
        return said
    h, w = size
    return (said + f" That layer's maps have only {h}×{w} cells, stretched over the 28×28 image, so the glow "
            "is coarse and can spill onto the background beside the hand; the occlusion map is finer.")


def saliency_map(model: Any, x: np.ndarray, target: int) -> np.ndarray:
    return _inference.saliency_map(model, x, target)


@dataclass(frozen=True)
class SaliencyView:
    """Classify's left "why" map for one letter: the values to draw over the input and their words."""

    values: np.ndarray  # (28, 28)
    title: str
    signed: bool  # red for, blue against (logistic regression's votes); else one scale from 0
    colorbar: str
    caption: str


def saliency_view(model: Any, x: np.ndarray, target: int, p_view: float, output_relu: bool = False) -> SaliencyView:
    """What speaks for letter ``target`` in the one input ``x`` (its probability ``p_view``): logistic
    regression's template × input, a convolution's Grad-CAM (nothing, and said so, for a letter the
    model gives almost nothing: the map is scaled to its own maximum, so a 0% letter glowed too), or
    gradient saliency. ``output_relu``: the model clips its scores (the lecture's flaw), named when
    Grad-CAM finds no evidence at all."""
    name, kind = LETTERS[target], model_kind(model)
    sal = saliency_map(model, x, target)
    if kind == "logreg":
        return SaliencyView(sal, f"Template × input for {name}", True, "vote",
                            f"Logistic regression scores {name} as a sum over pixels of weight × pixel: red pixels "
                            f"vote for {name}, blue ones against.")
    if kind != "conv":
        return SaliencyView(sal, f"Gradient saliency for {name}", False, "|∂z/∂x|",
                            f"Bright pixels are those whose change would move the score of {name} most.")
    if p_view < NO_EVIDENCE_BELOW:
        return SaliencyView(np.zeros_like(sal), f"Grad-CAM for {name}", False, "evidence",
                            f"The model gives {name} almost nothing here ({percent(p_view, 1)}), so there is no "
                            "evidence for it to show.")
    if not np.any(sal > 0):
        caption = (f"Grad-CAM finds no evidence for {name} anywhere in this image"
                   + (": its score is cut to zero by the ReLU on the output (the lecture's flaw)." if output_relu
                      else "."))
    else:
        caption = cam_caption(model, name)
    return SaliencyView(sal, f"Grad-CAM for {name}", False, "evidence", caption)


def nothing_to_classify_text(is_photo: bool) -> str:
    """Classify's words for a blank input: an empty canvas, or a photo that is one flat shade at 28×28."""
    # a photo of noise read "almost one flat shade" at full size: it is, at the model's 28x28
    return "**Nothing to classify.** " + (
        "Shrunk to the 28×28 pixels the model sees, the image is almost one flat shade (fine noise or "
        "texture averages out to grey)." if is_photo else
        "The canvas is empty: draw a hand, or start from a dataset image.")


def occlusion_map(model: Any, x: np.ndarray, target: int, patch: int, stride: int = 2) -> np.ndarray:
    return _inference.occlusion_map(model, x, target, patch=patch, stride=stride)


def occlude(x: np.ndarray, top: int, left: int, patch: int) -> np.ndarray:
    return _inference.occlude(x, top, left, patch)


# the Classify page's inputs
def locate_hand(data: bytes, name: str) -> tuple[Any, Any, str | None]:
    return _preprocess.locate_hand(data, name)


def prepare_array(gray: np.ndarray, crop: Any = None, notes: list[str] | None = None) -> Prepared:
    return _preprocess.prepare_array(gray, crop, notes)


def canvas_to_gray(rgba: np.ndarray, background: Any) -> np.ndarray:
    return _preprocess.canvas_to_gray(rgba, background=background)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    return _preprocess.upscale(image, size)


def to_png(image: np.ndarray) -> bytes:
    return _preprocess.to_png(image)


def is_blank(x: np.ndarray) -> bool:
    return _preprocess.is_blank(x)


# the Map page
def map_layers(model: Any) -> list[Any]:
    return _embedding.map_layers(model)


def default_layer(model: Any) -> str:
    return _embedding.default_layer(model)


def map_summary(fm: Any) -> dict[str, Any]:
    return _embedding.map_summary(fm)


def class_centres(coords: np.ndarray, y: np.ndarray, away: np.ndarray | None = None
                  ) -> dict[int, tuple[float, float]]:
    return _embedding.class_centres(coords, y, away)


def map_pile(fm: Any) -> Any:
    """The spot where many of the map's images sit together (:class:`signlab.embedding.Pile`), or None."""
    return _embedding.pile(fm.coords, fm.probs)


def pile_text(p: Any, n: int) -> str:
    """The map's words for a pile: how many images, and why they share one spot."""
    why = ("for most of them every letter scores the same, so each gets "
           f"1/{NUM_CLASSES} ≈ {100 / NUM_CLASSES:.0f}%" if p.uniform
           else "this layer gives them the same values")
    return f"{p.count:,} images ({100 * p.count / max(n, 1):.0f}%) on this spot: {why}"


def map_caption(fm: Any, method: str, heap: Any = None, members: int = 1) -> str:
    """The words under the Map: how many images and mistakes, how they were embedded (and how long
    that took), the letters never predicted, and the pile ``heap`` the arrow points at. ``members``:
    the networks of an ensemble, whose hidden layers the map takes from the first alone (said: the
    rings and colours are the whole ensemble's, and a student read the map as the ensemble's)."""
    s = map_summary(fm)
    note = (f"{s['points']:,} test images, {s['wrong']:,} misclassified (ringed), {fm.dims}-dimensional "
            f"activations embedded with {MAP_METHOD_WORDS[method]}"
            + (f" in {fm.seconds:.1f} s" if not fm.cached else f" (computed once in {fm.seconds:.1f} s, kept with the run)"))
    if members > 1 and fm.layer not in (_embedding.PIXELS, _embedding.LOGITS):
        note += (f". This run averages {members} networks: the positions are the first network's "
                 f"activations, the predictions and rings those of all {members} together")
    if s["letters_predicted"] < NUM_CLASSES:
        note += (f". Only **{s['letters_predicted']} of the {NUM_CLASSES} letters are ever predicted**; "
                 f"{s['top_letter']} takes {100 * s['top_share']:.0f}% of all predictions")
    if heap is not None:
        note += f". The arrow: **{pile_text(heap, s['points'])}**"
    return note + "."


def point_indices(points: Sequence[dict[str, Any]] | None) -> list[int]:
    return _embedding.point_indices(points)


MAP_TIP = ("Tip: use **Box select** in the chart's toolbar (top right) and drag over a region to see its "
           "images drawn on the map.")


def map_selection_note(selection: Any, picked: Sequence[int]) -> tuple[str, str] | None:
    """What the Map says under the chart when no region is shown, as (kind, text): the tip as a
    "caption", or, when the box or lasso just drawn caught no point, an "info" that it was empty (the
    tip alone read as if the drag had not been seen). None once points are picked."""
    if picked:
        return None
    if selection and any(selection.get(k) for k in ("box", "lasso")):
        return "info", ("The region you drew holds no test image: drag over the coloured points "
                        "(double-click the map to clear the selection).")
    return "caption", MAP_TIP


def spread_sample(coords: np.ndarray, indices: Sequence[int], limit: int = 48) -> list[int]:
    return _embedding.spread_sample(coords, indices, limit)


# the Sweeps page: what a study holds, read from the runs folder
def running_sweep_warning(studies: Sequence[dict[str, Any]], owner: str) -> str | None:
    """What to say above "Start sweep" while ``owner`` has a sweep running (``studies`` as
    ``sweep.list_studies`` gives them): a second one shares the same cores, so both take longer (a
    student pressed Enter in a number box and started three)."""
    mine = [s["study"] for s in studies if s.get("owner") == owner and s.get("running")]
    if not mine:
        return None
    names = ", ".join(map(md, mine[:3])) + (f" and {len(mine) - 3} more" if len(mine) > 3 else "")
    return (f"{'A sweep' if len(mine) == 1 else f'{len(mine)} sweeps'} of yours {'is' if len(mine) == 1 else 'are'} "
            f"still running ({names}). Another one would share the same CPU cores, and every sweep would take "
            "longer; stop one first (its page: the Study list below) if you want this one to go faster.")


FORCE_STOP_AFTER = 15.0  # seconds a sweep may take to stop by itself before Force stop is offered


def force_stop_offered(stop_at: float | None, now: float) -> bool:
    """Whether the Sweeps page offers Force stop: a stop was asked ``stop_at`` and the workers have not
    ended after :data:`FORCE_STOP_AFTER` seconds (a trial in its last batches ends sooner by itself)."""
    return stop_at is not None and now - stop_at > FORCE_STOP_AFTER


def best_trial(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return _sweep.best_trial(rows)


def best_trial_text(best: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The Sweeps page's line on the best trial: its validation accuracy, its test accuracy when known,
    and, when other finished trials score the same, how the tie was broken (a walk saw four trials at
    100.00% and the best named #3, then #5, with no word why)."""
    test, shown = best.get("test_accuracy"), percent(best["value"])
    line = (f"**Best: trial #{best['number']}** — {shown} validation accuracy"
            + (f", {percent(test)} on the test set" if test is not None else ""))
    tied = [r for r in rows if r.get("state") == "COMPLETE" and r.get("value") == best["value"]
            and r.get("number") != best.get("number")]  # equal values, as sweep.best_trial ranks them
    if tied:
        line += (f" ({count_text(len(tied) + 1, 'trial')} reach {shown}: the lowest validation loss decides, "
                 "then the earlier trial)")
    if test is not None and best["value"] - test >= FLATTERED:
        # a walk read a logistic regression's 95.27% as its worth, beside 68.75% on the test set
        line += (f". Its validation accuracy runs {100 * (best['value'] - test):.0f} points above its test accuracy: "
                 "the held-out images are drawn at random from the training images, so most have near copies "
                 "(other variations of the same photo) among those it trained on. Validation still ranks the "
                 "trials against each other; quote the test accuracy.")
    return line


FLATTERED = 0.05  # validation above test by this much is said: a share, 5 points


def sweep_search_text(model: str) -> str:
    """The Sweeps page's sentence on what a sweep of ``model`` searches."""
    return ("Searched: " + _sweep.search_text(model)
            + f". Trials are scored on {100 * _sweep.DEFAULT_VAL_FRACTION:.0f}% of the training images held "
              "out: choose by that, not by the test accuracy each finished trial also shows.")


def label_smoothing(run: Any) -> float:
    """A run's label smoothing (0 when its settings cannot be read: the words about it are left out)."""
    try:
        return float(run.config.label_smoothing or 0.0)
    except (SignlabError, AttributeError, TypeError, ValueError):
        return 0.0


def pair_text(true: int, pred: int, count: int, of: int, shown: int, smoothing: float = 0.0) -> str:
    """Evaluate's words on a cell of the confusion matrix: ``count`` of the ``of`` test images of letter
    ``true`` were read as ``pred`` (``shown`` of them drawn below), or none was. ``smoothing``: the
    run's label smoothing, which caps what it was taught to be sure of (a walk read a 100% model's
    surest right answers at 92-95% as doubt)."""
    t, p = LETTERS[true], LETTERS[pred]
    if count == 0:
        return f"No test image of **{t}** was " + ("predicted right." if true == pred else f"predicted as {p}.")
    kind = "predicted right" if true == pred else f"predicted as **{p}**"
    taught = _teach.smoothing_target(smoothing)
    return (f"**{count:,}** of the {of:,} test images of **{t}** {'was' if count == 1 else 'were'} {kind}"
            + (f" (the {shown} surest shown)" if count > shown else "")
            + ". Each title is the model's confidence in its answer."
            # "taught to give 90.4%" beside tiles at 97% read as a contradiction: a target, not what it answers
            + (f" Trained with label smoothing {smoothing:g}, its target for the right letter was "
               f"{percent(taught, 1)}, not 100%: never pushed to be fully sure, even its surest right answers stay "
               "short of 100% (above or below that target)."
               if smoothing > 0 and true == pred else ""))


def sweep_command(record: dict[str, Any], study: str, storage: str | None, runs_dir: Path) -> str:
    """The command line that runs more workers of ``study``, with the settings its workers must share
    that its record keeps (a study started with --val-fraction 0, --max-steps, --seed or --data refuses
    a worker without them: the command shown was refused)."""
    # every setting a study's workers must share that the sweep command takes, from the one list the
    # study's own check reads (sweep.SHARED_SETTINGS): written flag by flag, the list fell behind it
    # twice, and each time the command shown was refused
    defaults = {"model": _sweep.DEFAULT_MODEL, "epochs": _sweep.DEFAULT_EPOCHS,
                "val_fraction": _sweep.DEFAULT_VAL_FRACTION}
    shared = ""
    for k in _sweep.SHARED_SETTINGS:
        if k not in _sweep.SWEEP_OPTIONS:  # schedule and optimizer: the sweep's own, no option sets them
            continue
        value = record.get(k, defaults.get(k))
        if value is None or (k not in ("model", "epochs") and value == defaults.get(k, SETTING[k].default)):
            continue
        shared += f" {SETTING[k].flag} {_option_text(value)}"
    return (f"python -m signlab sweep{shared} --trials {_sweep.DEFAULT_TRIALS} --study {study} "
            f"--storage {_sweep.storage_for_a_terminal(storage, study, runs_dir)} --runs-dir {runs_dir}")


def _option_text(value: Any) -> str:
    """A value as a command line takes it back: a number whole (0.1234567 written as 0.123457 was
    refused as another setting), a text quoted for the shell."""
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return shlex.quote(str(value)) if isinstance(value, str) else str(value)


# the Calibrate page
def calibration_info(run: Any) -> dict[str, Any] | None:
    """What a calibrated run was adapted from (its ``calibration.json``), None for other runs."""
    return _calibrate.calibration_info(run)


class CollectedPhoto(NamedTuple):
    """A photo offered on the Calibrate page, checked: ``photo`` None with ``error`` saying why it
    cannot be used; ``hand``: whether the detector found a hand in it (else the centre square is used)."""

    photo: Any
    thumb: bytes | None
    error: str
    hand: bool = False


def calibration_photo(letter: str, name: str, data: bytes, collected: Sequence[Any] = ()) -> CollectedPhoto:
    """One uploaded photo of ``letter``, checked (:class:`CollectedPhoto`). ``collected``: the photos
    already kept; the same picture twice (under another letter, it would teach the model both) is
    refused, naming them."""
    try:
        if problem := _calibrate.repeat_problem(name, _calibrate.letter_of(letter), data, collected):
            return CollectedPhoto(None, None, problem)
        (photo,) = _calibrate.photos_from_files(letter, [(name, data)])
        thumb, hand = _calibrate.preview(photo)
        return CollectedPhoto(photo, thumb, "", hand)
    except SignlabError as err:
        return CollectedPhoto(None, None, str(err))


NO_HAND_MARK = "⚠️ no hand"


def thumbnail_caption(name: str, hand: bool) -> str:
    """The line under a collected photo's 96-pixel thumbnail: its name, cut to 11 characters (14
    wrapped onto a second line), or :data:`NO_HAND_MARK` where the detector found no hand."""
    if not hand:
        return NO_HAND_MARK
    return md(name if len(name) <= 11 else f"{name[:4]}…{name[-6:]}")  # a caption is markdown


FEW_PHOTOS = 3  # photos a letter the Calibrate page asks for ("three are plenty")


def few_photos_warning(photos: Sequence[Any]) -> str | None:
    """What to tell before Calibrate when some letter has fewer than :data:`FEW_PHOTOS` photos, else
    None: one photo of one letter calibrated without a word, and Classify then started on that run
    for every photo (it read an L as P)."""
    counts: dict[str, int] = {}
    for p in photos:
        counts[p.letter] = counts.get(p.letter, 0) + 1
    short = sorted(k for k, n in counts.items() if n < FEW_PHOTOS)
    if not short:
        return None
    which = ", ".join(f"{k} ({counts[k]})" for k in short[:8]) + (", …" if len(short) > 8 else "")
    return (f"Fewer than {FEW_PHOTOS} photos of {'this letter' if len(short) == 1 else 'these letters'}: {which}. "
            "The new run learns your hand from what it is shown, and Classify starts on it for your photos: "
            f"{FEW_PHOTOS} or more of each letter you will show, in different light and places, teach it better. "
            "You can calibrate anyway.")


def missing_letters_note(photos: Sequence[Any]) -> str | None:
    """What to tell before Calibrate when some letters have no photo at all, else None. The new run's
    last layer is retrained on the photos and on dataset images of every letter, but it leans towards
    the letters it saw photos of: a walk calibrated on 4 photos of A and B, and the new run read 57.5%
    of the dataset's test set against its parent's 68.6%, with no word before or after."""
    shown = {p.letter for p in photos}
    missing = [k for k in LETTERS if k not in shown]
    if not shown or not missing:
        return None
    which = ", ".join(missing[:8]) + (", …" if len(missing) > 8 else "")
    return (f"No photos of {count_text(len(missing), 'letter')} ({which}). The new run leans towards the letters "
            "it sees photos of, so it may read the others less well than the run it comes from: add photos of "
            "every letter you will show it.")


CALIBRATION_DROP_POINTS = 2.0  # a fall on the dataset's test set, in points, that the page explains


def calibration_drop_note(test: float | None, parent_test: float | None, letters: int) -> str | None:
    """Under a calibration's result: the new run reads the dataset's test set at least
    :data:`CALIBRATION_DROP_POINTS` points worse than its parent (what to make of it), else None."""
    if test is None or parent_test is None:
        return None
    drop = 100 * (parent_test - test)
    if drop < CALIBRATION_DROP_POINTS:
        return None
    few = (f" It saw photos of {count_text(letters, 'letter')} only, and leans towards them." if letters < NUM_CLASSES
           else "")
    return (f"That is {drop:.1f} points below its parent on the dataset's images.{few} For your own hand, what "
            "counts is how it reads new photos of it (try them on Classify); for the dataset's images, its parent "
            "stays the better run.")


def no_hand_warning(collected: Sequence[tuple[Any, bool]]) -> str | None:
    """What to tell before Calibrate about the photos (``(photo, hand found)`` pairs) in which the
    detector found no hand, else None: the model would learn the centre square of each, mostly room,
    and the hand-shape network cannot learn from them at all."""
    missed = [p for p, hand in collected if not hand]
    if not missed:
        return None
    names = "; ".join(f"{p.letter}: {md(p.name)}" for p in missed[:6]) + ("; …" if len(missed) > 6 else "")
    one = len(missed) == 1  # "in 1 photo …, marked below their pictures … drop them" read oddly
    its, them = ("its", "it") if one else ("their", "them")
    return (f"The hand detector found no hand in {count_text(len(missed), 'photo')} ({names}), marked "
            f"“{NO_HAND_MARK}” below {its} picture{'' if one else 's'}. Calibrate would teach the model {its} "
            f"centre square, which may show more room than hand. Drop {them} (✕), or take {them} again with the "
            "whole hand in view, closer to the camera.")


def saved_settings_text(saved: dict[str, Any]) -> str:
    """The class settings an instructor saved (which take precedence over the server's), each as the
    Runs page's form names it."""
    names = {**_Policy.LIMIT_LABELS, "show_classmates": _Policy.CLASSMATES_LABEL}
    shown = ("yes" if v is True else "no" if v is False else str(v) for v in saved.values())  # as its box: 1000
    return "Saved here, over the server's settings: " + "; ".join(
        f"{names.get(k, k)}: {v}" for k, v in zip(saved, shown)) + "."
