"""The operations the command line and the dashboard share: queue, train, continue, evaluate, predict.

Each function takes plain arguments and returns plain data, so ``python -m signlab`` and the
Streamlit pages run the very same code.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import torch

from .access import Policy, local_user, policy
from .config import RESUMABLE, TrainConfig, check_setting
from .data import Dataset, check_source_allowed, load_dataset
from .device import distributed_rank_world, resolve_device
from .errors import ConfigError, ImageError, RunError, SignlabError, error_words
from .evaluate import Evaluation, evaluate_model
from .labels import NUM_CLASSES
from .health import HealthMonitor
from .interrupt import ShutDown
from .models import build_model
from .preprocess import Crop, prepare
from .runs import Run, RunWriter, create_held_run, create_run, new_run_id, open_run
from .store import Claim, Heartbeat, RunState, new_worker_id
from .events import Callback, FitEnd, Logged
from .numbers import duration, finite
from .trainer import Trainer
from .inference import read_sign


class ControlWatcher:
    """Callback: obey the run's control requests (stop, pause, resume) between batches.

    The dashboard records a request in the run store; the lease's heartbeat thread reads it back.
    A paused run sleeps in this callback (its heartbeat keeps the lease alive) until it is resumed
    or stopped, so the Trainer itself never deals with pausing. While paused it gives up its slot
    of the job limit; on Resume it waits here for a slot (``RunStore.resume``). A lost lease stops
    training. A pause longer than the class's ``max_pause_minutes`` (:func:`pause_limit_seconds`)
    stops the run: a student who paused and left kept a process with the model and the data in
    memory for as long as the server ran, one for each such run.
    """

    def __init__(self, writer: RunWriter, lease: Heartbeat, poll_seconds: float = 0.2) -> None:
        self.writer, self.lease, self.poll = writer, lease, poll_seconds

    def __call__(self, event, trainer: Trainer) -> None:
        if isinstance(event, FitEnd) or trainer.stop_requested:
            # stopping: the epoch's end may still come (its validation and save), and with the pause
            # request still standing it began a second whole pause after the limit had stopped the run
            return
        if self.lease.lost.is_set() or self.lease.control == "stop":
            trainer.stop()
        elif self.lease.control == "pause":
            limit = pause_limit_seconds(self.writer.run.dir.parent)
            span = duration(limit, "")  # "60 min"
            ends = f" (after {span} paused it stops, keeping its last finished epoch)" if limit else ""
            self.writer.set_state(RunState.PAUSED, message="paused; press Resume to go on" + ends)
            start = time.monotonic()
            with trainer.off_the_clock():  # a pause is not training time (the speed, the estimates)
                while not self._resumed():
                    if limit and time.monotonic() - start > limit:
                        trainer.stop(reason=f"stopped, paused for over {span},")
                        return
                    time.sleep(self.poll)
                    self.lease.beat()
            if self.lease.control == "stop" or self.lease.lost.is_set():
                trainer.stop()

    def _resumed(self) -> bool:
        """Whether the pause is over: stopped, the lease lost, or resumed with a slot taken back. The
        lost lease is read first: the pause request stays on a lease another process took back, and
        read first it kept this process paused for the whole pause limit (for good with none), counted
        by the server as a worker still starting, so a one-slot class queue stalled behind it."""
        if self.lease.lost.is_set():
            return True
        if self.lease.control == "pause":
            return False
        return self.lease.control == "stop" or self.writer.resume()


def pause_limit_seconds(runs_dir: Path) -> float:
    """How long a run may stay paused before it stops (the class settings' ``max_pause_minutes``,
    read when it pauses); 0 for no limit."""
    try:
        return 60.0 * policy(runs_dir).max_pause_minutes
    except SignlabError:  # a class setting made unreadable since the worker started (it checks them):
        return 60.0 * Policy().max_pause_minutes  # the default limit, not none


def queue(cfg: TrainConfig, runs_dir: Path | str | None = None, name: str | None = None,
          owner: str | None = None) -> Run:
    """Put a new run in the queue; a worker (``python -m signlab worker``, or the dashboard's) trains it.

    Its dataset must be the bundled one or a source the operator allows (``SIGNLAB_DATA_SOURCES``):
    a worker, on the server, will read it. ConfigError otherwise, before anything is created.
    """
    check_source_allowed(cfg.data)
    return create_run(cfg, runs_dir, status=RunState.QUEUED, name=name, owner=owner or local_user().id)


def train(cfg: TrainConfig, runs_dir: Path | str | None = None, callbacks: Iterable[Callback] = (),
          dataset: Dataset | None = None, evaluate_test: bool = True, name: str | None = None,
          run_id: str | None = None) -> dict[str, Any]:
    """Train a new run in this process (the command line's ``train``).

    The run is created already claimed by this process, so no worker can take it. Returns the
    ``train --json`` record: run_id, run_dir, status, epochs, val_accuracy, test_accuracy,
    train_seconds, samples_per_second, message.
    """
    rank, world = distributed_rank_world()
    if world > 1:  # under torchrun: rank 0 names and writes the run, the other processes only train
        ids = [run_id or new_run_id(cfg.model)]
        torch.distributed.broadcast_object_list(ids, src=0)
        run_id = ids[0]
        if rank != 0:
            trainer = Trainer(cfg, build_model(cfg), dataset if dataset is not None else load_dataset(cfg.data))
            # it reports nothing, so its callbacks hear no event; one that stops the fit (the command
            # line's Ctrl-C) is told the trainer: a press here then asks for the stop all processes agree
            # on, where it quit this process alone and rank 0's next collective met a dead peer
            for cb in callbacks:
                if callable(getattr(cb, "bind", None)):
                    cb.bind(trainer)
            end = trainer.fit()
            return {"run_id": run_id, "rank": rank, "status": end.status}
    if dataset is None:  # read (and checked) first: data that cannot be used leaves no failed run behind
        dataset = load_dataset(cfg.data)
    resolve_device(cfg.device)  # and a device this machine lacks (--device cuda without a GPU) leaves none either
    # the command line acts as the machine's user: its runs are that user's
    run, claim = create_held_run(cfg, new_worker_id("cli"), runs_dir, run_id=run_id, name=name,
                                 owner=local_user().id)
    return train_claimed(run, claim, callbacks, dataset, evaluate_test)


def train_claimed(run: Run, claim: Claim, callbacks: Iterable[Callback] = (), dataset: Dataset | None = None,
                  evaluate_test: bool = True, max_steps: int | None = None, device: str | None = None,
                  changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a run this process holds (``claim``): fresh, or for ``claim.resume_epochs`` more epochs.

    ``max_steps``: a continuation's own dry-run limit. The limit a run was first trained with is
    not carried into its continuations (it would end them before their first step), and a
    continuation's limit is not written to config.json (a later continuation would inherit it).
    ``device``: the worker's device, for a run whose config leaves it to the machine ("auto"); used
    for this fit only, never written to config.json (the next fit may be another worker's).
    ``changes``: a continuation's new settings (``train --resume --lr``), written to config.json with
    its epochs only once its fit is built: written before, a refused continuation left a completed
    run with settings it never trained with.

    Anything that stops it from starting (unreadable settings, a missing dataset) fails this run
    alone, with its message, and is raised as a SignlabError.
    """
    store = run.store
    with Heartbeat(store, claim) as lease:
        writer = RunWriter(run, claim, lease)
        try:  # told to quit at once (a second Ctrl-C), at any point: the run is let go (_quit_at_once)
            try:
                if claim.resume_epochs:
                    if not run.has_weights():
                        raise RunError(f"run {run.id} has no finished epoch to continue from")
                    state = run.training_state()
                    # the weights say which epoch they are of: a process killed after saving an epoch and
                    # before recording it left the store one epoch behind them, and that epoch was trained
                    # twice (an older signlab's weights do not say: the store's count stands)
                    recorded = run.epochs_completed()
                    done = state.pop("epoch", None) or recorded
                    # the continuation was asked from the store's count (a user's "k more" on the epochs they
                    # saw, or what a killed run still owed): its target holds even when the weights are one
                    # epoch ahead of that count (it trained one epoch past it, or past the run's own target)
                    target = recorded + claim.resume_epochs
                    base = run.config.replace(**(changes or {}))
                    if done >= target:  # the kill came after the last epoch asked for was saved
                        dataset = dataset if dataset is not None else load_dataset(base.data)
                        return _complete_unrecorded(run, base.replace(epochs=done), writer, done, dataset,
                                                    evaluate_test)
                    cfg = base.replace(epochs=target - done, max_steps=max_steps)
                    start = done
                    # the run's own epochs, as its settings say (what a killed run still owed, or a
                    # stopped one's): the interrupted fit goes on, its learning-rate schedule with it;
                    # a user's "k more" past them starts a schedule of its own
                    schedule_from = _schedule_origin(run, done) if target == base.epochs else None
                else:
                    cfg, state, start, schedule_from = run.config, None, 0, None
                if device and cfg.device == "auto":
                    cfg = cfg.replace(device=device)
                resolve_device(cfg.device)
                dataset = dataset if dataset is not None else load_dataset(cfg.data)
                # config.json records the whole run: its epochs are the total after this continuation.
                # Written once the fit is built (_fit): a resume refused for its device, its data or its
                # model had already written its epochs (and --device cuda) into a run it never trained
                settled = base.replace(epochs=target, max_steps=None) if claim.resume_epochs else None
            except Exception as err:
                writer.not_started(error_words(err))
                raise
            return _fit(run, cfg, dataset, writer, lease, callbacks, start, state, evaluate_test, schedule_from,
                        settled)
        except ShutDown:  # its worker is shut down: the worker hands the run back (worker.run_worker), not stopped
            raise
        except KeyboardInterrupt:
            _quit_at_once(run, writer)
            raise


def _quit_at_once(run: Run, writer: RunWriter) -> None:
    """A process told to quit at once (a second Ctrl-C, a sweep's Force stop) lets its run go, stopped
    with its finished epochs: it stayed "running" under a claim nobody held until the lease ran out,
    and ``train --resume`` was refused meanwhile. A run already finished is left as it is."""
    done = run.epochs_completed()
    kept = f"the weights of epoch {done} are kept" if done else "it had finished no epoch"
    try:
        writer.set_state(RunState.STOPPED, message=f"its process was told to quit at once; {kept}")
    except SignlabError:  # finished before the press (its test accuracy was being read), or no longer held
        pass


def continue_run(ref: str, epochs: int, runs_dir: Path | str | None = None,
                 callbacks: Iterable[Callback] = (), dataset: Dataset | None = None,
                 evaluate_test: bool = True, **changes: Any) -> dict[str, Any]:
    """Train an existing, finished run for ``epochs`` more epochs in this process (``train --resume``).

    The store hands the run to one process only: a second resume at the same time, or a resume of a
    queued or training run, is refused with a RunError.
    """
    check_setting("epochs", epochs)  # before int(): a 400-digit number is one clear line
    run = open_run(ref, runs_dir)
    run.check_continuable(int(epochs))
    changes = {k: v for k, v in changes.items() if v is not None}
    if fixed := [k for k in changes if k not in RESUMABLE]:
        raise ConfigError(f"{', '.join(fixed)}: a continuation keeps the run's own; it may set "
                          f"{', '.join(k for k in RESUMABLE if k != 'epochs')}")
    max_steps = changes.pop("max_steps", None)  # this continuation's limit only (train_claimed)
    wanted = run.config.replace(**changes, max_steps=max_steps)  # a bad value is refused before the run is claimed
    # and so are a device this machine lacks and data that is gone: refused after the claim, they failed
    # a completed run (train --resume --device cuda on a CPU machine)
    resolve_device(wanted.device)
    dataset = dataset if dataset is not None else load_dataset(wanted.data)
    claim = run.store.claim_final(run.id, new_worker_id("cli"), int(epochs))
    return train_claimed(run, claim, callbacks, dataset, evaluate_test, max_steps=max_steps, changes=changes)


def _complete_unrecorded(run: Run, cfg: TrainConfig, writer: RunWriter, done: int, dataset: Dataset,
                         evaluate_test: bool) -> dict[str, Any]:
    """Finish a continuation with nothing left to train: its weights already hold epoch ``done``, the
    last one asked for, saved by a process killed before it recorded the epoch in the store."""
    run.save_config(cfg)
    row = run.status()
    figures = {k: row.get(k) for k in ("val_accuracy", "train_seconds", "samples_per_second")}
    # A process killed between the save and the store's update may have logged the epoch: its figures
    # are the epoch's, where the row still holds the epoch before's (or nothing, after a first epoch)
    logged, before = _logged_epoch(run, done)
    if logged:
        figures.update({k: logged.get(k) for k in ("val_accuracy", "samples_per_second")})
        took = finite(logged.get("train_seconds"))
        if took is not None:  # the row's total so far, and this epoch's share of its fit's clock
            figures["train_seconds"] = (finite(row.get("train_seconds")) or 0.0) + took - before
    else:  # killed before the epoch's record too: the row's accuracy is the epoch before's, not these weights'
        figures["val_accuracy"] = None
    message = f"epoch {done} was saved before the training process stopped; nothing was left to train"
    writer.set_state(RunState.RUNNING, target_epochs=done, epochs_completed=done)  # claimed runs pass through
    writer.set_state(RunState.COMPLETED, message=message, epochs_completed=done, val_accuracy=figures["val_accuracy"],
                     **{k: v for k, v in figures.items() if v is not None and k != "val_accuracy"})
    record = _record(run, cfg, RunState.COMPLETED, done, figures["val_accuracy"], figures["train_seconds"],
                     figures["samples_per_second"], message)
    found = _tested(run, writer, record, dataset, evaluate_test)
    if found:
        run.store.annotate(run.id, attempt=writer.claim.attempt, **found)  # not onto a later fit's
    return record


def _logged_epoch(run: Run, epoch: int) -> tuple[dict[str, Any], float]:
    """The metrics' record of ``epoch`` ({} when none was logged), and the training seconds its fit had
    counted before it (its clock starts at 0 with each fit)."""
    logged: dict[str, Any] = {}
    counted = before = 0.0
    for m in run.metrics():
        if m.get("type") == Logged.FIT_START:
            counted = 0.0
        elif m.get("type") == Logged.EPOCH:
            if m.get("epoch") == epoch:
                logged, before = m, counted
            counted = finite(m.get("train_seconds")) or 0.0
    return logged, before


def _record(run: Run, cfg: TrainConfig, status: Any, epochs: int, val_accuracy: Any, train_seconds: Any,
            samples_per_second: Any, message: str) -> dict[str, Any]:
    """The ``train --json`` record of a fit (its test accuracy filled in by :func:`_tested`)."""
    return {"run_id": run.id, "run_dir": str(run.dir.resolve()), "status": str(status), "epochs": epochs,
            "val_accuracy": val_accuracy, "test_accuracy": None, "train_seconds": train_seconds,
            "samples_per_second": samples_per_second, "message": message, "model": cfg.model}


def _tested(run: Run, writer: RunWriter, record: dict[str, Any], dataset: Dataset,
            evaluate_test: bool) -> dict[str, Any] | None:
    """After a fit: ``record`` says interrupted when this process lost the run (then None: nothing more
    is written), else its test accuracy is read (when asked and there are weights). Returns what to
    annotate in the store."""
    if writer.lost:
        record.update(status=str(RunState.INTERRUPTED),
                      message="this process lost its lease on the run (another process took it over)")
        return None
    found: dict[str, Any] = {}
    if evaluate_test and run.has_weights():
        record["test_accuracy"] = found["test_accuracy"] = evaluate_run(run, dataset).accuracy
    return found


def _schedule_origin(run: Run, done: int) -> int:
    """The epoch the last fit's learning-rate schedule began at (its fit_start record; a record of an
    older signlab, without it, says where that fit started), at most ``done``."""
    origin = 0
    for m in run.metrics():
        if m.get("type") == Logged.FIT_START:
            origin = m.get("schedule_from", m.get("start_epoch", 0))
    return origin if isinstance(origin, int) and not isinstance(origin, bool) and 0 <= origin <= done else done


def _fit(run: Run, cfg: TrainConfig, dataset: Dataset, writer: RunWriter, lease: Heartbeat,
         callbacks: Iterable[Callback], start_epoch: int, state: dict[str, Any] | None,
         evaluate_test: bool, schedule_from: int | None = None, settled: TrainConfig | None = None) -> dict[str, Any]:
    """Build the model and the Trainer, then train. ``settled``: a continuation's whole settings, written
    once the fit is built. A fit that cannot be built fails a fresh run, and gives a continuation's
    finished run back as it was (``RunWriter.not_started``): a continuation out of memory on the device
    turned a completed run into a failed one."""
    run.remove_partial_writes()  # left by an earlier holder that was killed mid-write
    cbs: list[Callback] = [writer, ControlWatcher(writer, lease), HealthMonitor(writer.log), *callbacks]
    try:
        model = build_model(cfg)
        if state is not None:
            model.load_state_dict(state["model"])
        trainer = Trainer(cfg, model, dataset, cbs, start_epoch=start_epoch,
                          optimizer_state=state.get("optimizer") if state else None, schedule_from=schedule_from,
                          rng_state=state.get("rng") if state else None)
        if settled is not None:
            run.save_config(settled)
    except torch.OutOfMemoryError as err:  # the data and the model do not fit on the device
        message = ("out of memory while putting the data and the model on the device; wait for other "
                   "training jobs to finish, choose a smaller model, or train on the CPU (device cpu)")
        writer.not_started(message)
        raise RunError(message) from err
    except Exception as err:
        writer.not_started(error_words(err))
        raise
    fit_started = time.perf_counter()
    end = trainer.fit()
    fit_ended = time.perf_counter()
    record = _record(run, cfg, end.status, end.epochs_completed, end.val_accuracy, end.train_seconds,
                     end.samples_per_second, end.message)
    found = _tested(run, writer, record, dataset, evaluate_test)
    if found is None:
        return record
    if end.status == RunState.COMPLETED:
        # what a user waits for besides training, for the Train page's time estimates (views.estimate):
        # each epoch's validation and saves, per epoch, and once a run the data, the network and the
        # test accuracy. All of it per epoch, a 1-epoch run's 3.7 s of start-up became 37 s of a
        # 10-epoch estimate (54 s said, 15 s taken); a pause is neither
        in_fit = max(0.0, fit_ended - fit_started - end.train_seconds - trainer.seconds_off_the_clock)
        found["overhead_per_epoch"] = in_fit / max(1, end.epochs_completed - start_epoch)
        found["overhead_fixed"] = max(0.0, (fit_started - writer.started) + (time.perf_counter() - fit_ended))
    if found:
        run.store.annotate(run.id, attempt=writer.claim.attempt, **found)  # not onto a later fit's
    return record


def evaluate_run(run: Run | str, dataset: Dataset | None = None, runs_dir: Path | str | None = None,
                 device: str = "cpu") -> Evaluation:
    """The run's model on the test CSV."""
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    dataset = dataset if dataset is not None else load_dataset(run.config.data)
    return evaluate_model(run.load_model(device), dataset.test)


def predict_files(run: Run | str, files: Iterable[str | Path], k: int = 5, runs_dir: Path | str | None = None,
                  crop: Crop | str | None = None, shape: bool = True,
                  unreadable: list[tuple[str, ImageError]] | None = None) -> list[dict[str, Any]]:
    """The ``predict --json`` records: for each file its top-k letters (ImageError for a bad file).

    ``shape``: where the detector found the hand, weigh in the hand-shape network (signlab.handshape).
    ``unreadable``: where given, a bad file's (name, ImageError) is put there and the other files are still
    read (``predict`` on a folder's photos printed nothing for all of them over one broken file).

    Beside ``file`` and ``top``: ``warnings`` (why the input looks unlike the training photos, and
    "not sure", :func:`signlab.inference.doubt`), ``notes`` (what preprocessing did) and ``hand_found``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= NUM_CLASSES:
        raise ConfigError(f"top: {str(k)[:24]} is out of range; allowed 1 to {NUM_CLASSES}")
    run = run if isinstance(run, Run) else open_run(run, runs_dir)
    model = run.load_model()
    tta = run.config.augment_photo  # trained on mirrored, zoomed-out hands: average its views (preprocess.TTA_ZOOMS)
    out = []
    for f in files:
        try:
            prep = prepare(f, str(f), crop)
        except ImageError as err:
            if unreadable is None:
                raise
            unreadable.append((str(f), err))
            continue
        # the Classify page's verdict, too; a calibrated run's own hand-shape network lives in run.dir
        seen = read_sign(model, prep, photo=True, tta=tta, k=k, shape=shape, run_dir=run.dir)
        out.append({"file": str(f), "top": list(seen.top), "warnings": list(seen.warnings), "notes": prep.notes,
                    "hand_found": prep.hand is not None})
    return out
