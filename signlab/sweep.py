"""Hyperparameter sweeps with Optuna: ``python -m signlab sweep --model M --trials N``.

A *study* is a set of *trials*; each trial trains one ordinary signlab run (named ``STUDY #N``)
with settings that Optuna's TPE sampler proposes: learning rate, batch size, weight decay,
augmentation and, for models that have one, the width (each declared with ``search=`` on
``TrainConfig``). After every epoch the trial reports its
validation accuracy; the median pruner stops a trial that is below the median of earlier trials
at the same epoch. The objective is the validation accuracy after the last epoch, measured on a
held-out part of the training set (``--val-fraction``, 0.1 by default), so that the test CSV stays
untouched by the search and the best trial's test accuracy is an honest estimate.

Where the study lives (``--storage``):

* nothing: a journal file ``<runs_dir>/sweeps/<study>.journal``, no server needed;
* a path, or ``journal:PATH``: a journal file there (on a shared disk, workers on several
  machines join the same study; the file is locked for every write);
* ``postgresql://…``, ``mysql://…``, ``sqlite:///…``: a database (Optuna's RDBStorage).

Every worker process runs ``--trials`` trials; any number of workers on any number of machines
may work on one study at the same time: the storage hands out trial numbers, and the sampler
("constant liar") avoids proposing what a running trial is already trying.

When the run store is PostgreSQL (``SIGNLAB_DB``), a study without ``--storage`` lives in that same
database. With the default SQLite store it stays a journal file: Optuna's SQLite storage is meant
for one process, and a sweep's workers are several.

Trials are ordinary runs in the run store's queue: each waits for a free slot of the job limit,
like any other run, so a sweep never trains more runs at once than the server allows. Workers
register in the store's worker table and renew it (liveness by heartbeat, on any host).

Beside the study, ``<runs_dir>/sweeps/`` holds what the dashboard needs: ``<study>.json`` (the
study's storage and settings), ``<study>.log`` (the output of the workers it started) and
``<study>.stop`` (a stop request: workers stop their current trial after its current batch and
start no new one). This module does not import Streamlit; optuna is imported when a sweep runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import secrets
import signal
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .config import DEFAULT_PRESET, RANGES, SETTING, Log, TrainConfig, preset
from .errors import ConfigError, SignlabError
from .events import BatchEnd, EpochEnd, Logged, logged
from .fsutil import UnsafeFileError, atomic_write_json, read_json, read_json_inside, read_tail_inside
from .interrupt import TwoPresses, handling
from .launch import cpu_share, live_children, spawn
from .paths import runs_root
from .settings import SEARCHED, add_options, given, option_values
from .store import RunState, db_url_for, mask_url, new_worker_id, store_for
from .numbers import count_text, finite

if TYPE_CHECKING:  # annotations only: the data module loads torch
    from .data import Dataset

STUDY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch only, as runs.RUN_ID_RE
# the searched settings and what is tried are declared on TrainConfig (search=...); these names are
# the Sweeps page's
PARAMS = tuple(s.name for s in SEARCHED)  # in table order
BATCH_SIZES = tuple(SETTING["batch_size"].search)
# The sweep's own options, declared here once: the command line, the Sweeps page and the command
# it shows for more workers take them from these (they had said fastcnn on the page and s2net in
# the CLI's help, 8 trials and 10).
DEFAULT_MODEL = "fastcnn"  # quick trials, and its width (8 to 32 channels) a setting worth searching
DEFAULT_TRIALS = 10
DEFAULT_EPOCHS = 2
DEFAULT_VAL_FRACTION = 0.1
MAX_TRIALS = 10_000
MAX_WORKERS = 8  # worker processes one start launches: each trains a trial, and a class server has a few cores
SEARCH_SPACE_VERSION = 1  # bump when the searched ranges change: a study keeps one search space
# settings that must agree between the workers of one study (they change what a trial's value means)
SHARED_SETTINGS = ("model", "epochs", "max_steps", "val_fraction", "data", "seed", "schedule", "optimizer")
# the settings the sweep command takes, shared by every trial of this worker
SWEEP_OPTIONS = ("model", "epochs", "max_steps", "val_fraction", "seed", "device", "threads", "data")


# --------------------------------------------------------------------------- names and places
def check_study_name(name: str) -> str:
    if not isinstance(name, str) or not STUDY_RE.fullmatch(name) or ".." in name:
        raise ConfigError(f"--study: {name!r} is not a valid study name "
                          "(up to 64 letters, digits, '-', '_' and '.')")
    return name


def default_study_name(model: str, epochs: int) -> str:
    """The study a plain ``sweep --model M`` joins: rerunning the command adds trials to it."""
    return f"{model}-{epochs}ep"


def sweeps_dir(runs_dir: Path | str | None = None) -> Path:
    return runs_root(runs_dir) / "sweeps"


def trial_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many trials a study has, and how many of them completed or were pruned early (``study_trials``'
    rows): the ``sweep --json`` summary's keys, and the Sweeps page's figures."""
    return {"trials": len(rows), "completed": sum(r["state"] == "COMPLETE" for r in rows),
            "pruned": sum(r["state"] == "PRUNED" for r in rows)}


def default_storage(study: str, runs_dir: Path | str | None = None) -> str:
    """The run store's database when it is PostgreSQL, else ``<runs_dir>/sweeps/<study>.journal``."""
    url = db_url_for(runs_root(runs_dir))
    if url.startswith("postgresql"):
        return url
    return str((sweeps_dir(runs_dir) / f"{check_study_name(study)}.journal").resolve())


def recorded_storage(stored: str | None, study: str, runs_dir: Path | str | None = None) -> str | None:
    """The storage to open a study with, from its record, where a worker writes it with the password
    masked (no file keeps one): the run database's own URL, so masked, is None (the default, which
    reads ``SIGNLAB_DB``, password and all). The Sweeps page opened the masked URL, and on a class
    server whose database has a password every study read "password authentication failed"."""
    if stored is None or _masked(str(stored)) == _masked(default_storage(study, runs_dir)):
        return None
    return str(stored)


