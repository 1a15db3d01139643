"""The Trainer: a plain training loop that reports what it does as small typed events.

Callbacks receive ``(event, trainer)`` for :class:`FitStart`, :class:`BatchEnd` (every
``log_every`` steps), :class:`EpochEnd` and :class:`FitEnd`. The trainer knows nothing about
threads, run folders or Streamlit: the run writer, the progress bar and the dashboard's worker are
all callbacks. ``stop()`` ends training between two batches. The one file it touches is the
machine's precision cache (``precision auto`` times bf16 against fp32 once per CPU and network,
:func:`signlab.device.bf16_measured_faster`), which is about the machine, not the run.

One exception, on purpose: under ``torchrun`` the trainer itself joins the process group, wraps the
model in DistributedDataParallel, trains on its process's share of the data and gives the
callbacks to process 0 only. Averaging gradients happens inside each step (DDP hooks the backward
pass), and every process must take the same number of steps and stop at the same batch (``stop()``
is agreed across processes), so this cannot live in a callback. It starts no process and reads
only torchrun's environment (``distributed_rank_world``); outside torchrun it is one process, as
before. The thread count a config asks for (``threads``) is set here too: it is a setting of the
run, like its device.

A CPU fit on several threads that the run did not ask for watches its own pace: where its logging
windows run at under a third of its best pace (:data:`STALL_FACTOR`) for 3 s (:data:`STALL_SECONDS`),
the rest of the fit runs on one thread, and the fit's message says from which step. Torch's threads wait on
each other; beside other work (a second training process, the server evaluating, a busy browser) a
thread the scheduler has set aside holds up its partner at every operation. In bf16 on a CPU with AMX the fast preset's
100 steps took 102 s instead of 0.8 s with two such runs at once, and 5.3 s beside one busy core,
against 1.2 s on one thread in both cases (docs/speed-research.md, Part 26). An idle machine never
trips it, so such a run's numbers are those of its seed; a tripped run's are not (the thread count
changes the order of sums).

The trainer receives its model and data (``Trainer(cfg, model, dataset, callbacks)``); building
the model (:func:`signlab.models.build_model`) and loading the data happen in the caller.

Batches are cut from tensors that stay on the training device, by a shuffled index; no
per-sample DataLoader (at batch 32 collating samples one by one costs a sixth of a CPU epoch).
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import augment as aug
from .config import TrainConfig
from .data import Dataset
from .errors import ConfigError
from .device import (bf16_measured_faster, device_description, distributed_rank_world, native_cpu_bf16,
                     resolve_device, use_bf16)
from .events import ONE_THREAD, STOPPED_BY_REQUEST, BatchEnd, Callback, EpochEnd, Event, FitEnd, FitStart
from .models import count_parameters, cpu_threads, fit_to_data
from .normalize import normalize
from .optim import MuonAdamW, muon_groups
from .predict import predict_logits, to_float_images
from .numbers import count_text

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers
def split_train_val(ds: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, val_x, val_y): the test CSV as validation, or a seeded hold-out."""
    if cfg.val_fraction == 0:
        return ds.train.images, ds.train.targets, ds.test.images, ds.test.targets
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(ds.train))
    n_val = max(1, int(round(cfg.val_fraction * len(perm))))
    val, tr = perm[:n_val], perm[n_val:]
    if len(tr) == 0:  # a one-image training file: the run "completed" with 0 steps, no weights, exit 0
        raise ConfigError(f"val_fraction: {cfg.val_fraction:g} of {len(perm)} training image"
                          f"{'s' if len(perm) != 1 else ''} leaves none to train on; give more data or "
                          "set val_fraction 0 (the test set validates)")
    return ds.train.images[tr], ds.train.targets[tr], ds.train.images[val], ds.train.targets[val]


