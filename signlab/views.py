"""View models: what the pages, the guided tour and the command line show, as plain data.

Pages draw these with widgets; nothing here imports Streamlit, so every rule a page follows (what
a run's status says, how long it has left, which buttons are enabled, whether the model is "not
sure", how long a preset takes on this machine) is reachable from a unit test. Inputs are the run
store's status rows, the run log's metric records and plain numbers; outputs are frozen
dataclasses, strings and lists of dicts.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .inference import PHOTO_DOUBT_BELOW, PHOTO_UNSURE_BELOW, doubt, predict_prepared, top_k
from .labels import LETTERS
from .preprocess import Prepared, looks_unusual
from .store import ACTIVE, HOLDING, RunState

# --------------------------------------------------------------------------- numbers as a student reads them
DASH = "—"
TRAINING_IMAGES = 27_455  # the bundled training CSV; a page passes the loaded dataset's size when it has it


def _number(v: Any) -> float | None:
    """A finite float, or None for missing, NaN and text (pandas turns a missing accuracy into NaN)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def duration(seconds: float | None) -> str:
    """"about 40 s", "about 3 min"; a dash when unknown."""
    s = _number(seconds)
    if s is None:
        return DASH
    if s < 90:
        return f"about {max(1, round(s))} s"
    return f"about {round(s / 60)} min"


def percent(v: Any, digits: int = 2) -> str:
    n = _number(v)
    return f"{100 * n:.{digits}f}%" if n is not None else DASH


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
    notice: str = ""  # said beside the buttons: this run was started in another tab or session

    @property
    def pause_label(self) -> str:
        return "⏯ Resume" if self.paused else "⏸ Pause"


def progress_text(epoch: int, target: int, progress: float, images_per_second: float | None,
                  seconds_left: float | None, paused: bool = False) -> str:
    """One line of progress: shared by the Train page's bar and the command line's."""
    speed = f" · {images_per_second:,.0f} images/s" if _number(images_per_second) is not None else ""
    left = f" · {duration(seconds_left)} left" if _number(seconds_left) is not None else ""
    return f"epoch {epoch}/{target}{speed}{left}" + (" · paused" if paused else "")


def seconds_left(progress: float, train_seconds: float) -> float | None:
    """Time left of a fit from its own pace so far: seconds spent scaled by the share still to go."""
    p, t = _number(progress), _number(train_seconds)
    if p is None or t is None or p <= 0:
        return None
    return t * (1 - min(p, 1.0)) / p