def _masked(url: str) -> str:
    """``url`` masked, with PostgreSQL's driver named one way (the record may say postgresql://)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", mask_url(url))


def storage_for_a_terminal(stored: str | None, study: str, runs_dir: Path | str | None = None) -> str:
    """``--storage``'s value in a command shown on a page: never a password. The run database's is
    ``"$SIGNLAB_DB"`` (the page showed a class database's password to every student who started a
    sweep); another database's URL is masked."""
    spec = recorded_storage(stored, study, runs_dir)
    if spec is None:  # the study's default: the run database (its URL in SIGNLAB_DB), else a journal file
        default = default_storage(study, runs_dir)
        return '"$SIGNLAB_DB"' if "://" in default else default
    return mask_url(spec)


def _optuna():
    try:
        import optuna
    except ImportError as err:  # optuna is optional for the rest of signlab
        raise ConfigError("sweeps need optuna: pip install optuna") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(_NoInterruptTraceback())
    return optuna


class _NoInterruptTraceback(logging.Filter):
    """Optuna's line for a trial ended by a termination signal (the Sweeps page's Force stop, a
    process manager) without its 40-line traceback through the training step: the worker was told
    to quit, nothing went wrong, and the sweep's log filled with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def open_storage(spec: str | None, study: str, runs_dir: Path | str | None = None) -> Any:
    """An Optuna storage for ``spec``: None (the local journal file), a path, ``journal:PATH`` or a
    database URL. Raises ConfigError for a spec it cannot use."""
    _optuna()  # a clear error when optuna is missing
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    given = spec is not None and bool(str(spec).strip())
    if not given:
        spec = default_storage(study, runs_dir)
    spec = str(spec).strip()
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme:
        if scheme.startswith(("postgresql", "postgres", "mysql", "sqlite")):
            if scheme == "postgres":
                spec = "postgresql" + spec[len("postgres"):]
            if scheme.startswith("sqlite") and _in_memory(spec):
                # each connection gets its own empty database: Optuna's heartbeat failed on it, and the
                # sweep's summary, read through another, said 0 trials after training two
                raise ConfigError(f"--storage: {mask_url(spec)} is a database in memory, which keeps no trial; "
                                  "give a file, e.g. sqlite:///sweeps.db")
            try:
                return _rdb_storage(RDBStorage, spec)
            except ImportError as err:
                hint = " (for PostgreSQL: pip install 'psycopg[binary]')" if scheme.startswith("postgres") else ""
                raise ConfigError(f"--storage: {mask_url(spec)} needs a database driver that is not "
                                  f"installed{hint}") from err
            except Exception as err:  # noqa: BLE001 - sqlalchemy's errors: connection refused, bad URL
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ConfigError(f"--storage: cannot open {mask_url(spec)}: {first}") from err
        if scheme != "journal":
            raise ConfigError(f"--storage: {mask_url(spec)} is not supported; give a journal file path, "
                              "journal:PATH, or a postgresql://, mysql:// or sqlite:// URL")
    path = Path(spec[len("journal:"):] if spec.startswith("journal:") else spec).expanduser()
    if spec.startswith("journal://"):
        path = Path(spec[len("journal://"):]).expanduser()
    if path.is_dir():
        raise ConfigError(f"--storage: {path} is a folder; give a file, e.g. {path / (study + '.journal')}")
    if path.exists() and not path.is_file():  # a device or a pipe: a traceback from fsync, or a wait for good
        raise ConfigError(f"--storage: {path} is not a regular file; give a journal file")
    if given and not path.parent.is_dir():  # a mistyped folder was made, and a new study started there
        raise ConfigError(f"--storage: the folder {path.parent} does not exist; give a file in a folder that does")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the runs folder's sweeps/, for the default
        backend = JournalFileBackend(str(path))
    except OSError as err:
        raise ConfigError(f"--storage: cannot write {path} ({err.strerror or err})") from err
    not_journal = (f"--storage: {path} is not an Optuna journal; give the journal a sweep wrote, "
                   "or a new file name")
    # Optuna skips a last line it cannot read (one being written), so a one-line file is checked here
    try:
        with open(path, "rb") as f:  # the backend above created it if it was missing
            first = f.readline(1 << 20)
    except OSError as err:
        raise ConfigError(f"--storage: cannot read {path} ({err.strerror or err})") from err
    if first.strip():  # an empty file is a new journal
        try:
            entry = json.loads(first)
        except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            entry = None
        if not isinstance(entry, dict) or "op_code" not in entry:
            raise ConfigError(not_journal)
    try:
        return JournalStorage(backend)  # reads the whole journal back
    # AssertionError: Optuna's replay of an operation it does not know (a damaged line, a newer Optuna's)
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as err:
        raise ConfigError(f"{not_journal} ({type(err).__name__} reading it)") from err


def _in_memory(url: str) -> bool:
    """Whether a sqlite:// URL names a database in memory (no path, ``:memory:``, ``mode=memory``)."""
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    return path.strip("/") in ("", ":memory:") or "mode=memory" in query


def _rdb_storage(rdb: Any, spec: str, tries: int = 4) -> Any:
    """Optuna's RDBStorage for ``spec``. Two sweeps started at one instant on a fresh PostgreSQL
    database both create Optuna's tables, and the slower one failed with UniqueViolation on
    ``pg_type_typname_nsp_index`` (its study then listed with no worker): the tables exist by then,
    so it tries again."""
    for attempt in range(tries):
        try:
            return rdb(spec, heartbeat_interval=60, grace_period=300)
        except Exception as err:  # noqa: BLE001 - sqlalchemy's IntegrityError, without importing it here
            raced = "UniqueViolation" in repr(err) or "already exists" in str(err)
            if not raced or attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _storage_text(spec: str | None, study: str, runs_dir: Path | str | None) -> str:
    """The storage as the dashboard can reopen it: a journal path made absolute, a URL as given."""
    if spec is None or not str(spec).strip():
        return default_storage(study, runs_dir)
    spec = str(spec).strip()
    if "://" in spec and not spec.startswith("journal://"):
        return spec
    path = spec.removeprefix("journal://").removeprefix("journal:")
    return str(Path(path).expanduser().resolve())


