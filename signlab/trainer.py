"""The Trainer: a plain training loop that reports what it does as small typed events.

Callbacks receive ``(event, trainer)`` for :class:`FitStart`, :class:`BatchEnd` (every
``log_every`` steps), :class:`EpochEnd` and :class:`FitEnd`. The trainer knows nothing about
threads, processes, files or Streamlit: the run writer, the progress bar and the dashboard's
worker are all callbacks. ``stop()`` ends training between two batches.

Batches are cut from tensors that stay on the training device, by a shuffled index; no
per-sample DataLoader (at batch 32 collating samples one by one costs a sixth of a CPU epoch).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import augment as aug
from .config import TrainConfig
from .data import Dataset, load_dataset
from .labels import normalize, normalize_for
from .models import count_parameters, create_model


# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class FitStart:
    total_epochs: int  # the epoch number training will end on (continuations count on)
    start_epoch: int  # epochs already done before this fit (0 for a new run)
    steps_per_epoch: int
    n_train: int
    n_val: int
    device: str
    parameters: int


@dataclass(frozen=True)
class BatchEnd:
    step: int  # global step, 1-based
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


# --------------------------------------------------------------------------- helpers
def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, after joining the process group; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    from .errors import ConfigError

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but no CUDA GPU is available; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device: MPS was asked for but is not available; use auto or cpu")
    return torch.device(name)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: asked for, or ``auto`` on hardware with fast bf16."""
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN reports native bf16 (AVX512-BF16 or AMX); emulated bf16 would be slower than fp32
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_description(device: torch.device | None = None) -> str:
    """A short human description: the GPU's name, or the CPU with its thread count."""
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def to_float_images(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) or float 0..1 arrays -> float tensor (N, 1, 28, 28) in [0, 1]."""
    t = torch.as_tensor(images)
    if t.dtype == torch.uint8:
        t = t.to(device).float().div_(255.0)
    else:
        t = t.to(device=device, dtype=torch.float32)
    return t.reshape(-1, 1, 28, 28)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits (N, 24) for float images (N, 1, 28, 28) in [0, 1], in eval mode, normalised here."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model(normalize_for(model, x[i:i + batch_size].to(dev))).float() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 24)


def split_train_val(ds: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, val_x, val_y): the test CSV as validation, or a seeded hold-out."""
    if cfg.val_fraction == 0:
        return ds.train.images, ds.train.targets, ds.test.images, ds.test.targets
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(ds.train))
    n_val = max(1, int(round(cfg.val_fraction * len(perm))))
    val, tr = perm[:n_val], perm[n_val:]
    return ds.train.images[tr], ds.train.targets[tr], ds.train.images[val], ds.train.targets[val]


def make_optimizer(cfg: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


def make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total_steps, 1),
                                                   pct_start=0.25, cycle_momentum=cfg.optimizer == "sgd")
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return None