def param_groups(cfg: TrainConfig, model: nn.Module) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one, or with ``cfg.norm_lr_scale`` != 1 two: the weights
    of convolutions and linear layers, and the batch-norm scales and all biases (1-d tensors) at
    ``norm_lr_scale`` times the rate and without weight decay. Frozen parameters are left out.

    At 1 the biases keep the weight decay too (one group, as the lecture's and the robust presets'
    runs were measured with): exempting them there would change what those presets train, so the
    setting's help says so instead."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.norm_lr_scale == 1.0:
        return [{"params": trainable, "lr_scale": 1.0}]
    return [{"params": [p for p in trainable if p.ndim > 1], "lr_scale": 1.0},
            {"params": [p for p in trainable if p.ndim <= 1], "lr_scale": cfg.norm_lr_scale, "weight_decay": 0.0}]


def make_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if cfg.optimizer == "muon":  # each group split: the convolution filters (Muon), the rest (AdamW)
        groups = muon_groups(groups)
    groups = [{**g, "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in groups]
    if cfg.optimizer == "muon":
        return MuonAdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


ONECYCLE_WARMUP = 0.25  # the share of a one-cycle schedule's steps spent warming up


def make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int
                  ) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.schedule == "onecycle":
        peaks = [cfg.lr * g.get("lr_scale", 1.0) for g in opt.param_groups]
        total = max(total_steps, 1)
        # the warm-up ends at step pct_start * total - 1: at step 0 (4 steps in all, a --max-steps 4
        # or a batch as large as a quarter of the data) torch divides by that length, zero
        pct = ONECYCLE_WARMUP if ONECYCLE_WARMUP * total != 1 else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peaks, total_steps=total,
                                                   pct_start=pct, cycle_momentum=cfg.optimizer == "sgd")
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return None