# --------------------------------------------------------------------------- the search space
def widths_for(model: str) -> tuple[int, ...]:
    """The widths a sweep of ``model`` tries: the registry's (signlab.models.register_model), within the
    width setting's range."""
    from .models import model_info

    lo, hi = RANGES["width"]
    return tuple(w for w in model_info(model).widths if lo <= w <= hi)


def search_text(model: str) -> str:
    """What a sweep of ``model`` tries, from the declaration: "learning rate 0.0001–0.01 (log scale), batch
    size 32/64/128/256, …, augmentation on/off, width 8/16/24/32" (a model without a width: no width)."""
    parts = []
    for s in SEARCHED:
        tried = widths_for(model) if s.name == "width" else s.search
        if isinstance(tried, Log):
            parts.append(f"{s.words} {tried.low:g}–{tried.high:g} (log scale)")
        elif tried:
            parts.append(f"{s.words} {'/'.join(s.text(v) for v in tried)}")
    return ", ".join(parts)


def suggest(trial: Any, model: str) -> dict[str, Any]:
    """The settings of one trial, asked of Optuna (works with any object that has ``suggest_*``)."""
    params: dict[str, Any] = {}
    for s in SEARCHED:  # in declaration order: a seeded sampler draws the same trials as before
        if s.name == "width":  # only where the model has one, from the model's own widths
            if widths := widths_for(model):
                params["width"] = trial.suggest_categorical("width", list(widths))
        elif isinstance(s.search, Log):
            params[s.name] = trial.suggest_float(s.name, s.search.low, s.search.high, log=True)
        else:
            params[s.name] = trial.suggest_categorical(s.name, list(s.search))
    return params


def base_config(model: str = DEFAULT_MODEL, epochs: int = DEFAULT_EPOCHS, max_steps: int | None = None,
                val_fraction: float = DEFAULT_VAL_FRACTION, **overrides: Any) -> "TrainConfig":
    """The settings every trial shares: the ``fast`` preset with the sweep's model and epochs."""
    from .data import absolute_source  # its trials' runs keep the data setting: not relative to this folder

    if "data" in overrides:
        overrides = {**overrides, "data": absolute_source(overrides["data"])}
    return preset(DEFAULT_PRESET, model=model, epochs=epochs, max_steps=max_steps, val_fraction=val_fraction,
                  **overrides)


# --------------------------------------------------------------------------- pruning and stopping
class PruningCallback:
    """Trainer callback: report the validation accuracy of every epoch to the trial and stop the
    trainer when the pruner says the trial is hopeless. ``should_stop`` (checked at every event)
    stops the trainer too: a stop request from the dashboard.

    After training, ``pruned_at`` is the epoch the trial was pruned after (None if it was not) and
    ``stopped`` says whether ``should_stop`` ended it.
    """

    def __init__(self, trial, total_epochs: int, should_stop: Callable[[], bool] | None = None) -> None:
        self.trial, self.total_epochs, self.should_stop = trial, total_epochs, should_stop
        self.pruned_at: int | None = None
        self.stopped = False
        self.val_loss: float | None = None  # of the last epoch: breaks ties between equal accuracies

    def __call__(self, event, trainer) -> None:
        if isinstance(event, EpochEnd):
            self.val_loss = float(event.val_loss)
            self.trial.report(float(event.val_accuracy), event.epoch)
            # pruning after the last epoch would save nothing: the trial then simply completes
            if event.epoch < self.total_epochs and self.trial.should_prune():
                self.pruned_at = event.epoch
                trainer.stop()
        if isinstance(event, (BatchEnd, EpochEnd)) and self.should_stop is not None and not self.stopped:
            if self.should_stop():
                self.stopped = True
                trainer.stop()


def request_stop(study: str, runs_dir: Path | str | None = None, by: str | None = None) -> None:
    """Ask every worker of ``study`` that uses this runs folder to stop (after its current batch);
    ``by``: who asked, where it is not the sweep's owner (an instructor), for the owner's page."""
    atomic_write_json(sweeps_dir(runs_dir) / f"{check_study_name(study)}.stop",
                      {"time": time.time(), **({"by": by} if by else {})})


def _stop_record(study: str, runs_dir: Path | str | None) -> dict[str, Any]:
    """The study's stop record ({} when none, unreadable, or not an object; never through a link)."""
    rec = read_json_inside(sweeps_dir(runs_dir), f"{study}.stop", {}) if STUDY_RE.fullmatch(study) else {}
    return rec if isinstance(rec, dict) else {}


def stop_requested_by(study: str, runs_dir: Path | str | None = None) -> str | None:
    """Who asked for the last stop of ``study`` when it was not its owner, else None."""
    by = _stop_record(study, runs_dir).get("by")
    return by if isinstance(by, str) and by else None


def stop_request_time(study: str, runs_dir: Path | str | None = None) -> float | None:
    """When a stop of ``study`` was last requested (None: never, or the record is unreadable)."""
    t = _stop_record(study, runs_dir).get("time")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        return None  # a string or a list in the file is no stop, and no crash
    try:
        t = float(t)
    except OverflowError:  # a 400-digit number: no time at all (as infinity the page said "Stopping" for ever)
        return None
    return t if math.isfinite(t) else None


def stop_requested_since(study: str, since: float, runs_dir: Path | str | None = None) -> bool:
    """Whether a stop was requested after ``since`` (a stop request never outlives the workers it was for)."""
    t = stop_request_time(study, runs_dir)
    return t is not None and t >= since


