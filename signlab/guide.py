"""The guided tour: the lecture's case study as steps, each checked against the user's own runs.

Each :class:`Step` says what to do, which run configuration it trains (if any) and what to
notice; :func:`check` looks at the user's runs and says, in numbers, what their own run shows
(for example how many points the ConvNet gained once the ReLU left its output). No Streamlit
here: ``app_pages/guide.py`` draws it.
"""
from __future__ import annotations

import tomllib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .calibrate import calibration_info
from .config import LECTURE_LOGREG_EPOCHS, TrainConfig, preset
from .errors import SignlabError
from .events import Logged, logged
from .evaluate import Evaluation
from .health import health_records
from .labels import LETTERS
from .models import model_info
from .numbers import count_text, md, percent_text
from .runs import Run, display_name
from .store import ACTIVE


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    do: str  # what the user does
    notice: str  # what to look for
    config: TrainConfig | None = None  # the run this step trains, if any
    page: str | None = None  # the page to open for this step


# The lecture's settings (Adam 1e-3, batch 32, no schedule, no augmentation): logistic regression for
# the lecture's own 2 epochs, the ConvNets' 10 cut to 3 so each training step of the tour takes about a
# minute on a laptop CPU. A step counts a run of its model trained with these (tours).
LOGREG = preset("lecture", model="logreg", epochs=LECTURE_LOGREG_EPOCHS, log_every=20)
SEED = preset("lecture", model="seed_convnet", epochs=3, log_every=20)
FIXED = preset("lecture", model="convnet", epochs=3, log_every=20)

# The steps' words live in assets/tour.toml (prose, kept out of the code); a step names its run.
_CONFIGS = {"LOGREG": LOGREG, "SEED": SEED, "FIXED": FIXED}
TOUR_FILE = Path(__file__).resolve().parent / "assets" / "tour.toml"


# what the tour says under its last step when tour.toml has no [finish] (a teacher's edit dropped it)
_FINISH = {"title": "The end of the tour", "text": "Your own results:", "next": ""}


def load_tour(path: Path = TOUR_FILE) -> tuple[list[Step], dict[str, str]]:
    """The tour's steps and its ``[finish]`` (title, text, next) from ``path``; a step's ``config``
    names one of LOGREG, SEED and FIXED."""
    tour = tomllib.loads(path.read_text(encoding="utf-8"))
    steps = [Step(**{**d, "config": _CONFIGS[d["config"]] if "config" in d else None}) for d in tour["step"]]
    finish = tour.get("finish")
    return steps, {**_FINISH, **(finish if isinstance(finish, dict) else {})}


STEPS, FINISH = load_tour()


def results(runs: list[Run], evaluate: Callable[[Run], Evaluation]) -> list[tuple[str, str]]:
    """The user's result of each step that trains a model (its title, and the run's test accuracy or
    "not trained yet"), then the calibration's, for the tour's last page. A run that cannot be
    evaluated (deleted in another tab, its weights unreadable) says so in its row."""
    out = []
    for step in STEPS:
        if step.config is not None:
            r = find_run(runs, step.config)
            try:
                text = f"**{percent_text(evaluate(r).accuracy)}** test accuracy" if r else \
                    "not trained yet" + others_text(runs, step.config)
            except (SignlabError, OSError) as err:
                text = f"could not be evaluated ({md(str(err))})"  # drawn as markdown; it may name a path
            out.append((step.title, text))
        elif step.key == "calibrate":
            info = next((i for i in (calibration_info(r) for r in runs if r.parent) if i), None)  # newest first
            out.append((step.title, "no calibrated run yet" if info is None else
                        f"calibrated on {count_text(int(info.get('photos') or 0), 'photo')} of "
                        f"{count_text(len(info.get('letters', [])), 'letter')}"))
    return out


# settings that change how fast or where a run trains, or which random draws it makes, not what it is
_NOT_THE_RECIPE = frozenset({"seed", "log_every", "device", "precision", "channels_last", "threads"})


def tours(c: TrainConfig, cfg: TrainConfig) -> bool:
    """Whether a run of ``c`` is trained as the step's ``cfg`` is: every setting alike but those of
    :data:`_NOT_THE_RECIPE`. A student's 10-epoch logistic regression of the lecture preset stood for
    step 2's 2-epoch one; comparing the preset and the epochs only, a 20-step dry run (``--max-steps``)
    ticked steps 2 and 3 and was quoted as "your logistic regression" at 40%, and so did a run of
    another rate or optimizer."""
    return all(getattr(c, f.name) == getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.name not in _NOT_THE_RECIPE)


