"""Run directories: the source of truth for every training, written so a crash loses nothing.

A run lives in ``<runs_dir>/<run_id>/``::

    config.json          the TrainConfig (atomic)
    meta.json            id, display name, creation time (atomic)
    status.json          queued | running | paused | completed | stopped | diverged | failed,
                         with the worker's pid; "interrupted" is derived when that pid is gone
    metrics.jsonl        append-only event log, one JSON object a line, flushed as it goes
    model.safetensors    weights at the last finished epoch (atomic, every epoch end)
    optimizer.safetensors + optimizer.json   optimizer state, to continue training
    kernels.safetensors  first-layer kernels after each epoch, for the Kernels page's slider
    control.json         requests to the worker: stop, pause, resume

Weights are only ever read with safetensors; no file is unpickled. Run ids are checked so that no
id can reach outside the runs folder.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import TrainConfig
from .errors import RunError
from .fsutil import atomic_write, atomic_write_json, read_json, storage_error
from .models import create_model, first_weights
from .paths import default_runs_dir

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FINAL_STATES = ("completed", "stopped", "diverged", "failed", "interrupted")
ACTIVE_STATES = ("queued", "running", "paused")
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


# --------------------------------------------------------------------------- ids and paths
def new_run_id(model: str) -> str:
    """A fresh, sortable id such as ``20261128-101500-convnet-3fa2``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name; RunError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise RunError(f"{run_id!r} is not a valid run id (letters, digits, '-', '_' and '.' only)")
    return run_id


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def run_path(run_id: str, runs_dir: Path | str | None = None) -> Path:
    """The folder of ``run_id`` under ``runs_dir``, guaranteed to lie inside it."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    path = root / check_run_id(run_id)
    if not _inside(path, root):  # a symlink pointing out of the runs folder
        raise RunError(f"{run_id!r} points outside the runs folder {root}")
    return path


def resolve_run(ref: str, runs_dir: Path | str | None = None) -> Path:
    """RUN on the command line: a run id in ``runs_dir`` or a path to a run directory."""
    p = Path(ref).expanduser()
    if (os.sep in ref or ref.startswith(".")) and p.is_dir():
        if not (p / "config.json").is_file():
            raise RunError(f"{ref}: not a run directory (no config.json)")
        return p
    path = run_path(ref, runs_dir)
    if not (path / "config.json").is_file():
        raise RunError(f"{ref}: no such run in {path.parent}")
    return path


# --------------------------------------------------------------------------- safe weights
def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file. Pickle-based checkpoints are refused before anything is read."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES or path.suffix.lower() != ".safetensors":
        raise RunError(f"{path.name}: refused; signlab reads weights only from .safetensors files, "
                       "never pickle-based checkpoints (they can run code when loaded)")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable safetensors file ({err})") from err


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        for k, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain["state"].setdefault(str(idx), {})[k] = v
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    for idx, entry in plain.get("state", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": plain["param_groups"]}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- reading a run
@dataclass
class Run:
    """A run directory, read lazily. Use :func:`open_run` or :func:`list_runs` to get one."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def config(self) -> TrainConfig:
        data = read_json(self.dir / "config.json")
        if not isinstance(data, dict):
            raise RunError(f"{self.dir}: config.json is missing or unreadable")
        return TrainConfig.from_dict(data)

    @property
    def meta(self) -> dict[str, Any]:
        return read_json(self.dir / "meta.json", {}) or {}

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.id

    def raw_status(self) -> dict[str, Any]:
        return read_json(self.dir / "status.json", {}) or {}

    def status(self) -> dict[str, Any]:
        """status.json, with ``running``/``paused`` turned into ``interrupted`` when the worker is gone."""
        st = self.raw_status()
        st.setdefault("status", "queued" if not (self.dir / "metrics.jsonl").exists() else "interrupted")
        if st["status"] in ("running", "paused") and st.get("host", socket.gethostname()) == socket.gethostname():
            if not _pid_alive(st.get("pid")):
                st = {**st, "status": "interrupted",
                      "message": f"the training process stopped unexpectedly; the weights of epoch "
                                 f"{st.get('epochs_completed', 0)} are kept and the run can be continued"}
        return st

    def metrics(self) -> list[dict[str, Any]]:
        """Every event of the log; a torn last line (a killed writer) is skipped."""
        out = []
        try:
            with open(self.dir / "metrics.jsonl") as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except OSError:
            pass
        return out

    def has_weights(self) -> bool:
        return (self.dir / "model.safetensors").is_file()

    def load_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Rebuild the model from config.json and model.safetensors (no unpickling), in eval mode."""
        cfg = self.config
        model = create_model(cfg.model, members=cfg.ensemble, input_norm=cfg.input_norm, width=cfg.width)
        if not self.has_weights():
            raise RunError(f"run {self.id} has no weights yet (no finished epoch)")
        try:
            model.load_state_dict(load_weights(self.dir / "model.safetensors"))
        except RuntimeError as err:
            raise RunError(f"run {self.id}: weights do not fit model {cfg.model} ({err})") from err
        if cfg.channels_last:  # the layout it trained in: outputs then match training bit for bit
            model = model.to(memory_format=torch.channels_last)
        return model.to(device).eval()

    def training_state(self) -> dict[str, Any]:
        """Model and optimizer state to continue training."""
        state: dict[str, Any] = {"model": load_weights(self.dir / "model.safetensors")}
        opt_path = self.dir / "optimizer.safetensors"
        plain = read_json(self.dir / "optimizer.json")
        if opt_path.is_file() and isinstance(plain, dict):
            state["optimizer"] = _unflatten_optimizer(load_weights(opt_path), plain)
        return state

    def kernel_history(self) -> dict[int, torch.Tensor]:
        """First-layer weights by epoch (0 = before training): {epoch: (C_out, C_in, k, k) or (24, 784)}."""
        path = self.dir / "kernels.safetensors"
        if not path.is_file():
            return {}
        try:
            return {int(k.split("_")[1]): v for k, v in sorted(load_weights(path).items(),
                                                               key=lambda kv: int(kv[0].split("_")[1]))}
        except RunError:
            return {}

    def epochs_completed(self) -> int:
        return int(self.raw_status().get("epochs_completed", 0))

    def remove_partial_writes(self) -> None:
        """Delete temporary files of atomic writes that a killed writer left (never the real files)."""
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def request(self, action: str) -> None:
        """Ask the worker to ``stop``, ``pause`` or ``resume`` (it checks between batches)."""
        if action not in ("stop", "pause", "resume"):
            raise ValueError(action)
        atomic_write_json(self.dir / "control.json", {"action": action, "time": time.time()})

    def control(self) -> str | None:
        c = read_json(self.dir / "control.json", {}) or {}
        return c.get("action")

    def rename(self, name: str) -> None:
        name = " ".join(str(name).split())[:80]
        if not name:
            raise RunError("a run's name cannot be empty")
        atomic_write_json(self.dir / "meta.json", {**self.meta, "name": name})

    def summary(self) -> dict[str, Any]:
        """One row for the runs table."""
        st = self.status()
        try:
            cfg = self.config.to_dict()
        except Exception:  # noqa: BLE001 - an unreadable config must not hide the row
            cfg = {}
        return {
            "run_id": self.id, "name": self.name, "model": cfg.get("model"), "preset": cfg.get("preset"),
            "ensemble": cfg.get("ensemble"),
            "status": st.get("status"), "epochs": st.get("epochs_completed", 0),
            "target_epochs": st.get("target_epochs", cfg.get("epochs")),
            "batch_size": cfg.get("batch_size"), "lr": cfg.get("lr"), "optimizer": cfg.get("optimizer"),
            "schedule": cfg.get("schedule"), "augment": cfg.get("augment"),
            "val_accuracy": st.get("val_accuracy"), "test_accuracy": st.get("test_accuracy"),
            "train_seconds": st.get("train_seconds"), "created": self.meta.get("created"),
            "message": st.get("message", ""),
        }


def open_run(ref: str, runs_dir: Path | str | None = None) -> Run:
    """A run by id (in ``runs_dir``) or by path; RunError when it does not exist or is unsafe."""
    return Run(resolve_run(ref, runs_dir))


def list_runs(runs_dir: Path | str | None = None) -> list[Run]:
    """Every readable run, newest first. Folders without a readable config are not listed."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        if (d.is_dir() and RUN_ID_RE.match(d.name) and isinstance(read_json(d / "config.json"), dict)
                and _inside(d, root)):  # a symlink out of the folder is not listed (open_run refuses it)
            runs.append(Run(d))
    return sorted(runs, key=lambda r: (r.meta.get("created", 0), r.id), reverse=True)