# --------------------------------------------------------------------------- the trainer
class Trainer:
    """Train ``cfg.model`` on a dataset; see the module docstring for the events.

    ``start_epoch``/``state`` continue an earlier run: ``state`` holds ``model`` (a state dict)
    and optionally ``optimizer``; ``cfg.epochs`` more epochs are then trained.
    """

    def __init__(self, cfg: TrainConfig, dataset: Dataset | None = None,
                 callbacks: Iterable[Callback] = (), start_epoch: int = 0,
                 state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.start_epoch = start_epoch
        self.rank, self.world = distributed_rank_world()
        # under torchrun only rank 0 reports (and so writes the run); the others just train
        self.callbacks = list(callbacks) if self.rank == 0 else []
        self.device = resolve_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model, members=cfg.ensemble, input_norm=cfg.input_norm, width=cfg.width).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data)
        tx, ty, vx, vy = split_train_val(self.dataset, cfg)
        if self.world > 1:  # each process trains on its own equal share of the training set
            share = np.random.default_rng(cfg.seed).permutation(len(ty))[: len(ty) // self.world * self.world]
            tx, ty = tx[share[self.rank::self.world]], ty[share[self.rank::self.world]]
        self.train_x = to_float_images(tx, self.device)  # (N, 1, 28, 28) in [0, 1]
        self.train_y = torch.as_tensor(ty, device=self.device)
        self.val_x = to_float_images(vx, self.device)
        self.val_y = torch.as_tensor(vy, device=self.device)
        self.steps_per_epoch = math.ceil(len(self.train_y) / cfg.batch_size)
        total = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        self.total_steps = total
        if state is not None:
            self.model.load_state_dict(state["model"])
        # DDP averages gradients across processes; self.model stays the plain module for saving
        self.ddp = (torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                              if self.device.type == "cuda" else None)
                    if self.world > 1 else None)
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        if state is not None:
            if state.get("optimizer"):
                try:
                    self.optimizer.load_state_dict(state["optimizer"])
                except (ValueError, KeyError):
                    pass  # an optimizer of another kind: start its moments afresh
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.lr
                    group.pop("initial_lr", None)
                    group.pop("max_lr", None)
        self.scheduler = make_schedule(cfg, self.optimizer, total)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + start_epoch)
        self.step = 0
        self._stop_requested = False
        self._autocast = use_bf16(cfg.precision, self.device)

    # -- control
    def stop(self) -> None:
        """Ask training to end after the current batch (safe to call from any thread)."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def _agree_to_stop(self, loss: torch.Tensor) -> bool:
        """Across processes: True if any asked to stop or saw a non-finite loss (sets the stop flag)."""
        flags = torch.tensor([float(self._stop_requested), float(not math.isfinite(loss.item()))], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        if flags[1] > 0:
            self._stop_requested = False
            return True
        if flags[0] > 0:
            self._stop_requested = True
            return True
        return False

    def _emit(self, event: Event) -> None:
        for cb in self.callbacks:
            cb(event, self)

    # -- the loop
    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.train_x.index_select(0, idx)  # (B, 1, 28, 28)
        yb = self.train_y.index_select(0, idx)  # (B,)
        if self.cfg.augment_photo:
            xb = aug.photo_like(xb, self.generator, framing=self.cfg.photo_framing)
        elif self.cfg.augment:
            xb = aug.affine(xb, self.generator)
        xb = normalize(xb, self.cfg.input_norm)
        if self.cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def validate(self) -> tuple[float, float]:
        """(loss, accuracy) on the validation tensors."""
        logits = predict_logits(self.model, self.val_x)
        loss = F.cross_entropy(logits, self.val_y).item()
        acc = (logits.argmax(1) == self.val_y).float().mean().item()
        return loss, acc

    def fit(self) -> FitEnd:
        """Train; returns (and emits) the FitEnd event. Never trains on a non-finite loss."""
        cfg, dev = self.cfg, self.device
        self.model.train()
        train_seconds, samples, epoch = 0.0, 0, self.start_epoch
        last_val: float | None = None
        self._emit(FitStart(self.start_epoch + cfg.epochs, self.start_epoch, self.steps_per_epoch,
                            len(self.train_y), len(self.val_y), device_description(dev),
                            count_parameters(self.model)))
        status, message = "completed", ""
        try:
            for epoch in range(self.start_epoch + 1, self.start_epoch + cfg.epochs + 1):
                if self.step >= self.total_steps:  # max_steps reached: this epoch never started
                    epoch -= 1
                    break
                t_epoch, ep_samples = time.perf_counter(), 0
                loss_sum = torch.zeros((), device=dev)  # kept on the device: no per-step host sync
                correct = torch.zeros((), device=dev, dtype=torch.long)
                log_loss, log_n, t_log, log_samples = torch.zeros((), device=dev), 0, time.perf_counter(), 0
                perm = torch.randperm(len(self.train_y), generator=self.generator, device=dev)
                for b in range(self.steps_per_epoch):
                    idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    xb, yb = self._batch(idx)
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self._autocast):
                        logits = (self.ddp or self.model)(xb)
                    if logits.ndim == 3:  # an ensemble, (B, K, 24): every member its own loss
                        k = logits.shape[1]
                        loss = F.cross_entropy(logits.float().flatten(0, 1), yb.repeat_interleave(k),
                                               label_smoothing=cfg.label_smoothing)
                        logits = logits.detach().float().softmax(2).mean(1)  # (B, 24) mean probabilities
                        # reported: the ensemble's own loss, as validation measures it (the members' mean
                        # loss, which is optimised, is higher and would put training above validation);
                        # a non-finite optimised loss still shows through and ends the run (no host sync)
                        shown = torch.where(torch.isfinite(loss), F.nll_loss(logits.clamp_min(1e-12).log(), yb),
                                            loss)
                    else:
                        loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
                        shown = loss
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.step += 1
                    n = len(idx)
                    ep_samples += n
                    log_samples += n
                    d = shown.detach()
                    loss_sum += d * n
                    log_loss += d
                    log_n += 1
                    correct += (logits.detach().argmax(1) == yb).sum()
                    at_log = self.step % cfg.log_every == 0 or b == self.steps_per_epoch - 1
                    if self.world == 1 and (dev.type == "cpu" or at_log):
                        # a sync is free on the CPU; on a GPU only when logging
                        if not math.isfinite(d.item()):
                            raise _Diverged(self.step, epoch)
                    if at_log:
                        now = time.perf_counter()
                        elapsed = train_seconds + (now - t_epoch)
                        self._emit(BatchEnd(self.step, epoch, (log_loss / log_n).item(),
                                            self.optimizer.param_groups[0]["lr"],
                                            log_samples / max(now - t_log, 1e-9), elapsed,
                                            self.step / self.total_steps))
                        log_loss, log_n, t_log, log_samples = torch.zeros((), device=dev), 0, now, 0
                    if self.world > 1:
                        # all processes must leave the loop at the same step, or DDP would hang:
                        # they agree on stop requests and non-finite losses only at logging steps
                        if at_log and self._agree_to_stop(d) and not self._stop_requested:
                            raise _Diverged(self.step, epoch)
                        if (at_log and self._stop_requested) or self.step >= self.total_steps:
                            break
                    elif self._stop_requested or self.step >= self.total_steps:
                        break
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                ep_time = time.perf_counter() - t_epoch
                epoch_done = b == self.steps_per_epoch - 1 or self.step >= self.total_steps
                if not epoch_done:  # stopped half way: this epoch does not count, its weights are not kept
                    status, message = "stopped", f"stopped by request during epoch {epoch}"
                    epoch -= 1
                    break
                train_seconds += ep_time
                if self.world > 1:  # metrics over all processes' batches
                    totals = torch.stack([loss_sum.float(), correct.float(), torch.tensor(float(ep_samples), device=dev)])
                    torch.distributed.all_reduce(totals)
                    loss_sum, correct, ep_samples = totals[0], totals[1].long(), int(totals[2].item())
                samples += ep_samples
                val_loss, val_acc = self.validate()
                last_val = val_acc
                self._emit(EpochEnd(epoch, loss_sum.item() / ep_samples, correct.item() / ep_samples,
                                    val_loss, val_acc, ep_time, train_seconds, ep_samples / max(ep_time, 1e-9)))
                if self._stop_requested and epoch < self.start_epoch + cfg.epochs:
                    status, message = "stopped", f"stopped by request after epoch {epoch}"
                    break
        except _Diverged as d:
            status = "diverged"
            message = (f"the loss became NaN or infinite at step {d.step} (epoch {d.epoch}); training was "
                       f"stopped. Try a smaller learning rate than {cfg.lr:g}.")
            epoch = d.epoch - 1
        except torch.OutOfMemoryError:
            status = "failed"
            message = (f"out of memory on {dev.type.upper()} at batch size {cfg.batch_size}; "
                       "try a smaller batch size or a smaller model")
            epoch -= 1
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as err:
            end = FitEnd("failed", f"{type(err).__name__}: {err}", max(epoch - 1, self.start_epoch),
                         self.step, train_seconds, samples / max(train_seconds, 1e-9), last_val)
            self._emit(end)
            raise
        end = FitEnd(status, message or f"trained {epoch - self.start_epoch} epoch(s)", max(epoch, self.start_epoch),
                     self.step, train_seconds, samples / max(train_seconds, 1e-9), last_val)
        self._emit(end)
        return end


class _Diverged(Exception):
    def __init__(self, step: int, epoch: int) -> None:
        super().__init__(step, epoch)
        self.step, self.epoch = step, epoch