def find_run(runs: list[Run], cfg: TrainConfig) -> Run | None:
    """The newest completed run with weights that trained ``cfg.model`` as the step does (:func:`tours`);
    not a calibrated one (it keeps its parent's settings, and after step 8 steps 5 and 6 showed the
    calibrated run's accuracy as "your ConvNet"'s)."""
    for r in runs:  # list_runs gives newest first
        try:
            c = r.config
        except SignlabError:  # an unreadable run (Run.config's RunError) is simply not this step's
            continue
        # finished runs only: a run still training showed its half-way accuracy as the step's
        # result, and one stopped after an epoch stood for "your lecture ConvNet"
        if c.model == cfg.model and tours(c, cfg) and r.has_weights() and r.parent is None \
                and str(r.summary().get("status")) == "completed":
            return r
    return None


def others_text(runs: list[Run], cfg: TrainConfig, here: bool = False) -> str:
    """Beside "not trained yet": the user's runs of the step's model that the step does not count, and
    why: other settings (a student with two logreg runs of the fast preset read "not trained yet"),
    or the tour's settings but not finished (one still training was said to have other settings).
    ``here``: said on the step's own page, whose Train button trains an unfinished one again."""
    other = training = unfinished = 0
    for r in runs:
        try:
            c = r.config
            if c.model != cfg.model or r.parent is not None:
                continue
            status = str(r.summary().get("status"))
        except (SignlabError, OSError):  # an unreadable run is simply not one of them
            continue
        if not tours(c, cfg):
            other += 1
        elif status in {s.value for s in ACTIVE}:  # on its way: it may still complete
            training += 1
        else:  # the tour's settings, finished otherwise than completed (stopped, failed) or its weights gone
            unfinished += 1

    def yours(n: int) -> str:  # "your seed_convnet run", "your 2 seed_convnet runs" ("your 1 …" read oddly)
        return f"your {cfg.model} run" if n == 1 else f"your {count_text(n, f'{cfg.model} run')}"

    parts = []
    if training:
        parts.append(f"{yours(training)} with the tour's settings "
                     f"{'is' if training == 1 else 'are'} still training: the step counts it once it has finished")
    if unfinished:
        # (not "continue it": the Runs page has no Continue, and a run stopped in epoch 1 kept nothing)
        parts.append(f"{yours(unfinished)} with the tour's settings did not finish"
                     + ("; the step needs a finished one, so train it again here" if here else ""))
    if other:
        parts.append(f"{yours(other)} {'does' if other == 1 else 'do'} not count: "
                     f"the tour trains it with the {cfg.preset} preset's settings, for {count_text(cfg.epochs, 'epoch')}")
    return "".join(". " + p[0].upper() + p[1:] for p in parts)


def dead_letters(ev: Evaluation) -> list[str]:
    """Letters the model never predicts on the test set."""
    predicted = np.bincount(ev.y_pred, minlength=len(LETTERS))
    return [LETTERS[k] for k in np.flatnonzero(predicted == 0)]