# --------------------------------------------------------------------------- the trainer
@dataclass
class _Tally:
    """Running sums of one epoch, kept on the device so that a step needs no host sync."""

    loss_sum: torch.Tensor  # sum over samples of the shown loss
    correct: torch.Tensor
    log_loss: torch.Tensor  # sum over the steps since the last BatchEnd
    started: float
    log_started: float
    samples: int = 0
    log_steps: int = 0
    log_samples: int = 0

    @classmethod
    def start(cls, device: torch.device) -> "_Tally":
        now = time.perf_counter()
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long),
                   torch.zeros((), device=device), now, now)

    def add(self, shown: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss_sum += shown * n
        self.correct += correct
        self.log_loss += shown
        self.samples += n
        self.log_steps += 1
        self.log_samples += n

    def restart_log(self, now: float) -> None:
        self.log_loss = torch.zeros((), device=self.log_loss.device)
        self.log_steps, self.log_samples, self.log_started = 0, 0, now


def measure_precision(cfg: TrainConfig, model: nn.Module, images: torch.Tensor) -> dict[str, Any] | None:
    """``precision auto``'s verdict for ``model`` trained with ``cfg`` on this CPU, from a batch of
    ``images`` (N, 1, 28, 28) in [0, 1] (only their shape matters): ``{"bf16", "bf16_ms", "fp32_ms"}``
    from :func:`signlab.device.bf16_measured_faster`, measured once per machine, network and batch.
    None where there is nothing to measure: a precision asked for, a GPU, or no native bf16 (then
    fp32). ``model`` is put in the run's memory layout, as the trainer does.
    """
    if cfg.precision != "auto" or resolve_device(cfg.device).type != "cpu" or not native_cpu_bf16():
        return None
    example = normalize(images[: cfg.batch_size].float().cpu(), cfg.input_norm)  # (B, 1, 28, 28)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    return bf16_measured_faster(model, example)


# logging windows this many times slower than the fit's fastest, for STALL_SECONDS together, are
# threads waiting on each other, not a busier machine: beside one busy core fp32 steps on two threads
# take 2.2 times as long (no trip), bf16 on AMX 4.9-6.8 times, two such fits at once 130 times
STALL_FACTOR = 3.0
# a browser drawing the Train page slows a few windows in a burst: judged on two windows (0.2 s) it
# tripped watched runs, which then took 1.5 times as long on one thread (bench/small_waits.py)
STALL_SECONDS = 3.0
# a whole step (augmentation, the optimizer, the loss read back) against measure_precision's fastest
# forward-and-backward pass, generously: the fast preset's step was 1.5 times its pass on an idle 2-core Xeon
PASS_TO_STEP = 2.0
# how a run that its model's size put on fewer threads says so beside "CPU (1 thread)": a teacher
# watching logistic regression asked why it used one core of two (models.cpu_threads has the numbers)
SMALL_MODEL_THREADS = "faster for a model this small"


def expected_pace(batch_size: int, verdict: dict[str, Any] | None) -> float:
    """Images a second an idle step of ``batch_size`` should make, from ``precision auto``'s verdict
    (:func:`measure_precision`: the fastest pass in the precision chosen); 0.0 without one."""
    ms = verdict.get("bf16_ms" if verdict.get("bf16") else "fp32_ms") if verdict else None
    return batch_size / (PASS_TO_STEP * ms / 1000) if isinstance(ms, (int, float)) and ms > 0 else 0.0


@contextmanager
def run_threads(cfg: TrainConfig, device: torch.device) -> Iterator[bool]:
    """Torch's CPU threads for a run's work: its ``threads`` setting, else at most what its model uses
    well (:func:`signlab.models.cpu_threads`); put back afterwards, so that a warm worker's next run
    (or whatever else the process does) starts from where it was. Yields whether the model's own
    limit took threads away (the run then says why it uses fewer than the machine has)."""
    before = torch.get_num_threads()
    capped = False
    if device.type == "cpu":
        threads = cfg.threads or min(before, cpu_threads(cfg.model) or before)
        capped = not cfg.threads and threads < before
        torch.set_num_threads(threads)
    try:
        yield capped
    finally:
        torch.set_num_threads(before)


class Trainer:
    """Train ``model`` on ``dataset`` as ``cfg`` says; see the module docstring for the events.

    The caller builds the model (:func:`signlab.models.build_model`, with the weights of an
    earlier run loaded to continue it) and loads the dataset; the trainer puts both on the device.
    ``start_epoch``/``optimizer_state`` continue an earlier run: ``cfg.epochs`` more epochs are then
    trained, with the optimizer's moments restored when they fit. The learning-rate schedule starts
    afresh over those epochs, unless ``schedule_from`` names the epoch an earlier, interrupted fit's
    schedule began at: it then goes on where that fit left it (a run whose worker died, continued by
    another, warmed up to its peak rate again in the middle of its one cycle). ``rng_state``: the
    random state saved with the earlier fit's last epoch (:meth:`rng_state`), taken up so that the
    continuation draws what the unbroken run would have.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module, dataset: Dataset,
                 callbacks: Iterable[Callback] = (), start_epoch: int = 0,
                 optimizer_state: dict[str, Any] | None = None, schedule_from: int | None = None,
                 rng_state: dict[str, torch.Tensor] | None = None) -> None:
        self.cfg = cfg
        self.start_epoch = start_epoch
        self.schedule_from = start_epoch if schedule_from is None else min(max(schedule_from, 0), start_epoch)
        self.rank, self.world = distributed_rank_world()
        # under torchrun only rank 0 reports (and so writes the run); the others just train
        self.callbacks = list(callbacks) if self.rank == 0 else []
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.manual_seed(cfg.seed)  # dropout and anything else drawing from the global generator
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.dataset = dataset
        self._put_data_on_device(dataset)
        self.steps_per_epoch = math.ceil(len(self.train_y) / cfg.batch_size)
        total = self.steps_per_epoch * cfg.epochs
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        # data-dependent layers (s2net's whitening) are fitted once, before step 1, and before DDP: its
        # constructor copies rank 0's weights to every process, and fitted after it each process kept
        # the filters of its own share of the data (they differed by 0.04 in a frozen layer)
        fit_to_data(self.model, lambda: normalize(self.train_x[:5000], cfg.input_norm))
        # DDP averages gradients across processes; self.model stays the plain module for saving
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                              if self.device.type == "cuda" else None)
                    if self.world > 1 else None)
        self.optimizer = make_optimizer(cfg, param_groups(cfg, self.model))
        if optimizer_state:
            self._restore_optimizer(optimizer_state)
        ahead = (self.start_epoch - self.schedule_from) * self.steps_per_epoch  # steps the schedule has behind it
        self.scheduler = make_schedule(cfg, self.optimizer, self.total_steps + ahead)
        if self.scheduler is not None and ahead:
            with warnings.catch_warnings():  # stepped with no optimiser step between: it is only brought on
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\).*optimizer.step\\(\\)")
                for _ in range(ahead):
                    self.scheduler.step()
        # a continuation with the random state saved at its last epoch's end (``rng_state``) takes it up
        # at the fit's start (_restore_rng); one from an older signlab starts from seed + start epoch
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + start_epoch)
        self._rng_restore = rng_state
        self.step = 0
        self._step_lr = self.schedule_lr()  # the rate of the last step taken (logged with it)
        self._stop_requested = False
        self._stop_reason = STOPPED_BY_REQUEST  # how the fit's message starts when stop() ended it
        with run_threads(cfg, self.device):  # timed on the threads the steps will use
            verdict = None if self.world > 1 else measure_precision(cfg, self.model, self.train_x)
        # under torchrun every process keeps the hardware's answer, so they cannot choose differently
        self._autocast = verdict["bf16"] if verdict else use_bf16(cfg.precision, self.device)
        # images a second a step should make, from the verdict's fastest pass: an idle pace to hold the
        # steps to, since a fit stalled from its first step has no best of its own (_watch_for_stall)
        self._expected_pace = expected_pace(cfg.batch_size, verdict)
        self._train_seconds, self._samples, self._last_val = 0.0, 0, None
        self._tally: _Tally | None = None  # the epoch being trained: its clocks skip time off the clock
        self._clock_skipped = 0.0
        self._best_pace = 0.0  # the fastest logging window's images a second in this fit
        self._windows: list[tuple[int, float]] = []  # the latest logging windows' (images, seconds)
        self.one_thread_from: int | None = None  # the step after which a stalled fit went on one thread

    def _put_data_on_device(self, dataset: Dataset) -> None:
        tx, ty, vx, vy = split_train_val(dataset, self.cfg)
        if self.world > 1:  # each process trains on its own equal share of the training set
            share = np.random.default_rng(self.cfg.seed).permutation(len(ty))[: len(ty) // self.world * self.world]
            tx, ty = tx[share[self.rank::self.world]], ty[share[self.rank::self.world]]
        self.train_x = to_float_images(tx, self.device)  # (N, 1, 28, 28) in [0, 1]
        self.train_y = torch.as_tensor(ty, device=self.device)  # (N,)
        self.val_x = to_float_images(vx, self.device)
        self.val_y = torch.as_tensor(vy, device=self.device)

    def _restore_optimizer(self, state: dict[str, Any]) -> None:
        try:
            self.optimizer.load_state_dict(state)
        except (ValueError, KeyError) as err:
            # the saved state's parameter groups are not this model's (a run saved by a version that
            # grouped its parameters otherwise): its moments start afresh, and that is said, not passed over
            _log.warning("the run's optimiser state does not fit this model's parameter groups (%s); "
                         "its moments start afresh", err)
        for group in self.optimizer.param_groups:  # this continuation's learning rate and schedule
            group["lr"] = self.cfg.lr * group.get("lr_scale", 1.0)
            group.pop("initial_lr", None)
            group.pop("max_lr", None)

    # -- control
    @contextmanager
    def off_the_clock(self) -> Iterator[None]:
        """Time spent inside (a callback waiting, such as a pause) is not training time: the epoch's
        seconds and the logged speed skip it. A paused run read "8 images/s" on resuming and
        "4 epochs in 66 s of training" after a 33-s pause, and its speed made later estimates long."""
        started = time.perf_counter()
        try:
            yield
        finally:
            gap = time.perf_counter() - started
            self._clock_skipped += gap
            if self._tally is not None:
                self._tally.started += gap
                self._tally.log_started += gap

    @property
    def seconds_off_the_clock(self) -> float:
        """The time spent in :meth:`off_the_clock` so far (pauses): neither training nor overhead."""
        return self._clock_skipped

    def stop(self, reason: str = STOPPED_BY_REQUEST) -> None:
        """Ask training to end after the current batch (safe to call from any thread). ``reason``
        starts FitEnd's message ("<reason> during epoch 3")."""
        self._stop_reason = reason
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def _agree_to_stop(self, loss: torch.Tensor) -> str | None:
        """Across processes: "diverged" if any saw a loss that blew up, "stop" if any asked to stop
        (the stop flag is then set in all), else None. Every process gets the same answer."""
        flags = torch.tensor([float(self._stop_requested), float(blew_up(loss.item()))], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        if flags[1] > 0:
            self._stop_requested = False
            return "diverged"
        if flags[0] > 0:
            self._stop_requested = True
            return "stop"
        return None

    def _emit(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event, self)

    # -- one step
    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.train_x.index_select(0, idx)  # (B, 1, 28, 28)
        yb = self.train_y.index_select(0, idx)  # (B,)
        if self.cfg.augment_photo:
            xb = aug.photo_like(xb, self.generator, framing=self.cfg.photo_framing)
        elif self.cfg.augment:
            xb = (aug.shift if self.cfg.augment_style == "shift" else aug.affine)(xb, self.generator)
        xb = normalize(xb, self.cfg.input_norm)
        if self.cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def _loss(self, logits: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(optimised loss, shown loss, scores whose argmax is the prediction) for one batch."""
        smoothing = self.cfg.label_smoothing
        if logits.ndim == 2:  # (B, 24)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=smoothing)
            return loss, loss, logits
        # an ensemble, (B, K, 24): every member its own loss
        k = logits.shape[1]
        loss = F.cross_entropy(logits.float().flatten(0, 1), yb.repeat_interleave(k), label_smoothing=smoothing)
        probs = logits.detach().float().softmax(2).mean(1)  # (B, 24) mean probabilities
        # shown: the ensemble's own loss, as validation measures it (the members' mean loss, which is
        # optimised, is higher and would put training above validation); an optimised loss that blew
        # up (blew_up) still shows through and ends the run (no host sync)
        sane = torch.isfinite(loss) & (loss <= DIVERGED_LOSS)
        shown = torch.where(sane, F.nll_loss(probs.clamp_min(1e-12).log(), yb), loss)
        return loss, shown, probs

    def _step(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on the samples ``idx``: (shown loss, number correct), both on the device."""
        xb, yb = self._batch(idx)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            logits = (self.ddp or self.model)(xb)
        loss, shown, scores = self._loss(logits, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._step_lr = self.schedule_lr()  # the rate this step took: the schedule moves on next
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return shown.detach(), (scores.detach().argmax(1) == yb).sum()

    def _check_finite(self, shown: torch.Tensor, at_log: bool, epoch: int) -> None:
        """Raise _Diverged on a loss that blew up (one process; a sync is free on the CPU, on a GPU
        it waits for logging steps)."""
        if self.world == 1 and (self.device.type == "cpu" or at_log):
            loss = shown.item()
            if blew_up(loss):
                raise _Diverged(self.step, epoch, loss)

    def _should_leave(self, shown: torch.Tensor, at_log: bool, epoch: int) -> bool:
        """Whether to leave the epoch's loop now: asked to stop, or the last step reached."""
        if self.world == 1:
            return self._stop_requested or self.step >= self.total_steps
        # all processes must leave the loop at the same step, or DDP would hang: they agree on
        # stop requests and losses that blew up only at logging steps, and leave on the agreed answer
        # alone (a stop() that lands after the agreement, read here, took one process out by itself)
        agreed = self._agree_to_stop(shown) if at_log else None
        if agreed == "diverged":
            raise _Diverged(self.step, epoch)
        return agreed == "stop" or self.step >= self.total_steps

    def schedule_lr(self) -> float:
        """The learning rate the schedule is at now, before any group's own multiplier: what the
        chart and the log call the learning rate. (The first group's rate was logged; with Muon that
        group is the filters', at 3x.)"""
        group = self.optimizer.param_groups[0]
        return group["lr"] / group.get("lr_scale", 1.0)

    def _log_batch(self, tally: _Tally, epoch: int) -> None:
        now = time.perf_counter()
        skipped = self._clock_skipped
        seconds = max(now - tally.log_started, 1e-9)
        # the rate of the step just taken: read after the schedule's step it was the next one's, and a
        # one-cycle run's last point turned upwards past the schedule's end
        self._emit(BatchEnd(self.step, epoch, (tally.log_loss / tally.log_steps).item(),
                            self._step_lr, tally.log_samples / seconds,
                            self._train_seconds + (now - tally.started), self.step / self.total_steps))
        self._watch_for_stall(tally.log_samples, seconds)
        tally.restart_log(now + self._clock_skipped - skipped)  # a pause in a callback is not the next log's

    def _watch_for_stall(self, samples: int, seconds: float) -> None:
        """Go on with one thread where the last logging windows, :data:`STALL_SECONDS` of them together,
        ran at under 1/:data:`STALL_FACTOR` of the fit's best window's pace, or of the pace ``precision
        auto``'s timing of this network expects (two fits started together stall from the first step;
        the module docstring says why). Windows together, not each: beside a busy core a stalled fit's
        windows are mostly slow with a quick one between, and one quick window must not reset it.
        Only on the CPU, in one process, where the run did not ask for a thread count and uses more
        than one."""
        if (self.device.type != "cpu" or self.world > 1 or self.cfg.threads or self.one_thread_from is not None
                or torch.get_num_threads() <= 1):
            return
        self._windows.append((samples, seconds))
        while len(self._windows) > 1 and sum(t for _, t in self._windows[1:]) >= STALL_SECONDS:
            self._windows.pop(0)  # the latest windows that still span STALL_SECONDS
        if sum(t for _, t in self._windows) >= STALL_SECONDS:
            pace = sum(n for n, _ in self._windows) / sum(t for _, t in self._windows)
            if pace * STALL_FACTOR < max(self._best_pace, self._expected_pace):
                torch.set_num_threads(1)  # run_threads puts the process's count back after the fit
                self.one_thread_from = self.step
        self._best_pace = max(self._best_pace, samples / seconds)

    # -- one epoch
    def _epoch_totals(self, tally: _Tally) -> tuple[float, int, int]:
        """(loss sum, correct, samples) of the epoch, over all processes' batches."""
        if self.world == 1:
            return tally.loss_sum.item(), int(tally.correct.item()), tally.samples
        totals = torch.stack([tally.loss_sum.float(), tally.correct.float(),
                              torch.tensor(float(tally.samples), device=self.device)])
        torch.distributed.all_reduce(totals)
        return totals[0].item(), int(totals[1].item()), int(totals[2].item())

    def _train_epoch(self, epoch: int) -> bool:
        """Train one epoch, validate and emit EpochEnd; False if it was stopped half way (then it
        does not count and nothing is emitted)."""
        cfg = self.cfg
        tally = self._tally = _Tally.start(self.device)
        perm = torch.randperm(len(self.train_y), generator=self.generator, device=self.device)
        last = self.steps_per_epoch - 1
        for b in range(self.steps_per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            shown, correct = self._step(idx)
            tally.add(shown, correct, len(idx))
            at_log = self.step % cfg.log_every == 0 or b == last
            self._check_finite(shown, at_log, epoch)
            if at_log:
                self._log_batch(tally, epoch)
            if self._should_leave(shown, at_log, epoch):
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - tally.started
        if b != last and self.step < self.total_steps:
            return False
        self._train_seconds += epoch_seconds
        loss_sum, correct, n = self._epoch_totals(tally)
        self._samples += n
        val_loss, val_acc = self.validate()
        self._last_val = val_acc
        self._emit(EpochEnd(epoch, loss_sum / n, correct / n, val_loss, val_acc, epoch_seconds,
                            self._train_seconds, n / max(epoch_seconds, 1e-9)))
        return True

    def validate(self) -> tuple[float, float]:
        """(loss, accuracy) on the validation tensors, of the network alone.

        Without the model's test-time shifts: five views cost 4.7x one (2.4 s against 0.51 s for the
        7,172 test images, s2net on a 2-core AVX2 machine), paid after every epoch while the user
        waits. The run's test accuracy (``api.evaluate_run``, the Evaluate page) is measured as the
        model predicts, shifts included.
        """
        logits = predict_logits(self.model, self.val_x, views=False)
        loss = F.cross_entropy(logits, self.val_y).item()
        acc = (logits.argmax(1) == self.val_y).float().mean().item()
        return loss, acc

    # -- the whole fit
    def _end(self, status: str, message: str, epochs_completed: int) -> FitEnd:
        return FitEnd(status, message, epochs_completed, self.step, self._train_seconds,
                      self._samples / max(self._train_seconds, 1e-9), self._last_val)

    def fit(self) -> FitEnd:
        """Train; returns (and emits) the FitEnd event. A loss that blew up ends the fit, failed: checked
        at every step on the CPU, at logging steps on a GPU (a check is a wait for the device there) and,
        under torchrun, where the processes agree (so a GPU may take up to ``log_every - 1`` more steps)."""
        with run_threads(self.cfg, self.device) as capped:
            return self._fit(SMALL_MODEL_THREADS if capped else "")

    def _trained_words(self, epoch: int) -> str:
        """A completed fit's message, counting the whole run: a continuation's said only its own
        epochs, so the store and `runs --json` read "trained 19 epochs" for a run at 25 of 25."""
        if not self.start_epoch:
            return f"trained {count_text(epoch, 'epoch')}"
        return f"trained {count_text(epoch, 'epoch')}, {epoch - self.start_epoch} of them in this continuation"

    def _dry_run_words(self, epoch: int) -> str:
        """A fit that ``max_steps`` cut short says so, rather than "trained 1 epoch" after 5 steps of
        215; '' for a fit it did not cut (a limit past the schedule's last step changes nothing)."""
        if not self.cfg.max_steps or self.total_steps >= self.steps_per_epoch * self.cfg.epochs:
            return ""
        cut = self.step - (epoch - self.start_epoch - 1) * self.steps_per_epoch  # steps into the last epoch
        where = (f"at the end of epoch {epoch}" if cut >= self.steps_per_epoch
                 else f"{cut} of epoch {epoch}'s {self.steps_per_epoch}")
        return f"a dry run: stopped after {count_text(self.step, 'step')} (max_steps), {where}"

    def rng_state(self) -> dict[str, torch.Tensor]:
        """The random state the next epoch starts from (batch order and augmentation: ``data``; dropout:
        ``torch``, and ``cuda`` on a GPU), saved with each epoch's checkpoint (``RunWriter``)."""
        state = {"data": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_rng(self) -> None:
        """Take up the random state a continuation was saved with, so that it draws the batches,
        augmentation and dropout the unbroken run would have (seeded anew with seed + start epoch, a
        continuation drew a fresh run's first epoch again: 62.4% against 60.6% after epoch 2). Done at
        the fit's start: the precision check in ``__init__`` may draw from the global generator. A
        state that does not fit (another device, a damaged file) leaves the seeding as it was."""
        state, self._rng_restore = self._rng_restore, None
        setters = {"data": self.generator.set_state, "torch": torch.set_rng_state}
        if self.device.type == "cuda":
            setters["cuda"] = lambda s: torch.cuda.set_rng_state(s, self.device)
        for name, put in setters.items():  # each on its own: a CUDA run's batch order does not fit a CPU
            if name in (state or {}):        # generator, and its dropout's state still does
                try:
                    put(state[name].to(torch.uint8).cpu())
                except (RuntimeError, ValueError, TypeError) as err:
                    _log.warning("the saved random state %r could not be restored (%s); drawn anew", name, err)

    def _fit(self, why_threads: str) -> FitEnd:
        cfg, dev = self.cfg, self.device
        self.model.train()
        self._restore_rng()
        self._train_seconds, self._samples, self._last_val = 0.0, 0, None
        self._best_pace, self._windows, self.one_thread_from = 0.0, [], None
        self._emit(FitStart(self.start_epoch + cfg.epochs, self.start_epoch, self.steps_per_epoch,
                            len(self.train_y), len(self.val_y),
                            device_description(dev, why_threads) + (" in bf16" if self._autocast else ""),
                            count_parameters(self.model), self.schedule_from))
        last_epoch = self.start_epoch + cfg.epochs
        status, message, epoch = "completed", "", self.start_epoch
        try:
            for epoch in range(self.start_epoch + 1, last_epoch + 1):
                if self.step >= self.total_steps:  # max_steps reached: this epoch never started
                    epoch -= 1
                    break
                if not self._train_epoch(epoch):  # its weights are not kept
                    status, message = "stopped", f"{self._stop_reason} during epoch {epoch}"
                    epoch -= 1
                    break
                if self._stop_requested and epoch < last_epoch:
                    status, message = "stopped", f"{self._stop_reason} after epoch {epoch}"
                    break
        except _Diverged as d:
            status = "diverged"
            # its steps were trained, if not kept: train --json said 0.0 s of a run that diverged at step 9.
            # (Not for a Stop mid-epoch: a continued run's time per epoch would count the dropped part.)
            if self._tally is not None:
                self._train_seconds += time.perf_counter() - self._tally.started
                self._samples += self._tally.samples
            message = (f"{diverged_words(d.loss, f'at step {d.step} (epoch {d.epoch})')}; training was stopped. "
                       f"Try a smaller learning rate than {cfg.lr:g}.")
            epoch = d.epoch - 1
        except torch.OutOfMemoryError:
            status = "failed"
            message = (f"out of memory on {dev.type.upper()} at batch size {cfg.batch_size}; "
                       "try a smaller batch size or a smaller model")
            epoch -= 1
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as err:
            self._emit(self._end("failed", f"{type(err).__name__}: {err}", max(epoch - 1, self.start_epoch)))
            raise
        message = message or self._dry_run_words(epoch) or self._trained_words(epoch)
        if self.one_thread_from is not None:  # why this run took longer, and differs from its seed's
            # in a student's words: "where its threads stalled waiting on each other" read as jargon
            # and what it did not change: a student's walk asked whether the model was worse for it
            message += (f"; {ONE_THREAD} {self.one_thread_from}: another program kept this "
                        "computer's processor busy, and its threads were waiting for each other. That slowed "
                        "the run, not what it learned")
        end = self._end(status, message, max(epoch, self.start_epoch))
        self._emit(end)
        return end


# A training loss above this is divergence as surely as NaN. A guess among 24 letters scores ln 24 = 3.2;
# healthy runs stay under 10 from the first step. AdamW at lr 10 never reaches NaN (its steps are
# bounded): the ConvNet's loss went to 24,000 within ten steps and 2.4e9 later, and the run ended
# "completed" at chance accuracy. Logistic regression with AdamW at lr 10 peaks at about 1,200 and still
# reaches 54%, so the line is drawn higher.
DIVERGED_LOSS = 10_000.0


def blew_up(loss: float) -> bool:
    """Whether a training loss means the run diverged: NaN, infinite or over DIVERGED_LOSS."""
    return not math.isfinite(loss) or loss > DIVERGED_LOSS


def diverged_words(loss: float | None, where: str) -> str:
    """What blew up ``where`` ("at step 3 (epoch 1)"), for a run's message: which limit the loss crossed
    (``None``: not known here, as when processes agree on it under torchrun)."""
    if loss is None:
        return f"the loss became NaN or infinite, or over {DIVERGED_LOSS:,.0f}, {where}"
    if math.isnan(loss):
        return f"the loss became NaN (not a number) {where}"
    if math.isinf(loss):
        return f"the loss became infinite {where}"
    return (f"the loss reached {loss:,.0f} {where}, over the {DIVERGED_LOSS:,.0f} past which a run counts "
            "as diverged (a guess among 24 letters scores 3.2)")


class _Diverged(Exception):
    def __init__(self, step: int, epoch: int, loss: float | None = None) -> None:
        super().__init__(step, epoch, loss)
        self.step, self.epoch, self.loss = step, epoch, loss
