"""The command line: ``python -m signlab
{models,summary,train,worker,runs,stop,pause,resume,rename,delete,evaluate,predict,export,calibrate,handshape,sweep}``.

Exit codes (a contract other tools rely on): 0 success; 2 bad input or usage, with one line on
stderr naming the file or setting and the problem; 1 anything unexpected.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from . import __version__
from .config import (CALIBRATION_METHODS as METHODS, DEFAULT_CALIBRATION_METHOD as DEFAULT_METHOD, DEFAULT_PRESET,
                     PRESETS, RESUMABLE, SETTING, TrainConfig, preset)
from . import envnum
from .errors import ImageError, SignlabError
from .events import BatchEnd, EpochEnd, Event, FitEnd, FitStart
from .interrupt import TwoPresses, handling
from .labels import NUM_CLASSES
from .preprocess import CROPS, PHOTO_CROP
from .settings import add_options, given, option_values
from .progress import progress_text, seconds_left
from .numbers import count_text, duration, percent_text, plain_line


# characters of the one error line: past any path a file system takes, so the problem after one stays
ERROR_LINE_LIMIT = 100_000


class UsageError(SignlabError):
    pass


class CtrlC:
    """While ``train`` trains, a first Ctrl-C stops the run as the dashboard's Stop does (signlab.interrupt):
    after the current step, keeping its finished epochs, with the run's record printed and its claim
    let go. Before the fit has begun (the data loading) there is nothing to stop gracefully, and the
    press quits at once: the run is not made, or not claimed, yet. A callback of the fit (it learns
    the trainer from its events)."""

    REASON = "stopped with Ctrl-C"
    TERM_REASON = "stopped by a termination signal (SIGTERM)"

    def __init__(self) -> None:
        self.trainer: Any = None
        self.ended = False
        self.presses = TwoPresses(self._first_press)

    def __call__(self, event: Event, trainer: Any) -> None:
        self.trainer = trainer
        self.ended = isinstance(event, FitEnd)

    def bind(self, trainer: Any) -> None:
        """The trainer of a process that emits no events (under torchrun, a rank other than 0)."""
        self.trainer = trainer

    def _first_press(self, reason: str = REASON) -> str | None:
        if self.trainer is None:
            return None
        if self.ended:  # its test accuracy is being read: a second or so
            return "the run has finished training; its test accuracy is being read"
        self.trainer.stop(reason)
        return "stopping after this step"

    def on_term(self, signum: int, frame: Any) -> None:
        """SIGTERM (``kill``, a process manager) as a first Ctrl-C: the run stops after this step, with
        its record printed. It ended the process at once, leaving the run "running" until its lease
        ran out, and ``train --resume`` was refused meanwhile, naming a dead process."""
        if self.presses.pressed or self._first_press(self.TERM_REASON) is None:
            raise KeyboardInterrupt
        self.presses.pressed = True


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the usage too)
        # main() prefixes "signlab: "; the subcommand's name follows it ("signlab: train: ...")
        command = self.prog.partition(" ")[2]
        raise UsageError(f"{command}: {message}" if command else message)


# --------------------------------------------------------------------------- progress
class ProgressBar:
    """A Trainer callback: a tqdm bar on stderr (epoch, loss, accuracy, samples/s; tqdm estimates the
    time left), and one line per epoch. Not on a terminal (a pipe, a CI log) the bar is left out and
    only the lines are written, so logs hold no carriage-return noise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.total_epochs, self.last_acc = 0, None
        self.bar: tqdm | None = None
        self.first: tuple[float, float] | None = None  # the fit's first step: its pace is read from there

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)  # above the bar, which is redrawn below it
        else:
            print(line, file=self.stream)

    def __call__(self, event: Event, trainer) -> None:
        if isinstance(event, FitStart):
            self.total_epochs, self.first = event.total_epochs, None
            print(f"training {trainer.cfg.model} on {event.device}: {event.n_train} images, "
                  f"{event.parameters:,} parameters", file=self.stream)
            # no tqdm "<remaining": the description carries signlab's own time left (from 5% of
            # the fit on), and two estimates side by side would disagree
            self.bar = tqdm(total=trainer.total_steps, unit="step", file=self.stream, disable=None,
                            mininterval=0.5, dynamic_ncols=True, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
            if self.bar.disable:  # not a terminal
                self.bar = None
        elif isinstance(event, BatchEnd) and self.bar is not None:
            p = min(max(event.progress, 0.0), 1.0)
            self.first = self.first or (p, event.train_seconds)
            acc = f" val acc {100 * self.last_acc:5.1f}%" if self.last_acc is not None else ""
            # the same words as the Train page's progress bar (signlab.progress)
            line = progress_text(event.epoch, self.total_epochs, images_per_second=event.samples_per_second,
                                 seconds_left=seconds_left(p, event.train_seconds, self.first))
            self.bar.set_description_str(line, refresh=False)
            self.bar.set_postfix_str(f"loss {event.loss:.4f}{acc}", refresh=False)
            self.bar.update(event.step - self.bar.n)
        elif isinstance(event, EpochEnd):
            self.last_acc = event.val_accuracy
            self._say(f"epoch {event.epoch}/{self.total_epochs}: train loss {event.train_loss:.4f} "
                      f"acc {100 * event.train_accuracy:.2f}% | val loss {event.val_loss:.4f} "
                      f"acc {100 * event.val_accuracy:.2f}% | {event.epoch_seconds:.1f}s")
        elif isinstance(event, FitEnd):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if str(event.status) in ("completed", "stopped"):  # any other end is cmd_train's one "signlab:" line
                print(f"{event.status}: {event.message}", file=self.stream)


# --------------------------------------------------------------------------- commands
RUNS_DIR_HELP = "folder of run directories (default: $SIGNLAB_RUNS_DIR, else runs/ in the project folder)"


def _add_runs_dir(p: argparse.ArgumentParser, help: str = RUNS_DIR_HELP) -> None:
    p.add_argument("--runs-dir", default=None, type=given, help=help)


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, metavar="URL", type=given,
                   help="run database (default: SIGNLAB_DB, else sqlite in the runs folder); "
                        "postgresql://user@host/db for several servers and workers; a plain path is a SQLite file")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from a named configuration (default: fast)")
    add_options(p)  # one option per training setting, each default None: the preset's value stands