def check(step: Step, runs: list[Run], evaluate: Callable[[Run], Evaluation]) -> str | None:
    """What the user's own runs show for ``step``; None when the step has nothing to check yet."""
    if step.key == "logreg" or step.key == "templates":
        r = find_run(runs, LOGREG)
        if not r:
            return None
        acc = evaluate(r).accuracy
        epochs = [m for m in logged(r.metrics(), Logged.EPOCH) if m.get("train_accuracy") is not None]
        train = (f" against **{percent_text(epochs[-1]['train_accuracy'])}** on its training images"
                 if epochs else "")  # the gap the step's notice calls overfitting
        return (f"Your logistic regression reached **{percent_text(acc)}** test accuracy{train}, with "
                f"**{model_info('logreg').parameters:,} parameters** (784 × 24 weights + 24 biases).")
    if step.key == "seed":
        r = find_run(runs, SEED)
        if not r:
            return None
        ev = evaluate(r)
        dead = dead_letters(ev)
        share_a = float((ev.y_pred == 0).mean())
        health = health_records(r.metrics())
        clipped = health[-1].get("dead_logits") if health else None
        return (f"Your lecture ConvNet reached **{percent_text(ev.accuracy)}** test accuracy. "
                + (f"At the end of training its output ReLU clipped **{100 * clipped:.0f}%** of the letter scores "
                   "to 0 (dead logits). " if isinstance(clipped, (int, float)) else "")
                + (f"**{count_text(len(dead), 'letter')} {'is' if len(dead) == 1 else 'are'} never predicted** ({', '.join(dead)}); " if dead else
                   "Every letter is still predicted at least once; ")
                + f"**{100 * share_a:.0f}%** of test images are predicted as A (A is {100 * (ev.y_true == 0).mean():.0f}% "
                  "of them). The **Map** page (the button below) shows them: choose *output scores* in its "
                  "Layer menu, and the images whose scores are all 0 lie on one spot.")
    if step.key == "calibrate":
        for r in runs:  # newest first
            info = calibration_info(r) if r.parent else None  # the record and its photos, of calibrated runs only
            if info:
                # not r.name: it is "calibrated on N photos · <parent>", which the sentence says already;
                # the parent by the name the pickers show, not its raw id
                parent_id = str(info.get("parent"))
                parent = next((p for p in runs if p.id == parent_id), None)
                parent_name = display_name(parent_id, parent.name if parent else None)
                return (f"Your calibrated run learned from **{count_text(int(info.get('photos') or 0), 'photo')}** "
                        f"of {count_text(len(info.get('letters', [])), 'letter')} in {info.get('seconds', 0):.0f} s "
                        f"(its parent: **{md(parent_name)}**). Try it on Classify with photos it has not seen.")
        return None
    if step.key in ("fixed", "kernels"):
        fixed, seed = find_run(runs, FIXED), find_run(runs, SEED)
        if not fixed:
            return None
        ev = evaluate(fixed)
        msg = f"Your ConvNet without the output ReLU reached **{percent_text(ev.accuracy)}** test accuracy"
        if seed:
            gain = 100 * (ev.accuracy - evaluate(seed).accuracy)
            # a whole number read "-0 points" for a 0.37-point loss, hiding whether the fix helped
            msg += (f": **{gain:+.0f} points** against the lecture's version" if abs(gain) >= 9.5 else
                    f": **{gain:+.1f} points** against the lecture's version" if abs(gain) >= 0.05 else
                    ", the same as the lecture's version")
        dead = dead_letters(ev)
        return msg + (". Every letter is predicted at least once." if not dead else
                      f"; {count_text(len(dead), 'letter')} still never predicted ({', '.join(dead)}).")
    return None


# what a step that trains nothing needs before its ✅: the run it looks at
NEEDS = {"templates": LOGREG, "kernels": FIXED}


def step_done(index: int, runs: list[Run], reached: int) -> bool:
    """Whether tour step ``index`` is done: a training step once its run exists; a step that opens a
    page once the user went past it (``reached`` is the furthest step index they opened), and the
    run it looks at exists; calibration once a calibrated run exists."""
    step = STEPS[index]
    if step.config is not None:
        return find_run(runs, step.config) is not None
    if step.key == "calibrate":
        return check(step, runs, lambda r: None) is not None  # type: ignore[arg-type, return-value]
    needs = NEEDS.get(step.key)
    return reached > index and (needs is None or find_run(runs, needs) is not None)


def resume_step(runs: list[Run]) -> int:
    """The step index a visit without a step in its link opens: the first step still to do, or the
    first step when none is done. Such a visit cannot know which pages were visited, so a page step
    counts as done where the next step the runs can show is done (the user went on past it).

    The sidebar's Guided tour opened step 1 under ticks for steps 2, 4 and 5; then, "the step after
    the last one done", it opened step 8 of 8 under ticks for steps 2 and 8 (a student's walk
    calibrated early), with 3 to 7 still to do."""
    known = [s.config is not None or s.key == "calibrate" for s in STEPS]  # what runs can show
    done = [known[k] and step_done(k, runs, reached=0) for k in range(len(STEPS))]
    if not any(done):
        return 0
    for k in range(len(STEPS)):
        if done[k]:
            continue
        later = next((j for j in range(k + 1, len(STEPS)) if known[j]), None)
        if known[k] or later is None or not done[later]:
            return k
    return len(STEPS) - 1