def delete_run(run_id: str, runs_dir: Path | str | None = None) -> None:
    """Remove a run folder (refuses one whose worker is still running)."""
    run = Run(run_path(run_id, runs_dir))
    if run.status().get("status") in ("running", "paused"):
        raise RunError(f"run {run_id} is still training; stop it before deleting it")
    shutil.rmtree(run.dir)


# --------------------------------------------------------------------------- writing a run
def create_run(cfg: TrainConfig, runs_dir: Path | str | None = None, run_id: str | None = None,
               status: str = "queued", name: str | None = None) -> Run:
    """Make a new run folder holding its config, meta and status."""
    run_id = check_run_id(run_id) if run_id else new_run_id(cfg.model)
    path = run_path(run_id, runs_dir)
    if path.exists():
        raise RunError(f"run {run_id} already exists")
    try:
        path.mkdir(parents=True)
    except OSError as err:
        raise storage_error(err, path) from err
    atomic_write_json(path / "meta.json", {"run_id": run_id, "name": name or run_id, "created": time.time()})
    atomic_write_json(path / "status.json", {"status": status, "epochs_completed": 0,
                                             "target_epochs": cfg.epochs, "updated": time.time()})
    # config.json last: it makes the folder a run (list_runs, open_run), so a process killed half
    # way through never leaves a listed run without its status
    atomic_write_json(path / "config.json", cfg.to_dict())
    return Run(path)



