"""Who may do what on a shared server: users, roles, owners and quotas, checked in the backend.

Every action on a run (see, stop, pause, resume, continue, rename, delete, download, export,
calibrate) and every start (a run, a continuation, a calibrated copy, a sweep) goes through the functions here, which check the
acting :class:`User` against the run's owner in the run store *before* acting. Pages call these
functions; hiding a button is never the protection.

Roles:

* ``student``: sees and controls their own runs; sees classmates' runs read-only only when the
  server allows it (``show_classmates``).
* ``instructor`` (listed in ``SIGNLAB_INSTRUCTORS`` or the settings): sees and manages everything
  and can change the class settings (quotas) from the dashboard.
* ``local``: nobody signed in because the server has no sign-in (someone on their own laptop), and
  the command line, which acts as the local user: full rights, as a shell on the machine has.

Settings come from defaults, then the environment, then the run database's settings table (what
an instructor changed in the dashboard); :func:`policy` merges them.

This module knows nothing about Streamlit or how a user signed in; :mod:`signlab.ui` builds the
User from the sign-in.
"""
from __future__ import annotations

import functools
import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .config import TrainConfig
from .data import TEST_ROWS, TRAIN_ROWS
from .errors import QuotaError, SignlabError  # QuotaError: the store refuses a start past the job quota too
from .labels import NUM_PIXELS
from .models import create_model, layer_summary
from .numbers import count_text, plain_line
from .paths import runs_root
from .policy import Policy, _env_name, _env_settings
from .export import export_for_download
from .runs import CONFIG_FILE, ONNX_FILE, Run, delete_run, list_runs, open_run_id
from .store import ACTIVE, RunState, active_refusal, runs_refusal, store_for
from .sweep import jobs_beyond_trials, start_sweep_process
from .sweep import stop_sweep as stop_sweep_process

if TYPE_CHECKING:  # annotations only: the job manager imports this module's users
    from .jobs import JobManager

# calibrate: a calibrated copy of a run carries its weights into a run of the caller, which they
# may download, so it is the owner's (or an instructor's), as download is
ACTIONS = ("view", "stop", "pause", "resume", "continue", "rename", "delete", "download", "export", "calibrate")


class AccessError(SignlabError):
    """The acting user may not do this (names the action and why)."""


@dataclass(frozen=True)
class User:
    """Who is acting: ``id`` is the owner recorded on runs (an e-mail, a proxy's user name)."""

    id: str
    role: str = "student"
    name: str = ""

    @property
    def manages_all(self) -> bool:
        return self.role in ("instructor", "local")

    @property
    def label(self) -> str:
        return self.name or self.id


