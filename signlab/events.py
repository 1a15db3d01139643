"""What the Trainer reports as it trains: small typed events, and the callback signature.

Plain dataclasses with no torch, so the command line's progress bar, the health monitor and the
sweep's pruning callback can name them without loading the training stack.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

if TYPE_CHECKING:  # annotation only: the trainer imports this module
    from .trainer import Trainer


# how FitEnd's message starts when stop() ended the fit: the pages put who asked in its place
STOPPED_BY_REQUEST = "stopped by request"
# the note a fit that went on with one thread adds to its message (Trainer), found there by the pages
ONE_THREAD = "on one thread after step"


@dataclass(frozen=True)
class FitStart:
    total_epochs: int  # the epoch number training will end on (continuations count on)
    start_epoch: int  # epochs already done before this fit (0 for a new run)
    steps_per_epoch: int
    n_train: int
    n_val: int
    device: str
    parameters: int
    schedule_from: int = 0  # the epoch this fit's learning-rate schedule began at (an earlier fit's, when it goes on)


@dataclass(frozen=True)
class BatchEnd:
    step: int  # step within this fit, 1-based (a continuation counts from 1 again: events.continued_steps)
    epoch: int  # 1-based epoch this batch belongs to
    loss: float  # mean loss over the steps since the last BatchEnd
    lr: float
    samples_per_second: float
    train_seconds: float  # training time so far in this fit (no validation)
    progress: float  # 0..1 through this fit's steps


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    train_loss: float
    train_accuracy: float  # on the (augmented) training batches of this epoch
    val_loss: float
    val_accuracy: float
    epoch_seconds: float  # training time of this epoch
    train_seconds: float
    samples_per_second: float


@dataclass(frozen=True)
class FitEnd:
    status: str  # completed | stopped | diverged | failed
    message: str
    epochs_completed: int  # total, continuations included
    steps: int
    train_seconds: float
    samples_per_second: float
    val_accuracy: float | None


Event = Union[FitStart, BatchEnd, EpochEnd, FitEnd]
Callback = Callable[[Event, "Trainer"], None]


class Logged(StrEnum):
    """The ``"type"`` of a record in a run's ``metrics.jsonl``: the events above as
    :class:`signlab.runs.RunWriter` logs them, the health monitor's samples and a calibration's end.
    A member is its word (``Logged.EPOCH == "epoch"``), so the file and JSON keep plain text."""

    FIT_START = "fit_start"
    BATCH = "batch"
    EPOCH = "epoch"
    FIT_END = "fit_end"
    HEALTH = "health"
    CALIBRATION = "calibration"


def logged(records: Sequence[dict[str, Any]], kind: Logged) -> list[dict[str, Any]]:
    """The records of one ``kind``, in log order."""
    return [r for r in records if r.get("type") == kind]


def continued_steps(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Logged records (batch or health, in log order) with steps counted over the whole run: each
    continuation's steps go on after the previous fit's last step, so a continued run's lines never
    jump back to step 0 (sorted by step, two fits' health records zig-zagged).

    A fit killed partway through an epoch is continued from its last finished epoch, which is
    trained again: that epoch's records from the killed fit are left out (they were drawn as
    training that the weights never kept, 95 phantom steps in an 860-step run).

    A record whose step is not a whole number (a hand-edited log: ``"step": null``) is left out: its
    int() raised on the Train and Runs pages."""
    out: list[dict[str, Any]] = []
    offset, last = 0, 0
    for r in records:
        step = r.get("step", 0)
        if isinstance(step, bool) or not isinstance(step, int):
            continue
        if out and step + offset <= last:  # a new fit began: its steps count from 1 again
            again = r.get("epoch")
            if isinstance(again, int):  # the epoch it starts on, and any after it, were not kept
                out = [o for o in out if not (isinstance(o.get("epoch"), int) and o["epoch"] >= again)]
            offset = out[-1]["step"] if out else 0
        last = step + offset
        out.append({**r, "step": last})
    return out