def stop_in_force(study: str, rows: Sequence[dict[str, Any]], live_workers: Sequence[dict[str, Any]],
                  running: bool, record: dict[str, Any], runs_dir: Path | str | None = None) -> float | None:
    """When the stop that holds for the sweep now was requested, or None. While workers are registered,
    a stop after every one of them began (each records its ``since``; one that joined later goes on);
    while the launched worker is still starting, one after its launch (``record["launched"]``); once
    the sweep has ended, one after its newest trial started (``rows`` from :func:`study_trials`)."""
    t = stop_request_time(study, runs_dir)
    if t is None:
        return None
    if live_workers:
        since: Any = max(float(w.get("since", w.get("started", 0.0))) for w in live_workers)
    elif running:
        since = record.get("launched")
    else:
        since = max((r["started"] for r in rows if r.get("started") is not None), default=None)
    ok = isinstance(since, (int, float)) and not isinstance(since, bool)
    return t if ok and t >= since else None


# --------------------------------------------------------------------------- workers
def workers(study: str, runs_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """The live worker processes of ``study`` (a fresh heartbeat in the run store, any host)."""
    return store_for(sweeps_dir(runs_dir).parent).workers(kind="sweep", study=check_study_name(study))


def list_studies(runs_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """The studies recorded in this runs folder, newest first: name, model, epochs, storage, workers,
    running."""
    folder = sweeps_dir(runs_dir)
    if not folder.is_dir():
        return []
    found: dict[str, dict[str, Any]] = {}
    for f in folder.glob("*.journal"):
        if STUDY_RE.fullmatch(f.stem):
            found[f.stem] = {"study": f.stem, "storage": str(f.resolve()), "created": f.stat().st_mtime}
    for f in folder.glob("*.json"):
        rec = read_json_inside(folder, f.name) if STUDY_RE.fullmatch(f.stem) else None  # never through a link
        if isinstance(rec, dict):
            found[f.stem] = {**found.get(f.stem, {}), **rec, "study": f.stem}
    for name, rec in found.items():
        live = workers(name, runs_dir)
        rec["workers"] = len(live)
        rec["running"] = sweep_running(name, runs_dir, live)
        created = rec.get("created")  # from a file: anything but a finite number would break the sort
        ok = isinstance(created, (int, float)) and not isinstance(created, bool) and 0 <= created < 1e11
        rec["created"] = float(created) if ok else 0.0
    return sorted(found.values(), key=lambda r: r.get("created", 0), reverse=True)


def jobs_beyond_trials(owner: str, active: Sequence[dict[str, Any]], runs_dir: Path | str | None = None) -> int:
    """Jobs ``owner``'s running sweeps hold that are not yet runs in the store: each worker keeps one
    trial queued or training, and one still starting (or between two trials) has none. ``active``:
    the owner's queued and training runs. Without this, five sweeps started one after another each
    passed the job quota (their trials did not exist yet) and a student had four trials queued
    under a limit of three. Read on every Train page rerun, so only live sweeps are looked at: one
    query for the registered workers, this server's children for those still starting."""
    live: dict[str, int] = {}
    for w in store_for(sweeps_dir(runs_dir).parent).workers(kind="sweep"):
        live[w.get("study")] = live.get(w.get("study"), 0) + 1
    starting: dict[str, int] = {}
    for proc in live_children("sweep"):
        name = _study_of(proc)
        starting[name] = starting.get(name, 0) + 1
    extra = 0
    for study in set(live) | set(starting):
        if not isinstance(study, str) or not STUDY_RE.fullmatch(study) or study_record(study, runs_dir).get("owner") != owner:
            continue
        # a trial its user continued (resume_epochs set) is an ordinary run, no worker's
        trials = sum(1 for r in active if r.get("study") == study and r.get("kind") == "trial"
                     and r.get("resume_epochs") is None)
        extra += max(0, max(live.get(study, 0), starting.get(study, 0)) - trials)
    return extra


def study_record(study: str, runs_dir: Path | str | None = None) -> dict[str, Any]:
    rec = read_json_inside(sweeps_dir(runs_dir), f"{check_study_name(study)}.json", {})
    return rec if isinstance(rec, dict) else {}


def _study_of(proc: Any) -> str | None:
    """The study a sweep worker this process started works on (its ``--study``)."""
    args = list(proc.args)
    return args[args.index("--study") + 1] if "--study" in args[:-1] else None


def _launched(study: str) -> list:
    """Sweep workers of ``study`` that this process started and that are still running."""
    return [p for p in live_children("sweep") if _study_of(p) == study]


def start_sweep_process(model: str, trials: int, epochs: int = DEFAULT_EPOCHS, timeout: float | None = None,
                        study: str | None = None, storage: str | None = None,
                        runs_dir: Path | str | None = None, workers: int = 1,
                        extra_args: Iterable[str] = (), owner: str | None = None) -> dict[str, Any]:
    """Start ``workers`` background processes ``python -m signlab sweep …`` on one study, sharing a
    budget of ``trials`` trials between them. Their trials wait for slots of the job limit.

    Returns {study, pids, log}. The arguments are checked here first, so bad input raises
    ConfigError at once instead of failing in the background.
    """
    base_config(model=model, epochs=epochs)  # raises ConfigError for a bad model or epochs
    _check_budget(trials, timeout)
    if not 1 <= int(workers) <= MAX_WORKERS:
        raise ConfigError(f"workers: {workers!r} is out of range; allowed 1 to {MAX_WORKERS}")
    workers = min(int(workers), int(trials))
    # the second and a random part: a class pressing Start together made one study of the same
    # second, the second student's workers joined the first's, and their trials were hers
    study = check_study_name(study or f"{model}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")
    root = runs_root(runs_dir).resolve()
    folder = sweeps_dir(root)
    log_path = folder / f"{study}.log"
    launched = time.time()
    rec = _claim_study(folder, study, {"study": study, "model": model, "epochs": int(epochs), "storage": None,
                                       "created": launched, "owner": owner}, owner)
    env = {"SIGNLAB_SWEEP_LAUNCHED": str(launched), **cpu_share(workers)}
    if owner:  # the trials are runs of the user who started the sweep
        env["SIGNLAB_OWNER"] = owner
    pids = []
    try:
        for i in range(workers):
            share = trials // workers + (1 if i < trials % workers else 0)
            args = ["sweep", "--model", model, "--trials", str(share), "--epochs", str(int(epochs)), "--study",
                    study, "--runs-dir", str(root), "--json"]
            if timeout:
                args += ["--timeout", str(float(timeout))]
            if storage:
                args += ["--storage", storage]
            pids.append(spawn([*args, *extra_args], log_path, env=env).pid)
    except BaseException:
        if not pids and rec.get("created") == launched:  # its name was taken for this start alone: given back
            (folder / f"{study}.json").unlink(missing_ok=True)
        raise
    # listed at once, before a worker starts; "launched": a stop pressed while it starts holds for it
    atomic_write_json(folder / f"{study}.json", {**rec, "launched": launched})
    return {"study": study, "pids": pids, "log": str(log_path)}


def _claim_study(folder: Path, study: str, new: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """The study's record: its own where it exists (more workers for it), else ``new``, written
    exclusively, so two starts at one instant cannot both take the name. ConfigError when it is
    another user's: their workers joined it, its record named the first owner, the second could
    neither see nor stop their own sweep, and its workers counted against no one's quota."""
    path = folder / f"{study}.json"
    rec = read_json(path)
    if not isinstance(rec, dict):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as f:  # fails on anything there, a link included
                json.dump(new, f)
            return new
        except FileExistsError:
            rec = read_json(path)
            if not isinstance(rec, dict):
                raise ConfigError(f"--study: {study} is being started by another sweep; choose another name")
        except OSError as err:
            raise ConfigError(f"--study: cannot write the record of {study} ({err.strerror or err})") from err
    if owner and rec.get("owner") not in (None, owner):
        raise ConfigError(f"--study: {study} is another user's sweep; choose another name")
    return rec


def sweep_running(study: str, runs_dir: Path | str | None = None,
                  live_workers: list[dict[str, Any]] | None = None) -> bool:
    """Whether a worker of ``study`` is alive: registered in the store, or started here and still
    starting. ``live_workers``: its :func:`workers`, when the caller has just read them."""
    if live_workers is None:
        live_workers = workers(study, runs_dir)
    return bool(live_workers) or bool(_launched(study))


def stop_sweep(study: str, runs_dir: Path | str | None = None, force: bool = False, by: str | None = None) -> int:
    """Ask the study's workers to stop; ``force`` also sends SIGTERM to those on this host (their
    current trial is then marked failed); ``by``: who asked, when not the owner. Returns the number
    of live workers it asked."""
    live = workers(study, runs_dir)
    if force and stop_in_force(study, [], live, True, study_record(study, runs_dir), runs_dir) is not None:
        pass  # asked already: a new time would restart the page's wait before it offers Force stop again
    else:
        request_stop(study, runs_dir, by=by)
    pids = {int(w["pid"]) for w in live if w.get("host") == socket.gethostname()}
    pids |= {p.pid for p in _launched(study)}
    if force:
        for pid in pids:
            try:  # the worker leads its own process session (launch.spawn)
                os.killpg(pid, signal.SIGTERM) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    return len(pids)


def last_log_line(study: str, runs_dir: Path | str | None = None) -> str:
    """The last ``signlab:`` line of the study's worker log: why a background sweep ended badly."""
    if not STUDY_RE.fullmatch(study):
        return ""
    try:  # the tail only, and never through a link (a planted log must not show another file)
        tail = read_tail_inside(sweeps_dir(runs_dir), f"{study}.log", 256 * 1024)
    except (OSError, UnsafeFileError):
        return ""
    lines = tail.decode(errors="replace").strip().splitlines()
    return next((ln for ln in reversed(lines) if ln.startswith("signlab:")), "")


# --------------------------------------------------------------------------- the study's trials
def _live_sweep_workers(study: str, runs_dir: Path | str | None) -> set[str] | None:
    """The ids of ``study``'s live sweep workers; None when the run database cannot say."""
    try:
        return {str(w.get("worker_id")) for w in workers(study, runs_dir)}
    except SignlabError:
        return None


def _run_state(run_id: str | None, runs_dir: Path | str | None) -> dict[str, Any]:
    if not run_id:
        return {}
    try:
        return store_for(runs_root(runs_dir)).get(run_id) or {}
    except SignlabError:
        return {}


def study_trials(storage: str | None, study: str, runs_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """One row per trial, in trial order: number, state, value, the searched settings, run_id,
    epochs, seconds, test_accuracy, note. [] when the study does not exist (yet)."""
    optuna = _optuna()
    try:
        st = optuna.load_study(study_name=study, storage=open_storage(storage, study, runs_dir))
    except KeyError:
        return []
    rows = []
    live: list[set[str] | None] = []  # the study's live sweep workers' ids (None: unknown), read once if needed
    for t in st.get_trials(deepcopy=False):
        attrs = t.user_attrs
        run_id = attrs.get("run_id")
        state = t.state.name
        note = attrs.get("note", "")
        run_st = _run_state(run_id, runs_dir) if state == "RUNNING" else {}
        if state == "RUNNING" and run_st.get("status") in (RunState.INTERRUPTED, RunState.FAILED, RunState.STOPPED):
            state, note = "INTERRUPTED", run_st.get("message", "")
        elif state == "RUNNING" and run_st.get("status") == RunState.COMPLETED:
            # trained, and its worker reads the test set before it records the trial; a worker killed
            # there (out of memory, kill -9) left the trial running for good, its clock still counting
            if not live:
                live.append(_live_sweep_workers(study, runs_dir))
            ids, worker = live[0], attrs.get("worker")
            if ids is not None and ((worker not in ids) if worker else not ids):
                state, note = "INTERRUPTED", ("its sweep worker stopped after training, before it recorded the "
                                              "trial; the run is complete, on the Runs page")
        elif attrs.get("stopped"):
            state = "STOPPED"
        if t.datetime_complete and t.datetime_start:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        elif t.datetime_start and state == "RUNNING":
            seconds = time.time() - t.datetime_start.timestamp()
        else:
            seconds = None
        value = t.value if t.state.name == "COMPLETE" else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        row = {"number": t.number, "state": state, "value": value,
               "started": t.datetime_start.timestamp() if t.datetime_start else None}
        for p in PARAMS:
            row[p] = t.params.get(p)
        row.update(run_id=run_id,
                   epochs=attrs.get("epochs", run_st.get("epochs_completed") if run_st else len(t.intermediate_values)),
                   seconds=seconds, test_accuracy=attrs.get("test_accuracy"), note=note,
                   val_loss=attrs["val_loss"] if "val_loss" in attrs else (
                       _last_val_loss(run_id, runs_dir) if state == "COMPLETE" else None))
        rows.append(row)
    return rows


def _last_val_loss(run_id: str | None, runs_dir: Path | str | None) -> float | None:
    """The validation loss of a run's last epoch, from its log (trials recorded before val_loss was)."""
    from .runs import open_run  # loads torch; kept out of the command line's start-up

    if not run_id:
        return None
    try:
        epochs = logged(open_run(run_id, runs_dir).metrics(), Logged.EPOCH)
    except SignlabError:
        return None
    # from a file: an edited or older record without a number must not break the study's table
    return finite(epochs[-1].get("val_loss")) if epochs else None


def best_trial(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the highest value. Equal accuracies are common (the held-out images
    are easy: several trials reach 100%), so ties go to the lower validation loss, then the earlier trial."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if not done:
        return None
    inf = float("inf")
    return min(done, key=lambda r: (-r["value"], r.get("val_loss") if r.get("val_loss") is not None else inf,
                                    r["number"]))


# --------------------------------------------------------------------------- running a sweep
def _check_budget(trials: int, timeout: float | None, sampler_seed: int | None = None) -> None:
    # compared as given, never converted: a 400-digit number is refused in one line, not an OverflowError
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"--trials: {str(trials)[:24]} is out of range; allowed 1 to {MAX_TRIALS}")
    if timeout is not None and not (timeout > 0 and timeout < 1e7):
        raise ConfigError(f"--timeout: {str(timeout)[:24]} is out of range; give seconds above 0 and below 10000000")
    if sampler_seed is not None and (isinstance(sampler_seed, bool) or not isinstance(sampler_seed, int)
                                     or not 0 <= sampler_seed <= 2**32 - 1):  # numpy's seed range
        raise ConfigError(f"--sampler-seed: {str(sampler_seed)[:24]} is out of range; allowed 0 to {2**32 - 1}")


def _shared(cfg) -> dict[str, Any]:
    d = cfg.to_dict()
    return {k: d[k] for k in SHARED_SETTINGS}


def _describe(params: dict[str, Any]) -> str:
    parts = []
    for k in PARAMS:
        if k in params:
            v = params[k]
            parts.append(f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


class _SweepWorker:
    """One sweep worker's trials: its row in the store's worker table, the wait for a slot of the job
    limit, and the objective Optuna calls (train the trial's run, report it, prune it or stop it).
    :func:`run_sweep` sets it up and hands :meth:`objective` and :meth:`after_trial` to Optuna."""

    def __init__(self, study: str, base: TrainConfig, root: Path, storage_text: str, dataset: "Dataset",
                 trials: int, since: float, owner: str | None, say: Callable[[str], None],
                 max_runs: int | None = None) -> None:
        from .jobs import default_job_limit

        self.study, self.base, self.root, self.dataset, self.owner, self.say = study, base, root, dataset, owner, say
        self.max_runs = max_runs  # the owner's run quota, each trial's run counted as it is made
        self.storage_text, self.since = storage_text, since
        self.id = new_worker_id("sweep")
        self.store = store_for(root)
        self.limit = default_job_limit()
        # "since": a stop requested after it is for this worker (pages read it to say "Stopping")
        self.state = {"trials": trials, "done": 0, "current_trial": None, "current_run": None,
                      "phase": "starting", "since": since}
        self.interrupted = False  # Ctrl-C in the terminal (run_sweep's SIGINT handler)

    def beat(self, **changes: Any) -> None:
        self.state.update(changes)
        try:
            self.store.worker_beat(self.id, **self.state)
        except SignlabError:
            pass

    def should_stop(self) -> bool:
        return self.interrupted or stop_requested_since(self.study, self.since, self.root)

    def wait_for_slot(self, run: Any) -> Any:
        """Claim the trial's own run once the job limit has a free slot (None: stopped while waiting)."""
        while True:
            claim = self.store.claim(self.id, self.limit, run_id=run.id)
            if claim is not None:
                return claim
            if self.should_stop():
                self.store.request(run.id, "stop")
                return None
            # stopped on the Runs page, or cancelled as an orphan while this worker could not beat:
            # it will never be claimed, and the sweep waited for it for good
            if str((self.store.get(run.id) or {}).get("status")) != RunState.QUEUED:
                return None
            self.beat(phase="waiting for a free slot")
            time.sleep(0.5)

    def objective(self, trial: Any) -> float:
        """Train one trial's run; its validation accuracy, or TrialPruned (pruned, stopped, failed)."""
        from . import api
        from .runs import create_run

        optuna, say = _optuna(), self.say
        if self.interrupted:  # Ctrl-C before this trial began (opening the study): no run is made for it
            trial.set_user_attr("stopped", True)
            trial.set_user_attr("note", "stopped with Ctrl-C before it started")
            raise optuna.TrialPruned("stopped with Ctrl-C")
        params = suggest(trial, self.base.model)
        cfg = self.base.replace(**params)
        run = create_run(cfg, self.root, name=f"{self.study} #{trial.number}", kind="trial", study=self.study,
                         auto_continue=False, owner=self.owner, max_runs=self.max_runs,
                         meta={"sweep": self.study, "trial": trial.number, "storage": mask_url(self.storage_text)})
        try:
            trial.set_user_attr("run_id", run.id)
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("worker", self.id)  # study_trials: whether the trial's process still lives
            self.beat(current_trial=trial.number, current_run=run.id)
            say(f"trial {trial.number}: {_describe(params)} (run {run.id})")
            claim = self.wait_for_slot(run)
        except KeyboardInterrupt:  # told to quit at once before its run was claimed: cancel the queued run
            self.store.request(run.id, "stop")
            raise
        if claim is None:
            trial.set_user_attr("stopped", True)
            trial.set_user_attr("note", "stopped by request before it started")
            raise optuna.TrialPruned("stopped by request")
        self.beat(phase="running")
        cb = PruningCallback(trial, cfg.epochs, self.should_stop)
        t0 = time.time()
        record = api.train_claimed(run, claim, callbacks=[cb], dataset=self.dataset, evaluate_test=False)
        trial.set_user_attr("epochs", record["epochs"])
        if cb.val_loss is not None:
            trial.set_user_attr("val_loss", cb.val_loss)
        took = time.time() - t0
        if cb.stopped and record["status"] == "stopped":  # a stop after the last batch: the trial completes
            trial.set_user_attr("stopped", True)
            trial.set_user_attr("note", "stopped by request")
            self.store.annotate(run.id, attempt=claim.attempt, message="stopped: the sweep was stopped")
            say(f"trial {trial.number}: stopped by request")
            raise optuna.TrialPruned("stopped by request")
        if cb.pruned_at is not None:
            msg = (f"pruned by the sweep after epoch {cb.pruned_at}: its validation accuracy "
                   f"{100 * (record['val_accuracy'] or 0):.2f}% was below the median of earlier trials")
            trial.set_user_attr("note", f"pruned after epoch {cb.pruned_at}")
            self.store.annotate(run.id, attempt=claim.attempt, message=msg)
            say(f"trial {trial.number}: {msg} ({took:.0f} s)")
            raise optuna.TrialPruned(msg)
        if record["status"] != "completed" or record["val_accuracy"] is None:
            trial.set_user_attr("note", f"{record['status']}: {record['message']}")
            say(f"trial {trial.number}: {record['status']}: {record['message']}")
            # a diverged or failed trial tells the sampler this region is bad, like a pruned one
            raise optuna.TrialPruned(record["message"])
        ev = api.evaluate_run(run, self.dataset)
        self.store.annotate(run.id, attempt=claim.attempt, test_accuracy=ev.accuracy)
        trial.set_user_attr("test_accuracy", ev.accuracy)
        say(f"trial {trial.number}: validation accuracy {100 * record['val_accuracy']:.2f}% "
            f"(test {100 * ev.accuracy:.2f}%, {took:.0f} s)")
        return float(record["val_accuracy"])

    def after_trial(self, study_obj: Any, frozen: Any) -> None:
        self.beat(done=self.state["done"] + 1, current_trial=None, current_run=None)
        if self.should_stop():
            study_obj.stop()


def run_sweep(model: str = DEFAULT_MODEL, trials: int = DEFAULT_TRIALS, epochs: int = DEFAULT_EPOCHS,
              storage: str | None = None, study: str | None = None, timeout: float | None = None,
              runs_dir: Path | str | None = None, max_steps: int | None = None,
              val_fraction: float = DEFAULT_VAL_FRACTION, dataset: "Dataset | None" = None, sampler_seed: int | None = None,
              log: Callable[[str], None] | None = None, **overrides: Any) -> dict[str, Any]:
    """Run ``trials`` trials of the study (creating it if needed) in this process.

    ``overrides`` are further TrainConfig settings every trial shares (device, threads, data, seed).
    Returns {study, storage, trials, completed, pruned, this_worker, best_value, best_params,
    best_run_id, best_test_accuracy, seconds}.
    """
    _check_budget(trials, timeout, sampler_seed)
    base = base_config(model=model, epochs=epochs, max_steps=max_steps, val_fraction=val_fraction, **overrides)
    study = check_study_name(study or default_study_name(model, epochs))
    # the training stack loads torch: imported here, so `python -m signlab --help` stays quick
    from .data import load_dataset
    from .device import check_device

    # what every trial would fail on is refused before the study is made: a device this machine lacks
    # failed each trial with a traceback (leaving a failed run each), and a --data folder that does not
    # exist was kept as the new study's setting, so the same study without it was then refused
    check_device(base.device)
    dataset = dataset if dataset is not None else load_dataset(base.data)
    optuna = _optuna()
    study_storage = open_storage(storage, study, runs_dir)
    storage_text = _storage_text(storage, study, runs_dir)
    root = runs_root(runs_dir)
    folder = sweeps_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:  # a worker the dashboard launched obeys a Stop pressed while it was still starting
        since = min(started, float(os.environ.get("SIGNLAB_SWEEP_LAUNCHED", started)))
    except ValueError:
        since = started
    from .access import local_user, user_id_of  # access imports this module

    # SIGNLAB_OWNER is set by the dashboard for the user who started the sweep, and kept as a
    # sign-in's id is ("Alice@X.edu" from an instructor owns what alice@x.edu sees); from the command
    # line the owner is the machine's user, as for train (the trials of such a sweep had no owner)
    owner = user_id_of(os.environ.get("SIGNLAB_OWNER") or "") or local_user().id
    worker = _SweepWorker(study, base, root, storage_text, dataset, trials, since, owner, log or (lambda s: None),
                          _run_quota(owner, root) if os.environ.get("SIGNLAB_OWNER") else None)

    def on_term(signum, frame):  # SIGTERM: the current trial is marked failed, then the worker exits
        raise KeyboardInterrupt

    def on_first_ctrl_c() -> str:  # the trial stops as a Stop stops it, and no other starts (a
        # KeyboardInterrupt inside a trial printed Optuna's 30-line traceback and left the trial's run
        # "running" until its lease ran out); a second Ctrl-C quits at once (signlab.interrupt)
        worker.interrupted = True
        return "stopping the trial after this step; no other starts"

    with handling(signal.SIGTERM, on_term), TwoPresses(on_first_ctrl_c):
        worker.store.register_worker(worker.id, "sweep", study=study, **worker.state)
        try:
            st = _open_study(optuna, study, study_storage, base, sampler_seed)
            record_path = folder / f"{study}.json"
            if not isinstance(read_json(record_path), dict):
                atomic_write_json(record_path, {"study": study, "storage": mask_url(storage_text), "model": model,
                                                "epochs": epochs, "max_steps": max_steps, "owner": owner,
                                                "val_fraction": val_fraction, "seed": base.seed, "data": base.data,
                                                "created": time.time()})
            worker.beat(phase="running")
            st.optimize(worker.objective, n_trials=trials, timeout=timeout, callbacks=[worker.after_trial],
                        catch=())
        finally:
            try:
                worker.store.unregister_worker(worker.id)
            except SignlabError:
                pass
    rows = study_trials(storage, study, root)
    best = best_trial(rows)
    return {
        "study": study, "storage": mask_url(storage_text), **trial_counts(rows), "this_worker": worker.state["done"],
        "best_value": best["value"] if best else None,
        "best_params": {p: best[p] for p in PARAMS if best and best[p] is not None} if best else None,
        "best_run_id": best["run_id"] if best else None,
        "best_test_accuracy": best["test_accuracy"] if best else None,
        "seconds": round(time.time() - started, 1),
    }


def _run_quota(owner: str, root: Path) -> int | None:
    """The run quota of a sweep's owner (None for an instructor): each trial's run counts against it as
    it is made. Checked only when the sweep started, two sweeps started one after the other both
    passed it (a student with 1 run under a limit of 3 ended with 5)."""
    from .access import policy, user_for  # access imports this module

    pol = policy(root)
    return None if user_for(owner, pol).manages_all else pol.max_runs_per_user


def _open_study(optuna, study: str, store, base, sampler_seed: int | None):
    """Create the study or join it; ConfigError when it was started with other shared settings."""
    sampler = optuna.samplers.TPESampler(n_startup_trials=4, multivariate=True, constant_liar=True,
                                         seed=sampler_seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    st = optuna.create_study(study_name=study, storage=store, sampler=sampler, pruner=pruner,
                             direction="maximize", load_if_exists=True)
    shared = _shared(base)
    known = st.user_attrs.get("base")
    if known is None:
        st.set_user_attr("base", shared)
        st.set_user_attr("search_space", SEARCH_SPACE_VERSION)
        return st
    diff = [k for k in SHARED_SETTINGS if known.get(k) != shared.get(k)]
    if diff:
        k = diff[0]
        raise ConfigError(f"study {study!r} was started with {SETTING[k].flag} {known.get(k)!r}, not "
                          f"{shared.get(k)!r}; "
                          "use the same settings to join it, or another --study")
    if st.user_attrs.get("search_space", SEARCH_SPACE_VERSION) != SEARCH_SPACE_VERSION:
        raise ConfigError(f"study {study!r} was made with another version's search space; use another --study")
    return st


# --------------------------------------------------------------------------- the command line
def add_sweep_command(sub: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to the CLI's subparsers and return its parser (the CLI adds the options every
    command that opens runs shares: ``--runs-dir`` and ``--db``)."""
    s = sub.add_parser("sweep", help="search hyperparameters with Optuna (each trial is a run)",
                       description=f"Search {', '.join(s.words for s in SEARCHED[:-1])} and {SEARCHED[-1].words} "
                                   "with Optuna, pruning bad trials after each epoch. Several worker processes "
                                   "(on several machines) may join one study through a shared --storage.")
    s.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"trials this worker runs (1 to {MAX_TRIALS}; default {DEFAULT_TRIALS})")
    s.add_argument("--storage", default=None, type=given,
                   help="journal file path, journal:PATH, or a postgresql://, mysql:// or sqlite:// URL "
                        "(default: the run database when it is PostgreSQL, else RUNS_DIR/sweeps/STUDY.journal)")
    s.add_argument("--study", default=None, type=given, help="study name (default: MODEL-EPOCHSep)")
    s.add_argument("--timeout", type=float, default=None, help="start no new trial after this many seconds")
    s.add_argument("--sampler-seed", type=int, default=None, help="seed of the sampler (default: random)")
    # the settings every trial shares, as the declaration types and checks them
    add_options(s, SWEEP_OPTIONS, defaults={"model": DEFAULT_MODEL, "epochs": DEFAULT_EPOCHS,
                                            "val_fraction": DEFAULT_VAL_FRACTION}, helps={
        "model": f"the network whose settings are searched (default {DEFAULT_MODEL})",
        "epochs": f"epochs per trial (default {DEFAULT_EPOCHS})",
        "max_steps": "stop each trial after this many steps (tests)",
        "val_fraction": f"training images held out to score trials (default {DEFAULT_VAL_FRACTION:g}; 0: the test CSV)",
        "seed": f"training seed shared by every trial (default {SETTING['seed'].default})"})
    s.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    s.add_argument("--quiet", action="store_true", help="no line per trial on stderr")
    s.set_defaults(func=cmd_sweep)
    return s


def cmd_sweep(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_sweep(trials=args.trials, storage=args.storage, study=args.study, timeout=args.timeout,
                       runs_dir=args.runs_dir, sampler_seed=args.sampler_seed, log=None if args.quiet else log,
                       **option_values(args, SWEEP_OPTIONS))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"study {result['study']}: {count_text(result['trials'], 'trial')}, {result['completed']} completed, "
              f"{result['pruned']} pruned; this worker ran {result['this_worker']} in {result['seconds']:.0f} s")
        if result["best_run_id"]:
            print(f"best: {100 * result['best_value']:.2f}% validation accuracy, "
                  f"{_describe(result['best_params'])}\n  run {result['best_run_id']}")
    return 0