def local_user() -> User:
    """The command line's user (and a server without sign-in): the machine's user, full rights."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return User(id=f"local:{name}", role="local", name=name)


def policy(runs_dir: Path | str | None = None, extra: dict[str, Any] | None = None) -> Policy:
    """Defaults, then ``extra`` (the server's secrets), then the environment, then the settings an
    instructor saved in the run database."""
    root = runs_root(runs_dir)
    p = Policy().with_changes(extra or {}).with_changes(_env_settings(), named=_env_name)
    try:
        saved = store_for(root).settings()
    except SignlabError:  # no run database yet (an unwritable runs folder): starting a run says why
        saved = {}
    return p.with_changes(saved)


SAVED_SETTINGS = (*Policy.LIMITS, "show_classmates")  # what an instructor's form saves in the run database


def save_settings(user: User, changes: dict[str, Any], runs_dir: Path | str | None = None) -> Policy:
    """An instructor changes the class settings (stored in the run database, for every server)."""
    if not user.manages_all:
        raise AccessError("only an instructor can change the class settings")
    root = runs_root(runs_dir)
    # raises for a bad value before anything is saved, naming its box on the Runs page
    checked = Policy().with_changes(changes, named=lambda key: Policy.LIMIT_LABELS.get(key, key))
    store_for(root).save_settings({k: getattr(checked, k) for k in changes if k in SAVED_SETTINGS})
    return policy(root)


def saved_settings(runs_dir: Path | str | None = None) -> dict[str, Any]:
    """The class settings an instructor saved, which take precedence over the server's."""
    return {k: v for k, v in store_for(runs_root(runs_dir)).settings().items() if k in SAVED_SETTINGS}


def forget_settings(user: User, runs_dir: Path | str | None = None) -> Policy:
    """An instructor drops every saved class setting: the server's own (``[signlab]``, ``SIGNLAB_MAX_…``,
    the defaults) are in force again. A value saved once, even the default, hid a later change to
    those without a word, and the form had no way back."""
    if not user.manages_all:
        raise AccessError("only an instructor can change the class settings")
    root = runs_root(runs_dir)
    store_for(root).forget_settings(SAVED_SETTINGS)
    return policy(root)


def user_for(user_id: str, pol: Policy, name: str = "") -> User:
    """The User for a signed-in id, with the role the settings give it. An e-mail address is taken
    in lower case, as the instructor list is read: "Alice@x.edu" from a proxy saw none of
    "alice@x.edu"'s runs and had a quota of its own. Other ids (an OIDC subject) are kept as given."""
    uid = user_id_of(user_id)
    if not uid:
        raise AccessError("the sign-in gave no user id")
    return User(id=uid, role=pol.role_of(uid), name=name)


def sign_in_id(claims: Any) -> str:
    """The user id of an OpenID Connect sign-in (``st.user``'s claims): its e-mail address, unless the
    provider says it has not verified it (``email_verified`` false), then its subject. The address
    decides the role: with a provider that lets users set their own, anyone could have signed in as
    an instructor's address."""
    email, verified = claims.get("email"), claims.get("email_verified", True)
    if email and str(verified).strip().lower() not in ("false", "0", "no"):
        return str(email)
    return str(claims.get("sub") or "")


def user_id_of(text: str) -> str:
    """A user id as signlab keeps it: spaces collapsed, at most 200 characters, an e-mail address
    in lower case (sign-in and ``SIGNLAB_OWNER`` alike; see :func:`user_for`)."""
    uid = plain_line(text, 200)
    return uid.lower() if "@" in uid else uid


# --------------------------------------------------------------------------- checks
def _owner(run: Run) -> str | None:
    # the store's row alone: summary() read config.json and calibration.json of every run, for every
    # visible_runs on every rerun, to learn one column of that row
    return run.owner


def can(user: User, run: Run, action: str, pol: Policy) -> bool:
    if action not in ACTIONS:
        raise ValueError(action)
    if user.manages_all:
        return True
    owner = _owner(run)
    if owner == user.id:
        return True
    return action == "view" and pol.show_classmates


def require(user: User, run: Run, action: str, pol: Policy) -> Run:
    """``run`` if ``user`` may do ``action`` on it; AccessError otherwise (without saying whose it is)."""
    if not can(user, run, action, pol):
        if can(user, run, "view", pol):
            raise AccessError(f"run {run.id} belongs to a classmate: you can look at it, not {action} it")
        raise AccessError(f"there is no run {run.id} of yours")
    return run


def open_for(user: User, run_id: str, action: str, pol: Policy, runs_dir: Path | str | None = None) -> Run:
    """The run ``run_id`` (an id only, never a path) if ``user`` may do ``action`` on it."""
    try:
        run = open_run_id(run_id, runs_dir)
    except SignlabError:
        raise AccessError(f"there is no run {str(run_id)[:80]!r} of yours") from None
    return require(user, run, action, pol)


def visible_runs(user: User, pol: Policy, runs_dir: Path | str | None = None) -> list[Run]:
    """The runs ``user`` may see, newest first."""
    return [r for r in list_runs(runs_dir) if can(user, r, "view", pol)]


# --------------------------------------------------------------------------- quotas
def estimate_memory_mb(cfg: TrainConfig) -> float:
    """Training memory of a run, estimated from the model's layer table: every layer's output kept
    for the backward pass and its gradient (x batch size x ensemble members, float32), plus the
    weights, their gradients and two optimizer moments, plus the training images on the device."""
    per_image, params = _model_sizes(cfg.model, cfg.width)
    activations = per_image * cfg.batch_size * cfg.ensemble * 4 * 2
    weights = params * cfg.ensemble * 4 * 4
    data = (TRAIN_ROWS + TEST_ROWS) * NUM_PIXELS * 4  # the bundled data's size: a run's own data is read only when it starts
    return (activations + weights + data) / 2**20


@functools.lru_cache(maxsize=64)
def _model_sizes(model_name: str, width: int | None) -> tuple[int, int]:
    """(numbers every layer outputs per image, parameters) of a model: once per model and width, as
    the Train page asks on each redraw (a model built and traced each time)."""
    model = create_model(model_name, width=width)
    rows = layer_summary(model)
    # leaves only (a container's output is its last child's): a row not followed by a deeper one
    per_image = sum(_prod(r["output_shape"][1:]) for i, r in enumerate(rows)
                    if i + 1 == len(rows) or rows[i + 1]["depth"] <= r["depth"])
    return per_image, sum(p.numel() for p in model.parameters())


def memory_refusal(user: User, cfg: TrainConfig, pol: Policy) -> str:
    """Why ``user`` may not train ``cfg``: its estimated memory (:func:`estimate_memory_mb`) over the
    class's ``max_run_memory_mb``, with the batch size that would fit; "" where it fits."""
    if user.manages_all:
        return ""
    need = estimate_memory_mb(cfg)
    if need <= pol.max_run_memory_mb:
        return ""
    fit = cfg.batch_size
    while fit > 1 and estimate_memory_mb(cfg.replace(batch_size=fit)) > pol.max_run_memory_mb:
        fit //= 2
    hint = (f"batch size {fit} would fit" if estimate_memory_mb(cfg.replace(batch_size=fit)) <= pol.max_run_memory_mb
            else "choose a smaller model or fewer ensemble members")
    return (f"this run needs about {need:,.0f} MB to train ({cfg.model}, batch {cfg.batch_size}, "
            f"{cfg.ensemble} network(s)), over the {pol.max_run_memory_mb:,} MB one run may use; {hint}")


def free_memory_mb() -> float | None:
    """The memory this machine can still give a process (``MemAvailable``), None where it cannot say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_warning(cfg: TrainConfig) -> str | None:
    """What to tell before a run on the CPU whose estimated memory (:func:`estimate_memory_mb`) is more than
    the machine has free, else None. The command line has no quota, and `train --model deepcnn --ensemble 8
    --batch-size 4096 --width 256` grew to 23 GB and was killed by the kernel without a word."""
    from .device import resolve_device

    free = free_memory_mb()
    if free is None or resolve_device(cfg.device).type != "cpu":
        return None
    need = estimate_memory_mb(cfg)
    if need <= free:
        return None
    return (f"this run needs about {need / 1024:,.1f} GB of memory (estimated from its layers), and this machine "
            f"has {free / 1024:,.1f} GB free: it may be killed before it ends; a smaller --batch-size, "
            "--ensemble or --width needs less")


def _prod(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _disk_mb(folders: Iterable[Path]) -> float:
    total = 0
    for folder in folders:
        for dirpath, _dirs, files in os.walk(folder):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
    return total / 2**20


def check_start(user: User, cfg: TrainConfig | None, pol: Policy, runs_dir: Path | str | None = None,
                new_jobs: int = 1) -> None:
    """QuotaError when ``user`` starting ``new_jobs`` more jobs (of ``cfg``) would pass a quota.

    Instructors and the local user have no quotas. ``cfg`` None: a continuation of an existing run
    (no new run, no new disk, the same size as before).
    """
    if user.manages_all:
        return
    root = runs_root(runs_dir)
    mine = store_for(root).rows(owner=user.id)
    active = _active_jobs(user, mine, root)
    if active + new_jobs > pol.max_active_per_user:
        raise QuotaError(active_refusal(active, pol.max_active_per_user))
    if cfg is None:
        return
    _check_room(pol, root, mine, new_jobs)
    if why := memory_refusal(user, cfg, pol):
        raise QuotaError(why)


def _active_jobs(user: User, mine: list[dict[str, Any]], root: Path) -> int:
    """Jobs ``user`` (whose rows are ``mine``) holds: runs queued or training, and a sweep's worker
    still starting, which holds a job before its trial is a run."""
    running = [r for r in mine if r["status"] in ACTIVE]
    return len(running) + jobs_beyond_trials(user.id, running, root)


def start_refusals(user: User, pol: Policy, runs_dir: Path | str | None = None,
                   cfg: TrainConfig | None = None) -> tuple[str, str]:
    """Why ``user`` may not start a run now, for the Train page before the click ("" where nothing
    stops it), from one read of their runs: (the runs at a time: no Start, no Continue; the runs a
    student may keep, or ``cfg``'s memory: no Start, but Continue makes no new run and trains at
    its own size). Disk is left to the click: walking the folders on every redraw costs too much."""
    if user.manages_all:
        return "", ""
    root = runs_root(runs_dir)
    mine = store_for(root).rows(owner=user.id)
    active = _active_jobs(user, mine, root)
    at_once = active_refusal(active, pol.max_active_per_user) if active + 1 > pol.max_active_per_user else ""
    try:
        _check_room(pol, root, mine, new_runs=1, disk=False)
    except QuotaError as err:
        return at_once, str(err)
    # the memory too: Start stayed on with a batch over the limit, and only the click said so
    return at_once, memory_refusal(user, cfg, pol) if cfg is not None else ""


def _check_room(pol: Policy, root: Path, mine: list[dict[str, Any]], new_runs: int = 1,
                making: str = "", disk: bool = True) -> None:
    """QuotaError when ``new_runs`` more runs of a user whose rows are ``mine`` pass the run count
    or a disk quota: a trained run, a calibrated copy and a sweep's trials alike. ``making``: what
    makes more than one run, for the message ("a sweep of 6 trials makes as many runs")."""
    if len(mine) + new_runs > pol.max_runs_per_user:
        if making:
            room = max(0, pol.max_runs_per_user - len(mine))
            raise QuotaError(f"you have {count_text(len(mine), 'run')}, {making}, and the limit is "
                             f"{pol.max_runs_per_user}; delete some on the Runs page"
                             + (f", or ask for at most {room}" if room else ""))
        raise QuotaError(runs_refusal(len(mine), pol.max_runs_per_user))
    if not disk:  # the count alone (cheap enough for a page that redraws every second)
        return
    used = _disk_mb(root / r["run_id"] for r in mine)
    if used > pol.max_disk_per_user_mb:
        raise QuotaError(f"your runs take {used:,.0f} MB on disk, over your {pol.max_disk_per_user_mb:,} MB; "
                         "delete some on the Runs page")
    everyone = _disk_mb([root])
    if everyone > pol.max_disk_total_mb:
        raise QuotaError(f"the runs folder holds {everyone:,.0f} MB, over the server's {pol.max_disk_total_mb:,} MB; "
                         "ask your instructor to make room")


# --------------------------------------------------------------------------- actions
def submit(user: User, cfg: TrainConfig, pol: Policy, jobs: "JobManager", name: str | None = None) -> Run:
    """Queue a run owned by ``user`` (``jobs``: the JobManager) after the quota checks.

    The job and run quotas are checked twice: here, for the message with the others, and by the store
    in the insert's own transaction, where two tabs (or a double click) starting at one instant cannot
    both pass them (each counted the runs before the other's was written)."""
    check_start(user, cfg, pol, jobs.runs_dir)
    return jobs.submit(cfg, name=name, owner=user.id, max_active=_job_quota(user, pol),
                       max_runs=None if user.manages_all else pol.max_runs_per_user)


def stop(user: User, run_id: str, pol: Policy, jobs: "JobManager") -> RunState:
    return jobs.cancel(open_for(user, run_id, "stop", pol, jobs.runs_dir), by=user.id)


def pause(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> RunState:
    return open_for(user, run_id, "pause", pol, runs_dir).request("pause", by=user.id)


def resume(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> RunState:
    return open_for(user, run_id, "resume", pol, runs_dir).request("resume", by=user.id)


def start_next(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> int:
    """Move a queued run to the head of the queue (``RunStore.move_first``); returns its place, 1.
    An instructor's call (or the machine's own user's): it goes before every classmate's turn."""
    run = open_for(user, run_id, "view", pol, runs_dir)
    if not user.manages_all:
        raise AccessError("only an instructor can start a run ahead of the queue: students' runs take turns")
    run.store.move_first(run.id)
    return run.store.queue_position(run.id) or 0


def continue_run(user: User, run_id: str, epochs: int, pol: Policy, jobs: "JobManager") -> Run:
    open_for(user, run_id, "continue", pol, jobs.runs_dir)
    check_start(user, None, pol, jobs.runs_dir)
    return jobs.submit_continue(run_id, epochs, max_active=_job_quota(user, pol))


def _job_quota(user: User, pol: Policy) -> int | None:
    """How many runs ``user`` may have queued or training, for the store's own check (None: no limit)."""
    return None if user.manages_all else pol.max_active_per_user


def rename(user: User, run_id: str, name: str, pol: Policy, runs_dir: Path | str | None = None) -> Run:
    run = open_for(user, run_id, "rename", pol, runs_dir)
    run.rename(name)
    return run


def delete(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> None:
    open_for(user, run_id, "delete", pol, runs_dir)
    delete_run(run_id, runs_dir)


def download(user: User, run_id: str, what: str, pol: Policy, runs_dir: Path | str | None = None) -> bytes:
    """A run's file for download: ``weights``, ``config`` or ``onnx`` (read without following links)."""
    run = open_for(user, run_id, "download", pol, runs_dir)
    if what == "weights":
        return run.weights_bytes()
    return run.file_bytes({"config": CONFIG_FILE, "onnx": ONNX_FILE}[what])


def delete_photos(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> int:
    """Delete the calibration photos kept in a run: its owner's (or an instructor's) call."""
    from .calibrate import delete_photos as _delete  # lazy: calibrate imports access (local_user)

    return _delete(open_for(user, run_id, "delete", pol, runs_dir))


def calibrate(user: User, run_id: str, photos: list[Any], pol: Policy, runs_dir: Path | str | None = None,
              **kwargs: Any) -> dict[str, Any]:
    """Adapt run ``run_id`` to ``photos`` as a new run of ``user`` (``calibrate.calibrate_run``'s
    record; ``kwargs`` go to it): the run must be theirs, and the new one within their quotas."""
    from .calibrate import calibrate_run  # lazy: calibrate imports access (local_user)

    run = open_for(user, run_id, "calibrate", pol, runs_dir)
    if user.manages_all:
        return calibrate_run(run, photos, runs_dir, owner=user.id, **kwargs)
    root = runs_root(runs_dir)
    _check_room(pol, root, store_for(root).rows(owner=user.id))
    # and again as the run is made, after the seconds of adapting (two at once both passed the check).
    # Not the job quota: the copy is held only while its files are written, in this process, not trained
    return calibrate_run(run, photos, runs_dir, owner=user.id, max_runs=pol.max_runs_per_user, **kwargs)


def export(user: User, run_id: str, pol: Policy, runs_dir: Path | str | None = None) -> Path:
    return export_for_download(open_for(user, run_id, "export", pol, runs_dir))


def can_study(user: User, record: dict[str, Any], action: str, pol: Policy) -> bool:
    """Sweeps have owners like runs: ``record`` is the study's record (``sweep.list_studies``)."""
    if user.manages_all or record.get("owner") == user.id:
        return True
    return action == "view" and pol.show_classmates


def start_sweep(user: User, pol: Policy, runs_dir: Path | str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Start a sweep owned by ``user``. Its workers each keep one trial queued or training, so they
    count against the user's job quota (and every trial waits for a slot of the job limit); each trial
    is a run, so its trials count against the runs a user may keep and the disk quotas, as a run
    started on Train does (a sweep passed them, and a student over the run limit made six more)."""
    trials = int(kwargs["trials"])
    workers = min(int(kwargs.get("workers", 1)), trials)
    if not user.manages_all and workers > pol.max_active_per_user:
        raise QuotaError(f"a sweep with {workers} workers trains {workers} trials at once, and the limit is "
                         f"{pol.max_active_per_user} at a time; use at most {pol.max_active_per_user} "
                         f"worker{'s' if pol.max_active_per_user != 1 else ''}")
    check_start(user, None, pol, runs_dir, new_jobs=workers)
    if not user.manages_all:
        root = runs_root(runs_dir)
        _check_room(pol, root, store_for(root).rows(owner=user.id), new_runs=trials,
                    making=f"a sweep of {count_text(trials, 'trial')} makes as many runs")
    return start_sweep_process(runs_dir=runs_dir, owner=user.id, **kwargs)


def stop_sweep(user: User, record: dict[str, Any], pol: Policy, runs_dir: Path | str | None = None,
               force: bool = False) -> int:
    if not can_study(user, record, "stop", pol):
        raise AccessError(f"the sweep {record.get('study')} is not yours to stop")
    by = user.id if record.get("owner") != user.id else None  # its owner's page says who stopped it
    return stop_sweep_process(record["study"], runs_dir, force=force, by=by)