def build_config(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from the command line's options on top of the preset; a warning on stderr for a
    --width its model has no use for (`train --model logreg --width 16` went on without a word)."""
    from .data import absolute_source

    cfg = preset(args.preset or DEFAULT_PRESET, **option_values(args))
    cfg = cfg.replace(data=absolute_source(cfg.data))  # as typed here, not where a worker runs it
    if getattr(args, "width", None) is not None:
        from .models import model_info

        if not model_info(cfg.model).has_width:
            print(f"signlab: warning: --width: {cfg.model} has no width to set; it is ignored", file=sys.stderr)
    return cfg


def warn_of_memory(cfg: TrainConfig) -> None:
    """A warning on stderr before a run that will likely not fit in this machine's memory."""
    from .access import memory_warning

    if said := memory_warning(cfg):
        print(f"signlab: warning: {said}", file=sys.stderr)


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    infos = list_models()
    w = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:<{w}}  {i.parameters:>9,} params  {i.description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .models import layer_summary, summary_totals

    rows = layer_summary(args.model)
    if args.json:
        print(json.dumps({"layers": rows, **summary_totals(args.model)}))
        return 0
    w = max(len(r["layer"]) for r in rows)
    print(f"{'layer':<{w}}  {'output shape':<18} {'params':>9} {'mult-adds':>12}")
    for r in rows:
        print(f"{r['layer']:<{w}}  {str(r['output_shape']):<18} {r['parameters']:>9,} {r['mult_adds']:>12,}")
    t = summary_totals(args.model)
    print(f"total: {t['parameters']:,} parameters, {t['mult_adds']:,} mult-adds per image")
    return 0


def _use_db(args: argparse.Namespace) -> None:
    """``--db URL``: every run this command opens lives in that database (as ``SIGNLAB_DB`` does).

    Only the commands that make runs (``new_db`` in their parser's defaults: train, worker, sweep)
    may start a new SQLite file: for the others a mistyped ``--db`` made an empty one, every run read
    as interrupted, and ``stop`` said "nothing to stop" of a run still queued in the real one. The
    same holds for a mistyped ``SIGNLAB_DB`` (it was checked only for its folder)."""
    if not hasattr(args, "db"):  # a command that opens no run database
        return
    from .store import db_url_for

    given, name = (args.db, "--db") if args.db else (os.environ.get("SIGNLAB_DB", "").strip(), "SIGNLAB_DB")
    if not given:
        return
    url = db_url_for(getattr(args, "runs_dir", None) or ".", given)
    file = Path(url.removeprefix("sqlite:///"))
    # a SIGNLAB_DB whose very folder is missing: store.check_named_database, next, names the folder
    if (not getattr(args, "new_db", False) and url.startswith("sqlite:///") and not file.is_file()
            and (args.db or file.parent.is_dir())):
        raise UsageError(f"{name}: {given} does not exist")
    os.environ["SIGNLAB_DB"] = given


def cmd_train(args: argparse.Namespace) -> int:
    if args.queue and args.resume:
        raise UsageError("train: --queue and --resume cannot be combined; "
                         "continue a run from the Runs page or with --resume alone")
    # the settings first: refused here, they answer before torch is loaded (2 s for a typo)
    cfg = None if args.resume else build_config(args)
    from . import api

    if args.queue:
        run = api.queue(cfg, args.runs_dir)
        record = {"run_id": run.id, "run_dir": str(run.dir.resolve()), "status": str(run.status()["status"])}
        print(json.dumps(record) if args.json else f"run {run.id}: queued\n  {record['run_dir']}")
        return 0
    if args.resume:
        # a continuation trains the run's own model on its own data: any other setting would be
        # silently ignored, so it is refused by name
        ignored = [SETTING[n].flag for n, v in option_values(args).items() if v is not None and n not in RESUMABLE]
        if args.preset:
            ignored.insert(0, "--preset")
        if ignored:
            raise UsageError(f"train: {', '.join(ignored)} cannot be used with --resume, which continues "
                             f"the run with its own settings; it takes {', '.join(SETTING[n].flag for n in RESUMABLE)}")
    ctrl_c = CtrlC()
    callbacks = [ctrl_c] if args.quiet else [ctrl_c, ProgressBar()]
    with ctrl_c.presses, handling(signal.SIGTERM, ctrl_c.on_term):
        if args.resume:
            record = api.continue_run(args.resume, 1 if args.epochs is None else args.epochs, args.runs_dir,
                                      callbacks, lr=args.lr, device=args.device, max_steps=args.max_steps)
        else:
            warn_of_memory(cfg)
            record = api.train(cfg, args.runs_dir, callbacks=callbacks)
    if record.get("rank", 0) != 0:  # a torchrun helper process: rank 0 reports
        return 0 if record["status"] in ("completed", "stopped") else 1
    if record["status"] not in ("completed", "stopped"):
        print(f"signlab: run {record['run_id']} {record['status']}: {record['message']}", file=sys.stderr)
    if args.json:
        print(json.dumps(record))
    else:
        test, seconds = record["test_accuracy"], record["train_seconds"]
        print(f"run {record['run_id']}: {record['status']}, {count_text(record['epochs'], 'epoch')} in "
              f"{'an unrecorded time' if seconds is None else f'{seconds:.1f}s'}, test accuracy "
              f"{'n/a' if test is None else f'{100 * test:.2f}%'}\n  {record['run_dir']}")
    return 0 if record["status"] in ("completed", "stopped") else 2 if record["status"] == "diverged" else 1


def cmd_worker(args: argparse.Namespace) -> int:
    from .config import shown_value  # a 400-digit number is shortened in the message
    from .envnum import SERVER_NUMBERS
    from .worker import run_worker

    if not 1 <= args.slots <= 64:
        raise UsageError(f"--slots: {shown_value(args.slots)} is out of range; allowed 1 to 64")
    # the ranges of the variables these flags stand for (SIGNLAB_JOB_LIMIT, SIGNLAB_WORKER_LINGER)
    low, high = SERVER_NUMBERS["SIGNLAB_JOB_LIMIT"][:2]
    if args.limit is not None and not low <= args.limit <= high:
        raise UsageError(f"--limit: {shown_value(args.limit)} is out of range; allowed {low} to {high}")
    low, high = SERVER_NUMBERS["SIGNLAB_WORKER_LINGER"][:2]
    if not low <= args.linger <= high:  # also refuses nan
        raise UsageError(f"--linger: {shown_value(args.linger)} is out of range; allowed {low} to {high} seconds")
    if args.linger and not args.exit_when_idle:  # it warmed up, then served forever: the seconds said nothing
        raise UsageError("--linger: only with --exit-when-idle (how long an idle worker waits before it returns; "
                         "without --exit-when-idle a worker never returns)")
    if args.device is not None:
        from .device import check_device

        check_device(args.device)  # before any run is claimed: a typo must not fail a student's run

    from .access import policy

    # the class settings from the environment, read before any run is taken: a bad one
    # (SIGNLAB_MAX_PAUSE_MINUTES=abc) was found only when a student paused, and then meant no limit
    policy(args.runs_dir)

    def finished(record: dict) -> None:
        if args.json:
            print(json.dumps({"run_id": record["run_id"], "status": str(record["status"])}), flush=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    run_worker(args.runs_dir, args.db, slots=args.slots, device=args.device, exit_when_idle=args.exit_when_idle,
               limit=args.limit, on_finish=finished, log=None if args.json else log, linger=args.linger)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .runs import list_runs

    def warn(message: str) -> None:
        print(f"signlab: warning: {message}", file=sys.stderr)

    rows = []
    for run in list_runs(args.runs_dir, warn=warn):
        s = run.summary()
        rows.append({"run_id": s["run_id"], "name": s["name"], "status": str(s["status"]), "model": s["model"],
                     "test_accuracy": s["test_accuracy"], "created": s["created"], "owner": s["owner"],
                     "epochs": s["epochs"], "message": s["message"], "stopped_by": s["stopped_by"]})
    if args.json:
        print(json.dumps(rows))
        return 0
    owners = len({r["owner"] for r in rows}) > 1  # a class's runs: whose each is, as the Runs page says
    for r in rows:
        acc = "" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}%"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])) if r["created"] else ""
        name = "" if r["name"] == r["run_id"] else r["name"]  # an unnamed run's name is its id: said once
        print(f"{r['run_id']:<44} {r['status']:<12} {str(r['model']):<13} {acc:>7}  {when}"
              + (f"  {str(r['owner'] or '-'):<24}" if owners else "") + (f"  {name}" if name else ""))
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    """``stop``, ``pause``, ``resume``, ``next``, ``rename``, ``delete``: the dashboard's buttons on one
    run, through the same checks (``signlab.access``) as the machine's user, who manages every run."""
    from . import access
    from .jobs import JobManager
    from .runs import open_run
    from .store import RunState

    run = open_run(args.run, args.runs_dir)
    root, user = run.dir.parent, access.local_user()
    pol = access.policy(root)
    action = args.command
    if action == "rename":
        access.rename(user, run.id, args.name, pol, root)
        record = {"run_id": run.id, "status": str(run.status()["status"]), "name": run.name,
                  "message": f"renamed to {run.name}"}
    elif action == "delete":
        access.delete(user, run.id, pol, root)
        record = {"run_id": run.id, "status": "deleted", "message": "deleted, with its folder"}
    elif action == "next":
        access.start_next(user, run.id, pol, root)
        record = {"run_id": run.id, "status": str(run.status()["status"]),
                  "message": "starts next: it is first in the queue"}
    else:
        before = RunState(run.status()["status"])
        if action == "stop":
            state = access.stop(user, run.id, pol, JobManager(root, start_workers=False))
        else:
            state = getattr(access, action)(user, run.id, pol, root)
        record = {"run_id": run.id, "status": str(state),
                  "message": _control_words(action, before, RunState(state))}
    print(json.dumps(record) if args.json else f"run {run.id}: {record['message']}")
    return 0


def _control_words(action: str, before: Any, after: Any) -> str:
    """What a stop, pause or resume did, from the run's state (RunState) before and after it."""
    from .store import HOLDING, RunState

    if action == "stop" and before == RunState.QUEUED:  # taken out of the queue before it started
        return ("cancelled before it started" if after == RunState.STOPPED else
                f"its continuation was cancelled before it started; it is {after.value} again")
    if before in HOLDING:  # told through its next heartbeat
        return {"stop": "stopping after its current step (its finished epochs are kept)",
                "pause": "pausing after its current step (resume it within the server's pause limit)",
                "resume": "resuming (it may wait for a free slot)"}[action]
    return f"nothing to {action}: the run is {before.value}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import evaluate_run

    ev = evaluate_run(args.run, runs_dir=args.runs_dir)
    if args.json:
        print(json.dumps(ev.to_json()))
        return 0
    print(f"test accuracy: {100 * ev.accuracy:.2f}% on {len(ev.y_true)} images")
    print(f"{'letter':<7}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for r in ev.per_class():
        print(f"{r['letter']:<7}{r['precision']:>10.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}{r['support']:>9}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .api import predict_files
    from .config import shown_value

    if args.top < 1 or args.top > NUM_CLASSES:
        raise UsageError(f"--top: {shown_value(args.top)} is out of range; allowed 1 to {NUM_CLASSES}")
    bad: list[tuple[str, ImageError]] = []  # the readable images are still answered; the exit is 2 all the same
    records = predict_files(args.run, args.images, k=args.top, runs_dir=args.runs_dir,
                            crop="auto" if args.crop == "hand" else args.crop, shape=not args.no_hand_shape,
                            unreadable=bad)
    if args.json:
        print(json.dumps(records))
    else:
        for r in records:
            # as the Classify page says them: 0.9996 is "99.96%", not "100.0%"
            tops = ", ".join(f"{t['letter']} {percent_text(t['probability'])}" for t in r["top"])
            print(f"{r['file']}: {tops}")
            for w in r["warnings"]:
                print(f"  warning: {w}")
            for n in r.get("notes", []):
                print(f"  note: {n}")
    if bad:
        sys.stdout.flush()  # the answers first, then the one line on stderr
        more = f" (and {len(bad) - 1} more unreadable: {', '.join(name for name, _ in bad[1:])})" if len(bad) > 1 else ""
        raise ImageError(f"{bad[0][1]}{more}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    if args.format != "onnx":
        raise UsageError(f"--format: {args.format!r} is not supported; use onnx")
    path = export_onnx(args.run, args.out, args.runs_dir, force=args.force)
    try:
        print(path)
    except UnicodeEncodeError:  # a path that is not UTF-8 (a Latin-1 folder name): its own bytes
        sys.stdout.flush()
        sys.stdout.buffer.write(os.fsencode(path) + b"\n")
        sys.stdout.flush()
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate_run, load_folder

    rec = calibrate_run(args.run, load_folder(args.dir), args.runs_dir, method=args.method, crop=args.crop)
    print(json.dumps(rec) if args.json else f"run {rec['run_id']}: {rec['message']}\n  {rec['run_dir']}")
    return 0


def cmd_handshape(args: argparse.Namespace) -> int:
    from .handshape import build

    started: dict[str, float] = {}

    def progress(split: str, i: int, n: int) -> None:  # on stderr, with --json too: stdout holds the JSON
        if i == 1:
            started[split] = time.perf_counter()
            print(f"finding the hand landmarks in the {split} images", file=sys.stderr, flush=True)
            return
        # the time left from this machine's own pace so far (CPUs differ several-fold)
        left = (time.perf_counter() - started[split]) / (i - 1) * (n - i)
        print(f"  {split}: {i:,}/{n:,} images, {duration(left)} left", file=sys.stderr, flush=True)

    info = build(extract_again=args.extract, progress=progress)
    if args.json:
        print(json.dumps(info))
    else:
        print(f"hand-shape network: {100 * info['test_accuracy']:.1f}% of the dataset's test hands "
              f"({info['test_hands']} with landmarks; trained on {info['train_hands']}) in {info['seconds']:.1f} s")
    return 0


def _command(sub, name: str, help: str, func, *, run: bool = False, runs_dir: bool = False, db: bool = False,
             json_help: str | None = None) -> argparse.ArgumentParser:
    """One subcommand with the arguments many share: a RUN first, --runs-dir, --db, --json."""
    s = sub.add_parser(name, help=help)
    if run:
        s.add_argument("run", type=given, help="a run's id (as `runs` lists them) or its folder")
    if runs_dir:
        _add_runs_dir(s)
    if db:
        _add_db(s)
    if json_help is not None:
        s.add_argument("--json", action="store_true", help=json_help or None)
    s.set_defaults(func=func)
    return s


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="signlab", description="Sign Language MNIST: train, evaluate and use image classifiers.")
    p.add_argument("--version", action="version", version=f"signlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    last_line = "print one JSON object as the last line of stdout"

    _command(sub, "models", "list the models", cmd_models)

    s = _command(sub, "summary", "a model's layer table", cmd_summary)
    s.add_argument("model", help="a model's name (as `models` lists them)")
    s.add_argument("--json", action="store_true", help="print the layer table as one JSON object")

    s = sub.add_parser("train", help="train a model (no options: the recommended fast configuration)")
    _add_train_options(s)
    _add_runs_dir(s)
    _add_db(s)
    s.add_argument("--json", action="store_true", help=last_line)
    s.add_argument("--resume", metavar="RUN", default=None, type=given, help="continue RUN for --epochs more epochs")
    s.add_argument("--queue", action="store_true",
                   help="put the run in the queue and return at once; a worker trains it")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train, new_db=True)

    s = _command(sub, "worker", "train queued runs (on this machine; run one per GPU machine on a cluster)",
                 cmd_worker, runs_dir=True, db=True,
                 json_help="print one JSON line (run_id, status) per finished run")
    s.set_defaults(new_db=True)  # a class's first worker may start its database
    s.add_argument("--slots", type=int, default=1, help="runs this worker trains at once (default 1)")
    s.add_argument("--device", default=None, help="device for runs that say auto: cpu, cuda or mps (one GPU of several: CUDA_VISIBLE_DEVICES=N "
                        "and cuda)")
    s.add_argument("--limit", type=int, default=None,
                   help="job limit across every worker and server of the database (default: SIGNLAB_JOB_LIMIT, "
                        "else the number of GPUs, else 1)")
    s.add_argument("--exit-when-idle", action="store_true", help="return once the queue is empty")
    s.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                   help="with --exit-when-idle: warm up first, and return only once the queue has been empty "
                        "this long (default 0)")

    _command(sub, "runs", "list runs, newest first", cmd_runs, runs_dir=True, db=True,
             json_help="print the runs as one JSON array, one object a run")
    for action, words in (("stop", "stop a run (a queued one never starts; a running one stops after its step)"),
                          ("pause", "pause a running run (its slot goes to the queue)"),
                          ("resume", "resume a paused run"),
                          ("next", "start a queued run next, before every owner's turn (an instructor's call)"),
                          ("rename", "rename a run"),
                          ("delete", "delete a finished run and its folder")):
        s = _command(sub, action, words, cmd_control, run=True, runs_dir=True, db=True,
                     json_help="print one JSON object (run_id, status, message)")
        if action == "rename":
            s.add_argument("name", type=given, help="the new name")
    _command(sub, "evaluate", "test accuracy and the per-class table of a run", cmd_evaluate, run=True,
             runs_dir=True, db=True, json_help=last_line)

    s = _command(sub, "predict", "top letters for image files", cmd_predict, run=True)
    s.add_argument("images", nargs="+", type=given, help="image files (PNG, JPEG, WebP, …), any size")
    _add_runs_dir(s)
    _add_db(s)
    s.add_argument("--top", type=int, default=3, help="how many letters to list per image (default 3)")
    s.add_argument("--crop", choices=CROPS, default=PHOTO_CROP,
                   help="detector: a square around the hand found by MediaPipe's hand models (the centre "
                        "square when none is found); centre: the largest centred square; hand: a square "
                        "around the hand found by skin colour (default detector)")
    s.add_argument("--no-hand-shape", action="store_true",
                   help="the image model alone: do not weigh in the shape of the hand the detector found")
    s.add_argument("--json", action="store_true",
                   help="print the predictions as one JSON array on one line, an object an image, in the order given")

    s = _command(sub, "export", "export a run's model (ONNX)", cmd_export, run=True, runs_dir=True, db=True)
    s.add_argument("--format", default="onnx", type=str.lower, help="the file format (onnx, the only one; any case)")
    s.add_argument("--out", default=None, type=given,
                   help="file to write (default: model.onnx in the run's folder); any other path must lie "
                        "outside the runs folder")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")

    s = _command(sub, "calibrate", "adapt a run to a few of your own photos per letter (a new run)", cmd_calibrate,
                 run=True)
    s.add_argument("dir", type=given, help="a folder of <LETTER>/<image> files; missing letters are fine")
    # the new run is saved beside its parent unless told otherwise: a RUN given as a folder elsewhere
    # was said to land in runs/ and landed beside it
    _add_runs_dir(s, RUNS_DIR_HELP.removesuffix(")") + "; the calibrated run is saved there, and for a RUN "
                     "given as a folder, beside it)")
    _add_db(s)
    s.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help="head: retrain the last layer on the photos (the default: the best measured); finetune: "
                        "also the last convolution (slower); ncm: each letter's mean photo features (forgets "
                        "the dataset)")
    s.add_argument("--crop", choices=CROPS, default=PHOTO_CROP,
                   help="as in predict --crop: the photos are framed as predict will frame them (default detector)")
    s.add_argument("--json", action="store_true", help=last_line)

    s = _command(sub, "handshape", "retrain the hand-shape networks from the dataset's landmarks (a minute or two)",
                 cmd_handshape, json_help=last_line)
    s.add_argument("--extract", action="store_true",
                   help="first find the landmarks in every dataset image again (minutes: it says how many as it goes)")

    try:
        from .sweep import add_sweep_command
    except ImportError:  # optuna is optional for the core
        pass
    else:
        s = add_sweep_command(sub)
        _add_runs_dir(s)  # the same default as every command (the sweep's help said ./runs)
        _add_db(s)  # its trials are runs: a class's sweep keeps them in the class's database
        s.set_defaults(new_db=True)
    return p


def _check_runs_dir(args: argparse.Namespace) -> None:
    """A runs folder that names a file is refused by name, for every command; ``runs`` also refuses
    one that does not exist, where the commands that write make it (paths.runs_dir_problem)."""
    from .paths import runs_dir_problem

    if problem := runs_dir_problem(getattr(args, "runs_dir", None), must_exist=args.func is cmd_runs):
        raise UsageError(problem)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        envnum.check()  # the server's numbers from the environment, before anything runs on them
        from .policy import check_environment  # no torch: a refused setting answers at once

        check_environment()  # and the class settings there (a quota of -3)
        _check_runs_dir(args)
        _use_db(args)  # every command that opens a run reads its state from that database
        from .store import check_named_database

        check_named_database()  # whose folder must exist
        return int(args.func(args) or 0)
    except SignlabError as err:
        # one line, whatever the message holds: a line break inside a quoted value (--data $'/tmp/x\ny')
        # cut the line before the problem was named, so control characters become spaces instead
        print(plain_line(f"signlab: {err}", ERROR_LINE_LIMIT), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signlab: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - the contract: exit 1 for anything unexpected
        if isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG:
            # Path.exists() and is_dir() raise it (Python 3.11) wherever a given path is first looked
            # at, in every command's own checks; the path names the argument it came from
            print(f"signlab: {err.filename}: a name in this path is too long for the file system", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"signlab: unexpected error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())
