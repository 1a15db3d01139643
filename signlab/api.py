"""The operations the command line and the dashboard share: train, continue, evaluate, predict, export.

Each function takes plain arguments and returns plain data, so ``python -m signlab`` and the
Streamlit pages run the very same code.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from .config import TrainConfig
from .data import Dataset, load_dataset
from .errors import RunError
from .evaluate import Evaluation, evaluate_model
from .fsutil import atomic_write, atomic_write_json
from .inference import doubt, predict_prepared, top_k
from .preprocess import Crop, looks_unusual, prepare
from .runs import Run, RunWriter, create_run, new_run_id, open_run, run_path
from .trainer import Callback, FitEnd, Trainer, distributed_rank_world


class ControlWatcher:
    """Callback: obey the run's control.json (stop, pause, resume) between batches.

    The dashboard writes the file; the worker process reads it. A paused worker sleeps in this
    callback until it is resumed or stopped, so the Trainer itself never deals with pausing.
    """

    def __init__(self, run: Run, writer: RunWriter, poll_seconds: float = 0.2) -> None:
        self.run, self.writer, self.poll = run, writer, poll_seconds
        self._mtime = 0.0

    def _changed(self) -> str | None:
        try:
            m = os.stat(self.run.dir / "control.json").st_mtime
        except OSError:
            return None
        if m == self._mtime:
            return None
        self._mtime = m
        return self.run.control()

    def __call__(self, event, trainer: Trainer) -> None:
        if isinstance(event, FitEnd):
            return
        action = self._changed()
        if action == "stop":
            trainer.stop()
        elif action == "pause":
            self.writer.set_status(status="paused", message="paused; press Resume to go on")
            while True:
                time.sleep(self.poll)
                action = self._changed() or action
                if action in ("resume", "stop"):
                    break
            self.writer.set_status(status="running", message="training")
            if action == "stop":
                trainer.stop()


def train(cfg: TrainConfig, runs_dir: Path | str | None = None, run_id: str | None = None,
          callbacks: Iterable[Callback] = (), dataset: Dataset | None = None,
          evaluate_test: bool = True) -> dict[str, Any]:
    """Train a new run (or a queued one, when ``run_id`` names an existing queued run).

    Returns the ``train --json`` record: run_id, run_dir, status, epochs, val_accuracy,
    test_accuracy, train_seconds, samples_per_second, message.
    """
    rank, world = distributed_rank_world()
    if world > 1:  # under torchrun: rank 0 names and writes the run, the other processes only train
        ids = [run_id or new_run_id(cfg.model)]
        torch.distributed.broadcast_object_list(ids, src=0)
        run_id = ids[0]
        if rank != 0:
            end = Trainer(cfg, dataset if dataset is not None else load_dataset(cfg.data)).fit()
            return {"run_id": run_id, "rank": rank, "status": end.status}
    if run_id is not None and run_path(run_id, runs_dir).exists():  # a run the dashboard queued
        run = open_run(run_id, runs_dir)
        cfg = run.config  # the queued run's own settings, not the command line's defaults
    else:
        run = create_run(cfg, runs_dir, run_id=run_id, status="running")
    try:
        dataset = dataset if dataset is not None else load_dataset(cfg.data)
    except Exception as err:
        RunWriter(run).set_status(status="failed", message=str(err))
        raise
    return _fit(run, cfg, dataset, callbacks, 0, None, evaluate_test)


def continue_run(ref: str, epochs: int, runs_dir: Path | str | None = None,
                 callbacks: Iterable[Callback] = (), dataset: Dataset | None = None,
                 evaluate_test: bool = True, **changes: Any) -> dict[str, Any]:
    """Train an existing run for ``epochs`` more epochs from its last finished epoch."""
    run = open_run(ref, runs_dir)
    st = run.status()
    if st.get("status") in ("running", "paused") and st.get("pid") != os.getpid():  # the job manager
        raise RunError(f"run {run.id} is still training")                           # launched us itself
    if not run.has_weights():
        raise RunError(f"run {run.id} has no finished epoch to continue from")
    done = run.epochs_completed()
    base = run.config
    cfg = base.replace(epochs=epochs, **{k: v for k, v in changes.items() if v is not None})
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    # config.json records the whole run: its epochs are the total after this continuation
    atomic_write_json(run.dir / "config.json", cfg.replace(epochs=done + epochs).to_dict())
    return _fit(run, cfg, dataset, callbacks, done, run.training_state(), evaluate_test)


def _fit(run: Run, cfg: TrainConfig, dataset: Dataset, callbacks: Iterable[Callback], start_epoch: int,
         state: dict[str, Any] | None, evaluate_test: bool) -> dict[str, Any]:
    run.remove_partial_writes()  # left by an earlier worker that was killed mid-write
    writer = RunWriter(run)
    cbs: list[Callback] = [writer, ControlWatcher(run, writer), *callbacks]
    try:
        trainer = Trainer(cfg, dataset, cbs, start_epoch=start_epoch, state=state)
    except torch.OutOfMemoryError as err:  # the data and the model do not fit on the device
        message = ("out of memory while putting the data and the model on the device; wait for other "
                   "training jobs to finish, choose a smaller model, or train on the CPU (device cpu)")
        writer.set_status(status="failed", message=message)
        raise RunError(message) from err
    except Exception as err:
        writer.set_status(status="failed", message=str(err))
        raise
    end = trainer.fit()
    record: dict[str, Any] = {
        "run_id": run.id, "run_dir": str(run.dir.resolve()), "status": end.status,
        "epochs": end.epochs_completed, "val_accuracy": end.val_accuracy, "test_accuracy": None,
        "train_seconds": end.train_seconds, "samples_per_second": end.samples_per_second,
        "message": end.message, "model": cfg.model,
    }
    if evaluate_test and run.has_weights():
        ev = evaluate_run(run, dataset)
        record["test_accuracy"] = ev.accuracy
        writer.set_status(test_accuracy=ev.accuracy)
    return record


def evaluate_run(run: Run | str, dataset: Dataset | None = None, runs_dir: Path | str | None = None,
                 device: str = "cpu") -> Evaluation:
    """The run's model on the test CSV."""
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    dataset = dataset if dataset is not None else load_dataset(run.config.data)
    return evaluate_model(run.load_model(device), dataset.test)


