"""The one line of a fit's progress that the Train page's bar and the command line's both show
("epoch 2/5 · 1,234 images/s · about 75 s left"), and the time left it says. Kept apart from the
view models so that the command line (``python -m signlab``, ``--help`` included) loads no torch.
"""
from __future__ import annotations

from .numbers import duration, finite
from .store import RunStore


def progress_text(epoch: int, target: int, *, images_per_second: float | None,
                  seconds_left: float | None, paused: bool = False, resuming: bool = False,
                  whole_left: float | None = None) -> str:
    """One line of progress: shared by the Train page's bar and the command line's. ``resuming``: a
    paused run whose Resume was pressed, waiting for a slot of the job limit. ``whole_left``: the time
    left at the whole fit's pace; where it and ``seconds_left`` (the recent pace) differ more than
    twofold, both are said as a range: on a machine whose load swung, one figure jumped from "about
    28 s" to "about 17 min" and back to "about 9 min" within a run."""
    # paused: no pace (it trains at none), and the time left is training's, from the Resume on (a
    # teacher's walk read "about 21 s left · paused" as a run that would end in 21 s)
    speed = f" · {images_per_second:,.0f} images/s" if finite(images_per_second) is not None and not paused else ""
    word = "of training left" if paused else "left"
    left = f" · {duration(seconds_left)} {word}" if finite(seconds_left) is not None else ""
    if left and finite(whole_left) is not None:
        low, high = sorted((float(seconds_left), float(whole_left)))  # type: ignore[arg-type]
        if high > 2 * low and duration(low) != duration(high):
            left = f" · {duration(low)} to {duration(high, '')} {word} (the pace is changing)"
    return f"epoch {epoch}/{target}" + _pause_words(paused, resuming) + speed + left


def _pause_words(paused: bool, resuming: bool) -> str:
    if not paused:
        return ""
    # a paused run gives its slot to the queue (store._TAKES_SLOT), so Resume may have to wait
    return f" · {RunStore.RESUME_WAIT}" if resuming else " · paused"


# share of a fit before its time left is shown: the first steps carry the model's first build and
# the optimiser's first import, so an estimate from them jumps around (a walk saw it halve and
# double in the first seconds)
ESTIMATE_AFTER = 0.05
# ... or this many seconds of training, whichever comes first: a long run (the lecture ConvNet on a
# busy server) showed no time left for its first 100 steps, and the student had no idea of minutes
ESTIMATE_AFTER_SECONDS = 10.0
PACE_PROGRESS = 0.01  # the least share of a fit done between two records to read a pace from them


def seconds_left(progress: float, train_seconds: float,
                 since: tuple[float | None, float | None] | None = None) -> float | None:
    """Time left of a fit from its own pace so far: seconds spent scaled by the share still to go
    (None before ``ESTIMATE_AFTER`` of it is done, or ``ESTIMATE_AFTER_SECONDS`` have passed).

    ``since``: (progress, train_seconds) of the fit's first logged step, from which the pace is read.
    What came before it (the worker's start, the model's first build, the precision check) is not the
    pace: a fast-preset run on a busy server logged its 10th step after 8.0 s and then 10 steps every
    0.3 s, and read "about 2 min left" with 13 s to go."""
    p, t = finite(progress), finite(train_seconds)
    if p is None or t is None or p <= 0 or (p < ESTIMATE_AFTER and t < ESTIMATE_AFTER_SECONDS):
        return None
    p0, t0 = (finite(since[0]), finite(since[1])) if since else (None, None)
    if p0 is not None and t0 is not None and p - p0 >= PACE_PROGRESS and t > t0:
        return (t - t0) * (1 - min(p, 1.0)) / (p - p0)
    return t * (1 - min(p, 1.0)) / p