class RunWriter:
    """A Trainer callback that keeps the run directory current.

    Weights, optimizer state and the kernel snapshot are written atomically at every epoch end,
    so a process killed at any moment leaves the last finished epoch loadable.
    """

    def __init__(self, run: Run, extra_status: dict[str, Any] | None = None) -> None:
        self.run = run
        self.extra = dict(extra_status or {})
        self._log = None
        self._status: dict[str, Any] = {**run.raw_status()}

    def log(self, record: dict[str, Any]) -> None:
        try:
            if self._log is None:
                self._log = open(self.run.dir / "metrics.jsonl", "a")
            self._log.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
            self._log.flush()
        except OSError as err:  # a full disk: a StorageError naming the file, not a bare OSError
            raise storage_error(err, self.run.dir / "metrics.jsonl") from err

    def set_status(self, **fields: Any) -> None:
        self._status.update(fields, updated=time.time(), pid=os.getpid(), host=socket.gethostname())
        atomic_write_json(self.run.dir / "status.json", self._status)

    def _save(self, trainer, epoch: int) -> None:
        d = self.run.dir
        state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        atomic_write(d / "model.safetensors", lambda p: save_file(state, str(p), metadata={"epoch": str(epoch)}))
        tensors, plain = _flatten_optimizer(trainer.optimizer.state_dict())
        atomic_write(d / "optimizer.safetensors", lambda p: save_file(tensors, str(p)))
        atomic_write_json(d / "optimizer.json", plain)
        self._snapshot_kernels(trainer.model, epoch)

    def _snapshot_kernels(self, model: torch.nn.Module, epoch: int) -> None:
        w = first_weights(model)
        if w is None:
            return
        history = {f"epoch_{e}": t for e, t in self.run.kernel_history().items()}
        history[f"epoch_{epoch}"] = w.float().contiguous()
        atomic_write(self.run.dir / "kernels.safetensors", lambda p: save_file(history, str(p)))

    def __call__(self, event, trainer) -> None:
        from .trainer import BatchEnd, EpochEnd, FitEnd, FitStart

        if isinstance(event, FitStart):
            if event.start_epoch == 0:
                self._snapshot_kernels(trainer.model, 0)
            self.log({"type": "fit_start", "start_epoch": event.start_epoch, "total_epochs": event.total_epochs,
                      "steps_per_epoch": event.steps_per_epoch, "n_train": event.n_train, "n_val": event.n_val,
                      "device": event.device, "parameters": event.parameters})
            self.set_status(status="running", message=f"training on {event.device}", target_epochs=event.total_epochs,
                            epochs_completed=event.start_epoch, steps_per_epoch=event.steps_per_epoch,
                            device=event.device, **self.extra)
        elif isinstance(event, BatchEnd):
            self.log({"type": "batch", "step": event.step, "epoch": event.epoch, "loss": event.loss, "lr": event.lr,
                      "samples_per_second": event.samples_per_second, "train_seconds": event.train_seconds,
                      "progress": event.progress})
        elif isinstance(event, EpochEnd):
            self._save(trainer, event.epoch)
            self.log({"type": "epoch", "epoch": event.epoch, "train_loss": event.train_loss,
                      "train_accuracy": event.train_accuracy, "val_loss": event.val_loss,
                      "val_accuracy": event.val_accuracy, "epoch_seconds": event.epoch_seconds,
                      "train_seconds": event.train_seconds, "samples_per_second": event.samples_per_second})
            prior = self._status.get("train_seconds_before", 0.0)
            self.set_status(epochs_completed=event.epoch, val_accuracy=event.val_accuracy,
                            train_seconds=prior + event.train_seconds, samples_per_second=event.samples_per_second)
        elif isinstance(event, FitEnd):
            try:
                self.log({"type": "fit_end", "status": event.status, "message": event.message,
                          "epochs_completed": event.epochs_completed, "train_seconds": event.train_seconds,
                          "samples_per_second": event.samples_per_second})
            finally:  # the status tells how the run ended even when the log cannot be written
                self.set_status(status=event.status, message=event.message,
                                epochs_completed=event.epochs_completed,
                                train_seconds_before=self._status.get("train_seconds_before", 0.0)
                                + event.train_seconds,
                                train_seconds=self._status.get("train_seconds_before", 0.0) + event.train_seconds)
                if self._log is not None:
                    log, self._log = self._log, None
                    try:
                        log.close()
                    except OSError:
                        pass