def predict_files(run: Run | str, files: Iterable[str | Path], k: int = 5, runs_dir: Path | str | None = None,
                  crop: Crop | str | None = None) -> list[dict[str, Any]]:
    """The ``predict --json`` records: for each file its top-k letters (ImageError for a bad file).

    Beside ``file`` and ``top``: ``warnings`` (why the input looks unlike the training photos, and
    "not sure", :func:`signlab.inference.doubt`), ``notes`` (what preprocessing did) and ``hand_found``.
    """
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    model = run.load_model()
    tta = run.config.augment_photo  # trained on mirrored, zoomed-out hands: average 4 views
    out = []
    for f in files:
        prep = prepare(f, str(f), crop)
        probs = predict_prepared(model, prep, tta=tta)
        warnings = [] if prep.hand is not None else looks_unusual(prep.image28)  # a found hand is a photo of one
        worry = doubt(probs, photo=True)
        if worry:
            warnings.append(f"{worry}: its best letter gets {probs.max():.0%}")
        out.append({"file": str(f), "top": top_k(probs, k), "warnings": warnings, "notes": prep.notes,
                    "hand_found": prep.hand is not None})
    return out


def export_onnx(run: Run | str, out: Path | str | None = None, runs_dir: Path | str | None = None) -> Path:
    """Write the run's model as ONNX: input ``image`` (B, 1, 28, 28) in [0, 1], output ``logits`` (B, 24).

    The per-image normalisation is part of the exported graph, so the file takes raw pixels / 255.
    """
    from .labels import normalize_for

    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    model = run.load_model()

    class WithNormalize(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(normalize_for(self.inner, x))

    out = Path(out) if out else run.dir / "model.onnx"
    wrapped = WithNormalize(model).eval()
    example = torch.rand(2, 1, 28, 28)
    def write(p: Path) -> None:
        torch.onnx.export(wrapped, (example,), str(p), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                          opset_version=17)

    atomic_write(out, write)
    return out