def current_fit(batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch records of the latest fit: a continued run restarts its step count at 1."""
    start = 0
    for k in range(1, len(batches)):
        if batches[k].get("step", 0) <= batches[k - 1].get("step", 0):
            start = k
    return list(batches[start:])


def continued_steps(batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch records with steps counted over the whole run: each continuation's steps go on after
    the previous fit's last step, so a continued run's loss line never jumps back to step 0."""
    out, offset, last = [], 0, 0
    for b in batches:
        step = int(b.get("step", 0))
        if out and step + offset <= last:  # a new fit began: its steps count from 1 again
            offset = last
        last = step + offset
        out.append({**b, "step": last})
    return out


def live_status(status: dict[str, Any], records: Sequence[dict[str, Any]], *, mine: bool = True,
                queue_position: int | None = None, job_limit: int = 1, has_weights: bool = False,
                target_epochs: int | None = None, elsewhere: bool = False) -> LiveStatus:
    """The live status of a run from its status row (``Run.status()``) and its metric records.

    ``elsewhere``: the page shows the user's active run that another tab or session started; Start
    stays enabled (a second run beside it is the user's choice) and the notice says so.
    """
    state = str(status.get("status") or "")
    if not state:
        return LiveStatus("", "info", "", can_start=True)
    target = int(status.get("target_epochs") or target_epochs or 0)
    done = int(status.get("epochs_completed") or 0)
    active = state in ACTIVE
    paused = state == RunState.PAUSED
    notice = ("This is your run that is still training, started in another tab or session: **Start** trains "
              "another one beside it." if elsewhere and active and mine else "")
    buttons = dict(active=active, paused=paused, can_start=elsewhere or not (active and mine),
                   can_stop=active and mine, notice=notice,
                   can_pause=mine and state == RunState.RUNNING, can_resume=mine and paused,
                   can_continue=mine and not active and has_weights, target_epochs=target)
    if state == RunState.QUEUED:
        pos = queue_position
        return LiveStatus(state, "info", f"⏳ Waiting for a free slot: number {pos or '?'} in the queue "
                          f"({job_limit} training job{'s' if job_limit > 1 else ''} at a time on this server).",
                          queue_position=pos, **buttons)
    if state in HOLDING:
        batches = [r for r in records if r.get("type") == "batch"]
        fit = current_fit(batches)
        if not fit:
            return LiveStatus(state, "progress", "starting the worker and loading the data…" +
                              (" · paused" if paused else ""), progress=0.0, **buttons)
        last = fit[-1]
        p = min(max(float(last.get("progress", 0)), 0.0), 1.0)
        speed = _number(last.get("samples_per_second"))
        left = seconds_left(p, last.get("train_seconds", 0))
        epoch = int(last.get("epoch", done + 1))
        return LiveStatus(state, "progress", progress_text(epoch, target, p, speed, left, paused), progress=p,
                          epoch=epoch, images_per_second=speed, seconds_left=left, **buttons)
    message = str(status.get("message") or "")
    if state == RunState.COMPLETED:
        acc = _number(status.get("test_accuracy")) or _number(status.get("val_accuracy"))
        secs = _number(status.get("train_seconds")) or 0.0
        return LiveStatus(state, "success", f"✅ Finished {done} epoch(s) in {secs:.1f} s of training"
                          + (f": **{100 * acc:.2f}%** test accuracy." if acc else "."), epoch=done, **buttons)
    if state == RunState.DIVERGED:
        return LiveStatus(state, "warning", f"📉 Diverged: {message}", epoch=done, **buttons)
    if state == RunState.FAILED:
        return LiveStatus(state, "error", f"Training failed: {message}", epoch=done, **buttons)
    return LiveStatus(state, "warning", f"{state.capitalize()}: {message}", epoch=done, **buttons)


def run_heading(name: str | None, run_id: str, model: str | None = None) -> str:
    """The Train page heads a run with its name; a run named by its id (an older or a command-line
    run) is called by its model instead, the id staying in the caption."""
    if name and name != run_id:
        return f"Run {name}"
    return f"Your {model} run" if model else f"Run {run_id}"


def config_line(cfg: Any, device: str = "") -> str:
    """The settings of a run in one line, under its heading."""
    extras = (f" ×{cfg.ensemble}" if cfg.ensemble > 1 else "") + (
        " · equalize" if cfg.input_norm == "equalize" else "") + (
        " · photo-like augmentation" if cfg.augment_photo else "")
    return (f"{cfg.model}{extras} · batch {cfg.batch_size} · lr {cfg.lr:g} · {cfg.optimizer} · {cfg.schedule}"
            + (f" · {device}" if device else ""))


def my_active_run(runs: Iterable[Any], mine: Callable[[Any], bool]) -> Any | None:
    """The newest of this user's runs that is queued or training (a new tab or session finds it)."""
    for r in runs:  # newest first
        try:
            if str(r.summary()["status"]) in ACTIVE and mine(r):
                return r
        except Exception:  # noqa: BLE001 - an unreadable run is not the one being trained
            continue
    return None


def completed_message(status: dict[str, Any]) -> str:
    """A run's message with the epoch count over the whole run: a continued run's trainer says
    "trained 1 epoch(s)" for its last fit only, beside a table that counts all of them."""
    message = str(status.get("message") or "")
    done = status.get("epochs") if "epochs" in status else status.get("epochs_completed")
    if re.fullmatch(r"trained \d+ epoch\(s\)", message) and isinstance(done, int):
        return f"trained {done} epoch(s)"
    return message


# --------------------------------------------------------------------------- time estimates
def measured_speed(rows: Iterable[dict[str, Any]], model: str, ensemble: int = 1) -> float | None:
    """Images a second this server trained ``model`` at, from its completed runs (median of the
    newest five); None when it has not trained that model yet."""
    speeds = []
    for r in rows:
        if str(r.get("status")) != RunState.COMPLETED or r.get("model") != model:
            continue
        if int(r.get("ensemble") or 1) != int(ensemble or 1):
            continue
        s = _number(r.get("samples_per_second"))
        if s and s > 0:
            speeds.append(s)
        if len(speeds) == 5:
            break
    return float(np.median(speeds)) if speeds else None


def training_images(cfg: Any, n_train: int = TRAINING_IMAGES) -> int:
    """How many images a configuration trains on in total (epochs, held-out share and max_steps)."""
    per_epoch = int(n_train * (1 - float(getattr(cfg, "val_fraction", 0.0) or 0.0)))
    total = per_epoch * int(cfg.epochs)
    max_steps = getattr(cfg, "max_steps", None)
    if max_steps:
        total = min(total, int(max_steps) * int(cfg.batch_size))
    return total


def time_estimate(cfg: Any, rows: Iterable[dict[str, Any]], n_train: int = TRAINING_IMAGES) -> str:
    """How long ``cfg`` takes on this machine, from the measured speed of its completed runs."""
    speed = measured_speed(rows, cfg.model, getattr(cfg, "ensemble", 1))
    if speed is None:
        return "the time it takes is shown after its first steps"
    return f"it takes {duration(training_images(cfg, n_train) / speed)} on this server"


# --------------------------------------------------------------------------- the verdict on one input
@dataclass(frozen=True)
class Verdict:
    """What the model says about one input: its top letters and how far to trust them."""

    index: int  # the predicted letter's index
    letter: str
    confidence: float
    top: tuple[dict[str, Any], ...]
    kind: str  # "unusual" (far from the training data), "unsure", "doubt" (a photo, may be wrong) or "sure"
    unusual: tuple[str, ...] = ()
    worry: str | None = None  # inference.doubt's words
    warnings: tuple[str, ...] = ()  # predict --json's warnings
    headline: str = ""
    advice: str = ""  # the warning box's text, empty when "sure"
    probs: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


def verdict(probs: np.ndarray, *, photo: bool, unusual: Sequence[str] = (), k: int = 5) -> Verdict:
    """The Classify page's and ``predict``'s reading of one probability vector."""
    probs = np.asarray(probs, dtype=float)
    top = tuple(top_k(probs, max(k, 2)))
    pred = int(np.argmax(probs))
    conf = float(probs[pred])
    worry = doubt(probs, photo=photo)
    warnings = list(unusual) + ([f"{worry}: its best letter gets {conf:.0%}"] if worry else [])
    second = top[1]
    letter = LETTERS[pred]
    if unusual:
        kind, headline = "unusual", f"A guess, not to be trusted: {letter} ({conf:.0%})"
        advice = ("**This input looks far from the training data**, so the letter is a guess, not an answer:\n"
                  + "\n".join(f"- {r}" for r in unusual))
    elif worry == "the model is not sure":
        kind, headline = "unsure", f"Not sure: perhaps {letter} ({conf:.0%})"
        tip = ("Move the square so the hand fills it, add light, or try another angle." if photo
               else "A drawing is not a photo: the model learned from photographs of hands.")
        advice = (f"**{worry.capitalize()}.** Its best letter, {letter}, gets {conf:.0%}; "
                  f"{second['letter']} comes next with {second['probability']:.0%}. {tip}")
    elif worry:
        kind, headline = "doubt", f"Perhaps {letter} ({conf:.0%})"
        advice = (f"**{worry.capitalize()}.** On real photos of other people's hands, about half of the answers "
                  f"given with {PHOTO_UNSURE_BELOW:.0%}–{PHOTO_DOUBT_BELOW:.0%} were wrong; {second['letter']} "
                  f"comes next with {second['probability']:.0%}.")
    else:
        kind, headline, advice = "sure", f"The model says **{letter}** ({conf:.0%})", ""
    return Verdict(pred, letter, conf, top[:k], kind, tuple(unusual), worry, tuple(warnings), headline, advice, probs)


def read_sign(model: Any, prepared: Prepared, *, photo: bool, tta: bool = False, k: int = 5) -> Verdict:
    """The whole prediction pipeline for one prepared input: probabilities (4 views for robust runs),
    the checks for inputs unlike the training data, and the verdict. A hand the detector found is a
    photo of a hand whatever its background, so the image checks are only for the rest."""
    probs = predict_prepared(model, prepared, tta=tta)
    unusual = [] if prepared.hand is not None else looks_unusual(prepared.image28)
    return verdict(probs, photo=photo, unusual=unusual, k=k)


# --------------------------------------------------------------------------- tables
def latest_runs_rows(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Home's "Latest runs": a running run shows "training…" where its accuracy and time will be."""
    rows = []
    for s in summaries:
        busy = str(s.get("status")) in ACTIVE
        secs = _number(s.get("train_seconds"))
        rows.append({"name": s.get("name"), "model": s.get("model"), "status": str(s.get("status")),
                     "epochs": s.get("epochs"),
                     "test accuracy": "training…" if busy else percent(s.get("test_accuracy")),
                     "training time": "training…" if busy else (f"{secs:.1f} s" if secs is not None else DASH)})
    return rows


def hardest_letters(rows: Sequence[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The letters with the lowest F1 (in percent), leaving out those the model gets perfectly."""
    return sorted((r for r in rows if _number(r.get("F1")) is not None and r["F1"] < 100), key=lambda r: r["F1"])[:n]


# --------------------------------------------------------------------------- the guided tour
def page_title(page: str) -> str:
    """"pages/kernels.py" -> "Kernels": the name of the page a tour step opens."""
    name = page.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
    return name.replace("_", " ").capitalize()


def step_name(title: str) -> str:
    """"2. Train logistic regression" -> "Train logistic regression" (a run's name in the tour)."""
    return re.sub(r"^\d+\.\s*", "", title)


def tour_step(raw: Any, n_steps: int) -> int:
    """A tour step index from the URL (1-based there), clamped; 0 for anything unreadable."""
    try:
        return min(max(int(str(raw)) - 1, 0), n_steps - 1)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class SweepStatus:
    """What a sweep is doing, from its live workers in the run store (no guessing from the clock)."""

    running: bool
    kind: str  # "info", "success", "error" or "warning"
    message: str
    error: str = ""


def sweep_status(rows: Sequence[dict[str, Any]], workers: Sequence[dict[str, Any]], running: bool,
                 stop_requested: bool, last_log: str = "") -> SweepStatus:
    """``running`` is :func:`signlab.sweep.sweep_running`: a worker registered in the store, or a
    process this server launched that is still starting."""
    if running:
        if stop_requested:
            return SweepStatus(True, "info", "⏳ Stopping: the running trial ends after its current batch…")
        if not workers:
            return SweepStatus(True, "info", "⏳ Starting the worker…")
        current = [f"#{w['current_trial']}" for w in workers if w.get("current_trial") is not None]
        return SweepStatus(True, "info", f"⏳ Running: {len(workers)} worker{'s' if len(workers) != 1 else ''}"
                           + (f", training trial {', '.join(current)}" if current else ", loading the data"))
    reason = last_log.removeprefix("signlab: ")
    if not rows and reason:
        return SweepStatus(False, "error", f"The sweep could not run: {reason}")
    if not rows:
        return SweepStatus(False, "info", "This study has no trials yet.")
    done = sum(r.get("state") != "RUNNING" for r in rows)
    return SweepStatus(False, "info" if stop_requested else "success",
                       f"{'Stopped' if stop_requested else 'Finished'}: {done} trial(s).",
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
    common = ", ".join(f"{LETTERS[k]} {letters[k]}" for k in np.argsort(-letters)[:5] if letters[k])
    wrong = int((np.asarray(y_true)[picked] != np.asarray(y_pred)[picked]).sum())
    return Region(mask, zoom, f"True letters here: {common}. {wrong} of them misclassified. "
                              f"{drawn} images are drawn where their points lie.")


def snapshot_title(epoch: int | None) -> str:
    """The title of a saved weight snapshot on the Kernels page."""
    return "before training" if epoch == 0 else (f"after epoch {epoch}" if epoch else "the final weights")


# --------------------------------------------------------------------------- sweeps' words
SETTING_WORDS = {"lr": "learning rate", "batch_size": "batch size", "weight_decay": "weight decay",
                 "augment": "augmentation", "width": "width"}


def setting_value(key: str, value: Any) -> str:
    """A searched setting's value as the Sweeps page writes it."""
    if key in ("lr", "weight_decay"):
        return f"{value:.2e}"
    if key == "augment":
        return "on" if value else "off"
    return str(value)


def trial_settings(trial: dict[str, Any], params: Sequence[str]) -> str:
    """"learning rate 3.00e-03, batch size 64, …": a trial's searched settings in one line."""
    return ", ".join(f"{SETTING_WORDS.get(k, k)} {setting_value(k, trial[k])}" for k in params
                     if trial.get(k) is not None)


def study_label(record: dict[str, Any]) -> str:
    """A study in the picker: its name, model and epochs per trial, and whether it is running."""
    bits = [str(record.get("study"))]
    if record.get("model"):
        bits.append(f"{record['model']}, {record.get('epochs', '?')} epoch(s) per trial")
    if record.get("workers"):
        bits.append("running")
    return " · ".join(bits)
