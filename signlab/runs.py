"""Run folders: a run's artifacts, written so a crash loses nothing; its state lives in the run store.

A run lives in ``<runs_dir>/<run_id>/``::

    config.json          the TrainConfig (atomic)
    meta.json            id, display name at creation, creation time, owner (atomic)
    metrics.jsonl        append-only event log, one JSON object a line, flushed as it goes
    model.safetensors    weights at the last finished epoch (atomic, every epoch end)
    optimizer.safetensors   optimizer state, to continue training (its plain part in the file's
                         metadata; an older signlab wrote it to optimizer.json)
    kernels/epoch_NNNN.safetensors   first-layer kernels after each epoch (appended, never rewritten)

Its state (queued, running, …), owner, name, place in the queue and lease live in the run store
(:mod:`signlab.store`), which is the only thing that changes them. A folder the store has no row
of is imported the first time it is seen: an older signlab's from its ``status.json``, this one's
from ``meta.json`` (its owner) and ``metrics.jsonl`` (its epochs and how its last fit ended), so a
class that moves to another database keeps its runs.

Weights are only ever read with safetensors; no file is unpickled. Run ids are checked so that no
id can reach outside the runs folder, and every file in a run folder is opened without following
symlinks (:mod:`signlab.fsutil`): a link planted in a run is refused, never read or appended to.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

from .config import RANGES, TrainConfig
from .errors import ConfigError, RunError, SignlabError
from .fsutil import (UnsafeFileError, atomic_write_json, atomic_write_safetensors, list_dir_inside, nofollow_opener,
                     read_bytes_inside, read_json_inside, read_tail_inside, storage_error)
from .models import build_model, first_weights
from .paths import runs_root
from .numbers import count_text, finite, plain_line
from .store import FINAL, Claim, Heartbeat, LeaseLost, RunState, RunStore, keep_database_note, store_for
from .events import BatchEnd, EpochEnd, FitEnd, FitStart, Logged

RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # whole names only: fullmatch (a "$" let "id\n" through)
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
# the largest file signlab writes: deepcnn at width 256 times 8 members is 560 MB of weights, and
# Adam's state twice that; a bigger file in a run folder was not written by signlab
MAX_WEIGHTS_BYTES = 2 * 2**30
WEIGHTS_FILE = "model.safetensors"  # a run's weights at its last finished epoch
CONFIG_FILE = "config.json"  # its settings (TrainConfig.to_dict); a folder without it is no run
META_FILE = "meta.json"  # id, name (renames too), creation time, owner; a sweep trial's study and number
ONNX_FILE = "model.onnx"  # the export kept beside the weights (signlab.export)
MAX_METRICS_READ = 512 * 2**20  # one read of metrics.jsonl (200 epochs at batch size 1: about 100 MB)
MAX_JSON_BYTES = 16 * 2**20  # config.json, meta.json, optimizer.json
CALIBRATION_RECORD = "calibration.json"  # a calibrated run's record (parent, letters, photos), by signlab.calibrate


# --------------------------------------------------------------------------- ids and paths
def new_run_id(model: str) -> str:
    """A fresh, time-ordered id such as ``20261128-101500-convnet-3fa2c19e0b``.

    40 random bits after the second: a class of 1,000 pressing Start in the same second collides
    with odds of about 1 in 2 million, and the store's primary key turns even that into a retry.
    """
    return f"{time.strftime(_ID_TIME)}-{model}-{secrets.token_hex(5)}"


_ID_TIME = "%Y%m%d-%H%M%S"
_NEW_ID_RE = re.compile(r"^(\d{8}-\d{6})-(.+)-[0-9a-f]{10}$")  # what new_run_id makes


NAME_CHARS = 80  # the longest run name (the pickers and the table show it whole)


def unique_name(name: str, taken: Iterable[str], limit: int = NAME_CHARS, at: int | None = None) -> str:
    """``name`` (cut to ``limit``), or with " (2)", " (3)"… where that is taken: two runs of one name
    were told apart by their ids only (the tour's "Train again", two calibrations on as many photos).
    The number goes at the end, or after the first ``at`` characters (a calibrated run's, after its
    photos: at the end, "· from 6 Dec 10:39:18 (2)" read as its parent's name)."""
    taken = set(taken)
    out, n = name[:limit], 2
    while out in taken:  # each from ``name`` itself: a name that ends in "(1)" keeps its own number
        suffix = f" ({n})"
        out = (name[:limit - len(suffix)] + suffix if at is None else (name[:at] + suffix + name[at:])[:limit])
        n += 1
    return out


def display_name(run_id: str, name: str | None = None, with_model: bool = False) -> str:
    """A run's name as the app shows it (pickers, tables, legends): the name its owner gave it;
    else, for an id that :func:`new_run_id` made ("20261204-035651-s2net-c66772cf94"), when it was
    started ("4 Dec 03:56:51", with ``with_model`` "4 Dec 03:56:51 (s2net)"; the pickers name the
    model beside it); else the id itself."""
    if name and name != run_id:
        return name
    m = _NEW_ID_RE.match(run_id)
    try:
        t = time.strptime(m[1], _ID_TIME) if m else None
    except ValueError:  # digits that are no date
        t = None
    if t is None:
        return run_id
    return f"{t.tm_mday} {time.strftime('%b %H:%M:%S', t)}" + (f" ({m[2]})" if with_model else "")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name; RunError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
        raise RunError(f"{str(run_id)[:80]!r} is not a valid run id (letters, digits, '-', '_' and '.' only)")
    return run_id


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def run_path(run_id: str, runs_dir: Path | str | None = None) -> Path:
    """The folder of ``run_id`` under ``runs_dir``, guaranteed to lie inside it."""
    root = runs_root(runs_dir)
    path = root / check_run_id(run_id)
    if not _inside(path, root):  # a symlink pointing out of the runs folder
        raise RunError(f"{run_id!r} points outside the runs folder {root}")
    return path


def _has_config(folder: Path | str) -> bool:
    """Whether ``folder`` holds a config.json entry, readable or not: what makes a folder a run, to
    the listing and to every command alike. A run listed "failed" for a config.json that is a
    folder or a link could not be opened, so not deleted (is_file() said no such run)."""
    return os.path.lexists(os.path.join(folder, CONFIG_FILE))


def open_run_id(run_id: str, runs_dir: Path | str | None = None) -> "Run":
    """The run named by ``run_id`` in ``runs_dir``: an id only, never a path.

    For ids that come from outside (a page link ``?run=…``, a form): ``/etc``, ``../x``, ``~/x`` or
    ``runs/x`` are refused with a RunError, as is a folder that is a symlink or has no config.json.
    """
    if not isinstance(run_id, str) or "/" in run_id or "\\" in run_id or os.sep in run_id:
        raise RunError(f"{str(run_id)[:80]!r} is not a run id (a link names a run by its id, never a path)")
    root = runs_root(runs_dir)
    path = run_path(run_id, root)
    if path.is_symlink() or not path.is_dir() or not _has_config(path):
        raise RunError(f"{run_id}: no such run in {root}")
    return Run(path)


def resolve_run(ref: str, runs_dir: Path | str | None = None) -> Path:
    """RUN on the command line: a run id in ``runs_dir`` or a path to a run directory."""
    p = Path(ref).expanduser()
    if (os.sep in ref or ref.startswith(".")) and p.is_dir():
        if not _has_config(p):
            raise RunError(f"{ref}: not a run directory (no config.json)")
        return p
    if os.sep in ref and not p.exists():  # a path, not an id: say what is missing
        raise RunError(f"{ref}: no such run directory")
    path = run_path(ref, runs_dir)
    if not _has_config(path):
        raise RunError(f"{ref}: no such run in {path.parent}")
    return path


# --------------------------------------------------------------------------- safe weights
def load_weights(path: Path, folder: Path | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file. Pickle-based checkpoints are refused before anything is read.

    The file is opened without following symlinks below ``folder`` (default: its own folder), and
    one over MAX_WEIGHTS_BYTES is refused: a link planted in a run never leads to another file.
    """
    return load_weights_and_metadata(path, folder)[0]


def load_weights_and_metadata(path: Path, folder: Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`load_weights`, and the file's metadata (its header's ``__metadata__``; {} when none)."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES or path.suffix.lower() != ".safetensors":
        raise RunError(f"{path.name}: refused; signlab reads weights only from .safetensors files, "
                       "never pickle-based checkpoints (they can run code when loaded)")
    folder = Path(folder) if folder is not None else path.parent
    try:
        raw = read_bytes_inside(folder, path.relative_to(folder), MAX_WEIGHTS_BYTES)
    except UnsafeFileError as err:
        raise RunError(str(err)) from err
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable safetensors file ({getattr(err, 'strerror', None) or err})") from err
    try:
        tensors = load_safetensors_bytes(raw)
        # the header, read by load() just before: 8 bytes of its length, then JSON
        header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable safetensors file ({err})") from err
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return tensors, (meta if isinstance(meta, dict) else {})


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


def _random_state(text: str | None) -> dict[str, torch.Tensor]:
    """The random state kept in a checkpoint's metadata (``{name: base64 bytes}``, RunWriter._save) as
    byte tensors; {} for none, or for text that is not such a state (the file is untrusted)."""
    try:
        raw = json.loads(text) if text else {}
        return {str(k): torch.frombuffer(bytearray(base64.b64decode(v, validate=True)), dtype=torch.uint8)
                for k, v in raw.items()} if isinstance(raw, dict) else {}
    except (ValueError, TypeError, binascii.Error):
        return {}


def _epoch_of(meta: dict[str, str]) -> int | None:
    """The epoch a checkpoint file says it holds (its metadata's ``epoch``), None when it does not say."""
    try:
        return int(meta["epoch"])
    except (KeyError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------- reading a run
MAX_EPOCHS = int(RANGES["epochs"][1])  # the epochs setting's top: a continued run's total stays within it


def epochs_left(done: int) -> int:
    """How many more epochs a run that has trained ``done`` may be continued for (0: none)."""
    return max(0, MAX_EPOCHS - done)


@dataclass
class Run:
    """A run folder and its row in the run store. Use :func:`open_run` or :func:`list_runs`.

    ``row`` is a snapshot of the store's row taken when the run was listed; :meth:`status` always
    reads the store afresh.
    """

    dir: Path
    row: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def store(self) -> RunStore:
        return store_for(self.dir.parent)

    @property
    def config(self) -> TrainConfig:
        try:
            data = json.loads(read_bytes_inside(self.dir, CONFIG_FILE, MAX_JSON_BYTES))
        except UnsafeFileError as err:
            raise RunError(f"run {self.id}: its settings are refused ({err})") from err
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict):
            if not self.dir.is_dir():  # a page still holding a run that another tab deleted
                raise RunError(f"run {self.id} was deleted (in another tab or window); pick another run")
            raise RunError(f"run {self.id}: its settings (config.json) are missing or unreadable")
        try:
            return TrainConfig.from_dict(data)
        except (ConfigError, TypeError, ValueError, OverflowError) as err:  # names the run and the setting
            raise RunError(f"run {self.id}: its settings (config.json) are not valid ({err})") from err

    def save_config(self, cfg: TrainConfig) -> None:
        """Write the run's settings (``config.json``) atomically, from a checked TrainConfig (never a
        raw dict: the worker's device once went in unchecked)."""
        atomic_write_json(self.dir / CONFIG_FILE, cfg.to_dict())

    @property
    def meta(self) -> dict[str, Any]:
        meta = read_json_inside(self.dir, META_FILE, {}, MAX_JSON_BYTES)
        return meta if isinstance(meta, dict) else {}

    def status(self) -> dict[str, Any]:
        """The store's row: ``status`` (a RunState), message, epochs_completed, target_epochs,
        accuracies, seconds, owner, holder. A folder the store has not seen yet is imported first."""
        row = self.store.get(self.id)
        if row is None:
            if self.dir.is_dir():  # a run deleted meanwhile (another tab) is not imported back as a hidden failed row
                import_folder(self.store, self.dir)
            row = self.store.get(self.id) or {"status": RunState.FAILED, "message": "not in the run database"}
        self.row = row
        return row

    def _row(self) -> dict[str, Any]:
        return self.row if self.row is not None else self.status()

    @property
    def name(self) -> str:
        return self._row().get("name") or self.id

    @property
    def owner(self) -> str | None:
        """Who owns the run: its row in the store (no file read, unlike :meth:`summary`)."""
        return self._row().get("owner")

    @property
    def parent(self) -> str | None:
        """The run a calibrated run was adapted from, None for a trained run: the store's row, else
        (a run calibrated before the store kept it, 2026-12-05) its calibration record. The one way
        to ask "is this run calibrated"."""
        parent = self._row().get("parent")
        if not parent:
            record = read_json_inside(self.dir, CALIBRATION_RECORD, {}, MAX_JSON_BYTES)  # never through a link
            parent = record.get("parent") if isinstance(record, dict) else None
        return parent if isinstance(parent, str) and parent else None

    @property
    def state(self) -> RunState:
        return RunState(self.status()["status"])

    def metrics(self) -> list[dict[str, Any]]:
        """Every event of the log; a torn last line (a killed writer) is skipped."""
        return self.read_metrics(0)[0]

    def read_metrics(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events logged after byte ``offset`` and the offset to pass next time: a page polling a
        long run reads only what is new. A line still being written is left for the next call."""
        out = []
        try:
            data = read_bytes_inside(self.dir, "metrics.jsonl", MAX_METRICS_READ, offset)
        except (OSError, UnsafeFileError):  # missing, or a planted link: no events
            return [], offset
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a line torn by a killed writer (or nested past any a run writes)
            if isinstance(rec, dict):
                out.append(rec)
        return out, offset + end

    def has_weights(self) -> bool:
        p = self.dir / WEIGHTS_FILE
        return p.is_file() and not p.is_symlink()

    def weights_mtime(self) -> float:
        """When the weights were last written (0.0 when there are none): the key of every cache of them."""
        try:
            return (self.dir / WEIGHTS_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def weights_size(self) -> int | None:
        """The weights file's size in bytes; None when there is none (deleted meanwhile, by another tab)."""
        try:
            return (self.dir / WEIGHTS_FILE).stat().st_size
        except OSError:
            return None

    def file_bytes(self, name: str, max_bytes: int = MAX_WEIGHTS_BYTES) -> bytes:
        """A file of this run (``config.json``, ``model.onnx``…) for a download: never through a
        symlink, never outside the run folder; RunError when it is missing or refused."""
        try:
            return read_bytes_inside(self.dir, name, max_bytes)
        except UnsafeFileError as err:
            raise RunError(f"run {self.id}: {err}") from err
        except OSError as err:
            raise RunError(f"run {self.id}: cannot read {name} ({err.strerror or err})") from err

    def no_weights_error(self) -> RunError:
        """Why there are no weights to use: none yet, or a finished run's file gone (a run whose file was
        deleted was told it had "no weights yet (no finished epoch)" after finishing three)."""
        if (self.dir / WEIGHTS_FILE).is_symlink():  # refused, not missing: say which
            return RunError(f"run {self.id}: its weights (model.safetensors) are a link to another file, which is "
                            "never read; put the weights file itself in the run folder")
        done = self.epochs_completed()
        if done:
            return RunError(f"run {self.id}: its weights (model.safetensors) are missing from its folder, though it "
                            f"finished {count_text(done, 'epoch')}; they were deleted or moved")
        return RunError(f"run {self.id} has no weights yet: they are saved at the end of its first epoch")

    def weights_bytes(self) -> bytes:
        """The bytes of ``model.safetensors``, for the Runs page's download (safely read, checked to
        be a safetensors file, so a planted file is never served)."""
        if not self.has_weights():
            raise self.no_weights_error()
        raw = self.file_bytes(WEIGHTS_FILE)
        try:
            load_safetensors_bytes(raw)
        except (SafetensorError, ValueError) as err:
            raise RunError(f"run {self.id}: model.safetensors is not a readable safetensors file ({err})") from err
        return raw

    def load_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Rebuild the model from config.json and model.safetensors (no unpickling), in eval mode."""
        cfg = self.config
        model = build_model(cfg)
        if not self.has_weights():
            raise self.no_weights_error()
        try:
            model.load_state_dict(load_weights(self.dir / WEIGHTS_FILE))
        except RuntimeError as err:
            detail = " ".join(str(err).split())  # torch's message spans lines; the CLI shows one
            raise RunError(f"run {self.id}: model.safetensors does not fit model {cfg.model} of its config.json "
                           f"({detail[:200]}{'…' if len(detail) > 200 else ''})") from err
        if cfg.channels_last:  # the layout it trained in: outputs then match training bit for bit
            model = model.to(memory_format=torch.channels_last)
        return model.to(device).eval()

    def continuable(self) -> bool:
        """Whether training can go on from this run's weights: it has some and is not a calibrated run
        (whose photo-fitted head training on the dataset would undo). What :meth:`check_continuable`
        refuses first, without its reads; the Train page's Continue asks this on every rerun."""
        return self.has_weights() and not self.parent

    def check_continuable(self, more: int | None = None) -> None:
        """RunError unless the run has weights that fit its config.json and room for ``more`` epochs
        within the epochs setting's range: checked before a continuation is claimed or queued, so a run
        that cannot go on is left exactly as it was (not marked failed, config.json not rewritten; a
        completed 1-epoch run continued for 200 was claimed, then failed on "epochs: 201 is out of
        range"). A run still held elsewhere is left to the store to refuse."""
        status = self.status()  # also imports an older signlab's folder
        if not self.has_weights():
            raise RunError(f"run {self.id} has no finished epoch to continue from")
        if parent := self.parent:  # continued, it trained its photo-fitted head on the dataset: 99.4% -> 75%
            raise RunError(f"run {self.id} is run {parent} calibrated on photos, not a trained run: training "
                           f"it on the dataset would undo the calibration. Continue run {parent} instead, then "
                           "calibrate that one again")
        done = int(status.get("epochs_completed") or 0)
        if more is not None and more > (room := epochs_left(done)):
            raise RunError(f"run {self.id} has trained {count_text(done, 'epoch')}; {more} more would make "
                           f"{done + more}, over the {MAX_EPOCHS} a run may have"
                           + (f": continue it for at most {room}" if room else ""))
        if RunState(status["status"]) in FINAL:
            self.load_model()  # raises RunError naming the mismatch

    def training_state(self) -> dict[str, Any]:
        """Model and optimizer state to continue training, the random state (``rng``, where saved), and
        ``epoch``: the epoch the weights are of (None for an older signlab's, which did not say).

        Each epoch's two files are written one after the other (the optimizer's first), so a process
        killed between them leaves an optimizer of one epoch beside weights of the one before. Both say
        their epoch: an optimizer of another epoch than the weights is left out (continued with a fresh
        one), never mixed in. A kill after both leaves the store's count one epoch behind the weights;
        the weights' epoch is where training goes on (``api.train_claimed``)."""
        model, meta = load_weights_and_metadata(self.dir / WEIGHTS_FILE)
        epoch = _epoch_of(meta)
        state: dict[str, Any] = {"model": model, "epoch": epoch}
        opt_path = self.dir / "optimizer.safetensors"
        if not opt_path.is_file():
            return state
        tensors, opt_meta = load_weights_and_metadata(opt_path)
        if "plain" in opt_meta:  # one file: its plain part in its metadata
            try:
                plain = json.loads(opt_meta["plain"])
            except ValueError:
                plain = None
            if _epoch_of(opt_meta) != epoch:
                return state
        else:  # an older signlab's optimizer.json beside it, of no stated epoch
            plain = read_json_inside(self.dir, "optimizer.json", None, MAX_WEIGHTS_BYTES)
        if isinstance(plain, dict):
            state["optimizer"] = _unflatten_optimizer(tensors, plain)
        if rng := _random_state(opt_meta.get("rng")):
            state["rng"] = rng  # of the same epoch as the weights (checked above)
        return state

    def kernel_history(self) -> dict[int, torch.Tensor]:
        """First-layer weights by epoch (0 = before training): {epoch: (C_out, C_in, k, k) or (24, 784)}."""
        history: dict[int, torch.Tensor] = {}
        legacy = self.dir / "kernels.safetensors"  # one file rewritten each epoch, before kernels/
        if legacy.is_file():
            try:
                history.update({int(k.split("_")[1]): v for k, v in load_weights(legacy).items()})
            except (RunError, ValueError, IndexError):
                pass
        # listed and read without following links: a kernels folder linked elsewhere is ignored
        names = sorted(n for n in list_dir_inside(self.dir, "kernels")
                       if n.startswith("epoch_") and n.endswith(".safetensors"))
        for n in names:
            f = self.dir / "kernels" / n
            try:
                history[int(f.stem.split("_")[1])] = load_weights(f, self.dir)["kernels"]
            except (RunError, ValueError, IndexError, KeyError):
                continue
        return dict(sorted(history.items()))

    def epochs_completed(self) -> int:
        return int(self.status().get("epochs_completed") or 0)

    def remove_partial_writes(self) -> None:
        """Delete temporary files of atomic writes that a killed writer left (never the real files)."""
        for folder in (self.dir, self.dir / "kernels"):
            if folder.is_symlink():  # a kernels link to another folder: never delete files there
                continue
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def request(self, action: str, by: str | None = None) -> RunState:
        """Ask the run to ``stop``, ``pause`` or ``resume`` (its holder obeys within a heartbeat);
        ``by``: who asks (:meth:`RunStore.request`)."""
        return self.store.request(self.id, action, by=by)

    def rename(self, name: str) -> None:
        name = plain_line(name, NAME_CHARS)
        if not name:
            raise RunError("a run's name cannot be empty")
        self.store.annotate(self.id, name=name)
        self.row = None
        # and in the folder: a run read back from it (a class moved to PostgreSQL, a lost signlab.db)
        # came back with the name it was made with
        meta = read_json_inside(self.dir, META_FILE, {}, MAX_JSON_BYTES)
        if isinstance(meta, dict):
            try:
                atomic_write_json(self.dir / META_FILE, {**meta, "name": name})
            except (OSError, SignlabError):  # the database has it: the folder's copy is a spare
                pass

    def summary(self) -> dict[str, Any]:
        """One row for the runs table (from the listing's snapshot)."""
        row = self._row()
        try:
            cfg = self.config.to_dict()
        except SignlabError:  # an unreadable config must not hide the row: it can still be deleted
            cfg = {}
        return {
            "run_id": self.id, "name": row.get("name") or self.id, "model": cfg.get("model"),
            "preset": cfg.get("preset"), "ensemble": cfg.get("ensemble"), "owner": row.get("owner"),
            "status": str(row.get("status")), "epochs": row.get("epochs_completed") or 0,
            "target_epochs": row.get("target_epochs") or cfg.get("epochs"),
            "batch_size": cfg.get("batch_size"), "width": cfg.get("width"), "lr": cfg.get("lr"),
            "optimizer": cfg.get("optimizer"),
            "schedule": cfg.get("schedule"), "augment": cfg.get("augment"),
            "val_accuracy": row.get("val_accuracy"), "test_accuracy": row.get("test_accuracy"),
            "train_seconds": row.get("train_seconds"), "created": row.get("created"), "updated": row.get("updated"),
            "message": row.get("message", ""), "stopped_by": row.get("stopped_by"), "paused_by": row.get("paused_by"),
            "control": row.get("control"),  # "stop" once a stop is asked of a held run, until it ends
            "parent": self.parent,  # the run a calibrated run was adapted from
            "kind": row.get("kind"),  # "trial" for a sweep's trial
        }


def open_run(ref: str, runs_dir: Path | str | None = None) -> Run:
    """A run by id (in ``runs_dir``) or by path; RunError when it does not exist or is unsafe."""
    return Run(resolve_run(ref, runs_dir))


def _run_folders(root: Path) -> tuple[list[Path], list[str]]:
    """Folders of ``root`` that look like runs (a valid id, a config.json, not a symlink out), and
    the names of run folders (a config.json) whose name is not a run id."""
    out, misnamed = [], []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return [], []
    for e in entries:
        if e.is_dir(follow_symlinks=False) and _has_config(e.path):
            if RUN_ID_RE.fullmatch(e.name) and ".." not in e.name:
                out.append(Path(e.path))
            else:
                misnamed.append(e.name)
    return out, misnamed


def list_runs(runs_dir: Path | str | None = None, warn: Callable[[str], None] | None = None) -> list[Run]:
    """Every run of the folder, newest first, from the run store in one query.

    Folders the store has not seen (written by an older signlab, or copied in) are imported first;
    one whose files are unreadable is listed with state ``failed`` and its reason (so it can be
    deleted), never raised. ``warn(message)`` hears about each such folder.
    """
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    store = store_for(root)
    known = store.ids()
    folders, misnamed = _run_folders(root)
    for name in sorted(misnamed) if warn else ():  # copied in by hand ("copy ü space"): said, not skipped unsaid
        warn(f"{root / plain_line(name, 200)}: not listed, as a run's folder name is letters, digits, '.', '_' "
             "and '-' (starting with a letter or digit); rename the folder to list it")
    for folder in folders:
        if folder.name not in known:
            problem = import_folder(store, folder)
            if problem and warn:
                warn(problem)
    # a holder that died (kill -9) with no worker or dashboard up to notice: listed as running for ever.
    # Taking it back is a write: a database that refuses one (locked, read-only) still lists the runs
    try:
        store.expire_leases()
    except SignlabError:
        pass
    present = {f.name for f in folders}  # a row whose folder is gone (deleted by hand) is not listed
    return [Run(root / row["run_id"], row) for row in store.rows() if row["run_id"] in present]


def delete_run(run_id: str, runs_dir: Path | str | None = None) -> None:
    """Remove a run (RunError while it is queued or training)."""
    run = Run(run_path(run_id, runs_dir))
    run.status()  # imports a folder the store has not seen
    # The folder leaves (renamed to a name no listing reads) inside the row's transaction: removed
    # after it, a listing in between imported it back as an ownerless run, a row with no folder.
    gone = run.dir.with_name(f".deleting-{run.id}-{secrets.token_hex(3)}")

    def move_away() -> None:
        try:
            os.rename(run.dir, gone)
        except FileNotFoundError as err:  # two Deletes at once (two tabs, a double click): the other won
            raise RunError(f"run {run.id} was already deleted") from err
        except OSError as err:
            raise storage_error(err, run.dir) from err
        try:  # the move's time, which _remove_left_deletions reads (a rename keeps the folder's own)
            os.utime(gone)
        except OSError:
            pass

    try:
        run.store.delete(run.id, then=move_away)
    except BaseException:
        # the row stays (its commit failed: a full disk, the database gone, the server killed): so does
        # the folder. Left moved away, the run was hidden from every listing, its row unreachable by
        # Delete, and it counted against its owner's runs for good
        if gone.is_dir() and not run.dir.exists() and _row_kept(run):
            try:
                os.rename(gone, run.dir)
            except OSError:
                pass
        raise
    shutil.rmtree(gone, ignore_errors=True)
    _remove_left_deletions(run.dir.parent)


def _row_kept(run: Run) -> bool:
    """Whether a Delete whose transaction raised left the run's row: its commit may have reached the
    database before the connection dropped, and a folder brought back then has no row (the next listing
    would import it as an ownerless run). True when the database cannot say: a folder with no row can be
    seen and deleted, a row with its folder hidden could not."""
    try:
        return run.store.get(run.id) is not None
    except SignlabError:
        return True


LEFT_DELETION_SECONDS = 3600.0  # a deleted run's folder still there after this was left by a killed process


def _remove_left_deletions(root: Path) -> None:
    """Remove the folders of deletions a process did not finish (killed between the row's delete and
    the folder's removal): no listing reads them, and they counted against their owner's disk quota
    and the server's for good. Only old ones: a younger one may be another Delete's, under way."""
    now = time.time()
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(".deleting-")]
    except OSError:
        return
    for e in entries:
        try:
            old = e.is_dir(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > LEFT_DELETION_SECONDS
        except OSError:
            continue
        if old:
            shutil.rmtree(e.path, ignore_errors=True)


def import_folder(store: RunStore, folder: Path) -> str | None:
    """Add a run folder the store has never seen (an older signlab's, with ``status.json``).

    Every file is untrusted: a value of the wrong type is ignored. A run that was queued stays
    queued; one that was running is ``interrupted`` (nothing holds it now); one whose config cannot
    be read is ``failed`` with that reason. Returns a warning for an unreadable folder, else None.
    """
    meta = read_json_inside(folder, META_FILE, {}, MAX_JSON_BYTES)
    meta = meta if isinstance(meta, dict) else {}
    old = read_json_inside(folder, "status.json", {}, MAX_JSON_BYTES)
    old = old if isinstance(old, dict) else {}
    cfg = read_json_inside(folder, CONFIG_FILE, None, MAX_JSON_BYTES)
    problem = None
    try:
        if not isinstance(cfg, dict):
            raise RunError("config.json is missing or unreadable")
        config = TrainConfig.from_dict(cfg)
    except (SignlabError, TypeError, ValueError, OverflowError) as err:
        config, problem = None, f"run {folder.name}: unreadable settings ({str(err)[:200]})"
    legacy = old.get("status") if isinstance(old.get("status"), str) else None
    if not old and config is not None:  # this signlab's folder (no status.json): its own log says how it ended
        old = _status_from_metrics(folder)
        legacy = old.get("status")
        if old.get("calibrated") and legacy:  # it holds its parent's epochs, as the store said of it
            old["epochs_completed"] = old["target_epochs"] = config.epochs
    if problem:
        state, message = RunState.FAILED, problem
    elif legacy == "queued":
        state, message = RunState.QUEUED, "waiting in the queue"
    elif legacy in [s.value for s in FINAL]:
        state, message = RunState(legacy), str(old.get("message") or "")[:500]
    else:  # running, paused or unknown: nothing holds it any more
        state = RunState.INTERRUPTED
        message = "found without a live training process; continue it to train on"
    info = {k: v for k in ("val_accuracy", "test_accuracy", "train_seconds", "samples_per_second")
            if (v := finite(old.get(k))) is not None}
    if isinstance(old.get("device"), str):
        info["device"] = old["device"][:64]
    done = finite(old.get("epochs_completed"))
    target = finite(old.get("target_epochs"))
    created = finite(meta.get("created"))
    # seconds since 1970, not after tomorrow: a time in milliseconds from an outside script (year 56902)
    # broke the Runs page's dates for everyone who could see the run, its instructors always
    if created is None or not 0 < created <= time.time() + 86400:
        try:
            created = folder.stat().st_mtime
        except OSError:
            created = time.time()
    name = meta.get("name") if isinstance(meta.get("name"), str) else folder.name
    owner = meta.get("owner")  # as the store keeps ids: at most 200 characters, printable (PostgreSQL refused more)
    owner = owner if isinstance(owner, str) and 0 < len(owner) <= 200 and owner.isprintable() and owner.strip() else None
    try:
        store.add(folder.name, state, name=plain_line(name, NAME_CHARS) or folder.name, kind="import", owner=owner,
                  model=config.model if config else None, created=created, message=message,
                  epochs_completed=int(done) if done is not None and 0 <= done < 1e6 else 0,
                  target_epochs=int(target) if target is not None and 0 <= target < 1e6 else (
                      config.epochs if config else None), info=info, auto_continue=False)
    except RunError:
        pass  # imported by another process a moment ago
    return problem


def _status_from_metrics(folder: Path) -> dict[str, Any]:
    """What a run folder of this signlab says of itself, for a database that has no row of it: its
    finished epochs and validation accuracy (``metrics.jsonl``'s epoch records, while weights exist),
    and how its last fit ended (``fit_end``). Moving a class to PostgreSQL listed every run as
    interrupted after 0 epochs, with no accuracy. Untrusted like every file: wrong types are ignored."""
    out: dict[str, Any] = {}
    epochs, seconds = [], 0.0
    for record in Run(folder).metrics():  # read as any run's log is (torn and unparsable lines skipped)
        kind = record.get("type")
        if kind == Logged.EPOCH and type(record.get("epoch")) is int:  # not a bool, not text
            epochs.append(record)
        elif kind in (Logged.FIT_END, Logged.CALIBRATION):  # a calibrated run: adapted, not trained (signlab.calibrate)
            # a final state only: "queued" in a file must not queue it
            out["status"] = "completed" if kind == Logged.CALIBRATION else (
                record.get("status") if record.get("status") in {f.value for f in FINAL} else None)
            out["message"] = record.get("message") if isinstance(record.get("message"), str) else ""
            out["calibrated"] = out.get("calibrated") or kind == Logged.CALIBRATION
            took = finite(record.get("train_seconds"))
            seconds += took if took and took > 0 else 0.0  # the whole run's: each fit's end counts its own
            out["train_seconds"], out["samples_per_second"] = seconds, record.get("samples_per_second")
        elif kind == Logged.FIT_START:
            out["status"] = None  # a fit started after the last end: it did not end
    if not (folder / WEIGHTS_FILE).is_file():
        return {**out, "status": None} if out.get("calibrated") else out
    if epochs:
        out["epochs_completed"] = max(r["epoch"] for r in epochs)
        accuracy = finite(epochs[-1].get("val_accuracy"))
        out["val_accuracy"] = accuracy if accuracy is not None and 0 <= accuracy <= 1 else None
    elif not out.get("calibrated"):  # "completed" with no finished epoch is no run to keep as completed
        out["status"] = None
    return out


# --------------------------------------------------------------------------- writing a run
def create_run(cfg: TrainConfig, runs_dir: Path | str | None = None, run_id: str | None = None,
               status: RunState | str = RunState.QUEUED, name: str | None = None, owner: str | None = None,
               kind: str = "train", study: str | None = None, auto_continue: bool = True,
               max_active: int | None = None, meta: dict[str, Any] | None = None,
               max_runs: int | None = None) -> Run:
    """Make a run that waits in ``status`` (queued by default): its folder (config, meta) and its row
    in the store. A generated id that exists already is replaced by another; a given one raises RunError.
    ``max_active``: QuotaError, and nothing made, when ``owner`` has that many runs queued or training;
    ``max_runs``: when they have that many runs in all.
    ``meta``: more of its meta.json, written with the rest (a sweep trial's study and number)."""
    return _make_run(cfg, runs_dir, run_id, status, name, owner, None, kind, study, auto_continue, max_active,
                     meta, max_runs)[0]


def create_held_run(cfg: TrainConfig, holder: str, runs_dir: Path | str | None = None, run_id: str | None = None,
                    name: str | None = None, owner: str | None = None, max_runs: int | None = None) -> tuple[Run, Claim]:
    """Make a run already claimed by ``holder`` (training in this process, not from the queue).
    ``max_runs``: the owner's run quota, counted in the insert's transaction (as for create_run)."""
    run, claim = _make_run(cfg, runs_dir, run_id, RunState.CLAIMED, name, owner, holder, "train", None, False,
                           max_runs=max_runs)
    assert claim is not None
    return run, claim


def _make_run(cfg: TrainConfig, runs_dir: Path | str | None, run_id: str | None, status: RunState | str,
              name: str | None, owner: str | None, holder: str | None, kind: str, study: str | None,
              auto_continue: bool, max_active: int | None = None,
              meta: dict[str, Any] | None = None, max_runs: int | None = None) -> tuple[Run, Claim | None]:
    name = plain_line(name, NAME_CHARS) if name else None  # the Train page's name box, `train --name`, a sweep's
    root = runs_root(runs_dir)
    for _ in range(5):
        rid = check_run_id(run_id) if run_id else new_run_id(cfg.model)
        path = run_path(rid, root)
        store = store_for(root)  # after the id's check: a refused id leaves no database behind
        now = time.time()
        made = False

        def write_folder() -> None:
            # Inside the row's transaction: a folder with a config.json and no row is what
            # list_runs imports (as an ownerless, interrupted run). Written before the row, a listing
            # at that moment took the run from its owner and this insert failed.
            nonlocal made
            path.mkdir(parents=True)
            made = True
            # the owner too: the run database is where ownership lives, and a run imported into another
            # one (a class moved to PostgreSQL, a lost signlab.db) came back with no owner
            atomic_write_json(path / META_FILE, {**(meta or {}), "run_id": rid, "name": name or rid, "created": now,
                                                 **({"owner": owner} if owner else {})})
            atomic_write_json(path / CONFIG_FILE, cfg.to_dict())

        try:
            claim = store.add(rid, RunState(status), name=name or rid, owner=owner, kind=kind, study=study,
                              model=cfg.model, target_epochs=cfg.epochs, holder=holder, created=now,
                              info={"preset": cfg.preset, "ensemble": cfg.ensemble, "batch_size": cfg.batch_size,
                                    "width": cfg.width},
                              message="starting" if holder else "waiting in the queue"
                              if RunState(status) == RunState.QUEUED else "",
                              auto_continue=auto_continue, then=write_folder, max_active=max_active,
                              max_runs=max_runs)
        except BaseException as err:
            if made:  # no folder without its row
                shutil.rmtree(path, ignore_errors=True)
            # the id is taken: its row exists (RunError), or a folder without a row does (left by
            # a crash here, or copied in); a generated id is replaced by another
            if isinstance(err, (FileExistsError, RunError)) and not run_id:
                continue
            if isinstance(err, FileExistsError):
                raise RunError(f"run {rid} already exists") from None
            if isinstance(err, OSError):
                raise storage_error(err, path) from err
            raise
        keep_database_note(root)  # the folder may be new: its store was opened before it existed
        return Run(path), claim
    raise RunError("could not find a free run id")


class RunWriter:
    """A Trainer callback that keeps the run current: its folder (metrics, weights, kernels) and its
    state in the store, through the claim this process holds.

    Weights, optimizer state and the kernel snapshot are written atomically at every epoch end, so
    a process killed at any moment leaves the last finished epoch loadable. When the lease was
    taken (``lease.lost``), nothing more is written: another holder may own the folder now.
    """

    def __init__(self, run: Run, claim: Claim, lease: Heartbeat | None = None) -> None:
        self.run, self.claim, self.lease = run, claim, lease
        self.started = time.perf_counter()  # the run's whole time, for the estimates' overhead (api._fit)
        self._log = None
        prior = run.status()
        self._before = float(prior.get("train_seconds") or 0.0) if prior.get("epochs_completed") else 0.0

    @property
    def lost(self) -> bool:
        return self.lease is not None and self.lease.lost.is_set()

    def log(self, record: dict[str, Any]) -> None:
        if self.lost:
            return
        try:
            if self._log is None:  # never through a planted link: a worker must not append elsewhere
                self._log = open(self.run.dir / "metrics.jsonl", "a", opener=nofollow_opener)
                # a line torn by a killed writer is ended first: this fit's first record was glued to it
                # and both were skipped as one unreadable line (the tail read has no size limit that a
                # file still growing could pass)
                if self._log.tell() and read_tail_inside(self.run.dir, "metrics.jsonl", 1) != b"\n":
                    self._log.write("\n")
            self._log.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
            self._log.flush()
        except OSError as err:  # a full disk: a StorageError naming the file, not a bare OSError
            raise storage_error(err, self.run.dir / "metrics.jsonl") from err
        except UnsafeFileError as err:
            raise RunError(f"run {self.run.id}: {err}") from err

    def set_state(self, state: RunState | None = None, **fields: Any) -> None:
        """Record progress (and move the run to ``state``) in the store; quiet once the lease is lost."""
        if self.lost:
            return
        letting_go = state is not None and RunState(state) in FINAL and self.lease is not None
        if letting_go:
            self.lease.release()  # before the update: a beat after it must not read "taken over"
        try:
            self.run.store.update(self.claim, state, **fields)
        except LeaseLost:
            if self.lease is not None:
                self.lease.lost.set()
        except SignlabError:
            if letting_go:  # still held: renewed until this process ends, as before the release
                self.lease.keep()
            raise

    def give_up_continuation(self, why: str) -> bool:
        """A continuation that could not start puts its run back as it was (``RunStore.give_up_continuation``):
        True when it did (or the lease is lost: nothing more is written), False when the claim is no
        continuation yet to train, which the caller then fails."""
        if self.lost:
            return True
        if not self.claim.resume_epochs:
            return False
        if self.lease is not None:
            self.lease.release()  # before the update, as set_state does for a final state
        back = None
        try:
            back = self.run.store.give_up_continuation(self.claim, why)
        except LeaseLost:
            if self.lease is not None:
                self.lease.lost.set()
            return True
        finally:
            if back is None and self.lease is not None and not self.lease.lost.is_set():
                self.lease.keep()  # still held (not a continuation, or the database away): renewed on
        return back is not None

    def resume(self) -> bool:
        """Go on after a pause once a slot of the job limit is free (``RunStore.resume``): True when
        training may go on (or the lease is lost: the caller then stops), False while it waits."""
        if self.lost:
            return True
        try:
            return self.run.store.resume(self.claim)
        except LeaseLost:
            if self.lease is not None:
                self.lease.lost.set()
            return True

    def _save(self, trainer, epoch: int) -> None:
        d = self.run.dir
        state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        # each file whole (atomic) and stamped with its epoch: a kill between the two leaves files of two
        # epochs, which a continuation tells apart (Run.training_state); the optimizer's plain part rides
        # in its file's metadata (as optimizer.json it was a third file, a third epoch a kill could split)
        tensors, plain = _flatten_optimizer(trainer.optimizer.state_dict())
        meta = {"epoch": str(epoch), "plain": json.dumps(plain)}
        # and the random state the next epoch starts from, which a continuation takes up (Trainer.rng_state):
        # in the metadata, as text, since an older signlab reads every tensor of the file as the optimizer's
        meta["rng"] = json.dumps({k: base64.b64encode(v.detach().cpu().contiguous().numpy().tobytes()).decode()
                                  for k, v in trainer.rng_state().items()})
        atomic_write_safetensors(d / "optimizer.safetensors", tensors, meta)
        atomic_write_safetensors(d / WEIGHTS_FILE, state, {"epoch": str(epoch)})
        (d / "optimizer.json").unlink(missing_ok=True)  # an older signlab's, of an earlier epoch now
        self._snapshot_kernels(trainer.model, epoch)

    def _snapshot_kernels(self, model: torch.nn.Module, epoch: int) -> None:
        w = first_weights(model)
        if w is None:
            return
        tensors = {"kernels": w.float().contiguous()}
        atomic_write_safetensors(self.run.dir / "kernels" / f"epoch_{epoch:04d}.safetensors", tensors)

    def __call__(self, event, trainer) -> None:
        if self.lost:
            trainer.stop()
            return
        if isinstance(event, FitStart):
            if event.start_epoch == 0:
                self._snapshot_kernels(trainer.model, 0)
            self.log({"type": Logged.FIT_START, "start_epoch": event.start_epoch, "total_epochs": event.total_epochs,
                      "steps_per_epoch": event.steps_per_epoch, "n_train": event.n_train, "n_val": event.n_val,
                      "device": event.device, "parameters": event.parameters, "schedule_from": event.schedule_from})
            # test_accuracy None: a continuation's weights replace those an earlier fit was tested on, and
            # as it completed the Train page read that stale figure beside the new chart ("99.72%, the
            # chart read 100.00%: the shifts moved it down"), until its own test accuracy came
            self.set_state(RunState.RUNNING, message=f"training on {event.device}", target_epochs=event.total_epochs,
                           epochs_completed=event.start_epoch, steps_per_epoch=event.steps_per_epoch,
                           device=event.device, test_accuracy=None)
        elif isinstance(event, BatchEnd):
            self.log({"type": Logged.BATCH, "step": event.step, "epoch": event.epoch, "loss": event.loss, "lr": event.lr,
                      "samples_per_second": event.samples_per_second, "train_seconds": event.train_seconds,
                      "progress": event.progress})
        elif isinstance(event, EpochEnd):
            if self.lease is not None:
                # still held? asked of the store before the weights are written over: a holder stalled
                # past its lease (stopped, a laptop asleep) learnt of the takeover only at its next
                # beat, seconds later, and could overwrite the weights of the process that took over
                self.lease.beat()
                if self.lost:
                    trainer.stop()
                    return
            self._save(trainer, event.epoch)
            self.log({"type": Logged.EPOCH, "epoch": event.epoch, "train_loss": event.train_loss,
                      "train_accuracy": event.train_accuracy, "val_loss": event.val_loss,
                      "val_accuracy": event.val_accuracy, "epoch_seconds": event.epoch_seconds,
                      "train_seconds": event.train_seconds, "samples_per_second": event.samples_per_second})
            try:
                self.set_state(epochs_completed=event.epoch, val_accuracy=event.val_accuracy,
                               train_seconds=self._before + event.train_seconds,
                               samples_per_second=event.samples_per_second)
            except SignlabError:
                # the database away for a moment (locked, a dropped connection): the epoch's weights and
                # its record are saved, and the next write (the next epoch's, the fit's end) carries the
                # count and the accuracy, which a continuation also reads from the weights. Raised, it
                # failed a healthy run at epoch 1 with that epoch on disk, its count 0
                pass
        elif isinstance(event, FitEnd):
            try:
                self.log({"type": Logged.FIT_END, "status": event.status, "message": event.message,
                          "epochs_completed": event.epochs_completed, "train_seconds": event.train_seconds,
                          "samples_per_second": event.samples_per_second})
            finally:  # the state tells how the run ended even when the log cannot be written
                # the whole fit's speed, as `train --json` reports it: the last epoch's (set above)
                # left out the first's warm-up, and the Train page's estimates from it ran short
                # (71 s said, 183 s taken, for the tour's ConvNet)
                # and the last epoch's accuracy, which its own write may have missed (the database away)
                self.set_state(RunState(event.status), message=event.message,
                               epochs_completed=event.epochs_completed,
                               train_seconds=self._before + event.train_seconds,
                               samples_per_second=event.samples_per_second,
                               **({"val_accuracy": event.val_accuracy} if event.val_accuracy is not None else {}))
                self.close()

    def not_started(self, why: str) -> None:
        """A fit that could not start: a continuation gives its finished run back as it was (nothing of
        it ran; a completed run read "failed"), a fresh run fails with ``why`` (:meth:`fail`)."""
        if not self.give_up_continuation(why):
            self.fail(why)

    def fail(self, message: str) -> None:
        """A fresh run that could not start (its data gone, settings unreadable, refused by this server):
        failed with ``message``, in its log too. With the database's row alone, a runs folder read
        without that database (a class moved to PostgreSQL, a lost database) listed it as interrupted,
        "continue it to train on", though it has no weights to continue from."""
        try:
            self.log({"type": Logged.FIT_END, "status": RunState.FAILED.value, "message": message,
                      "epochs_completed": 0, "train_seconds": 0.0, "samples_per_second": None})
        except SignlabError:  # the state below still tells how it ended
            pass
        finally:
            self.set_state(RunState.FAILED, message=message)
            self.close()

    def close(self) -> None:
        if self._log is not None:
            log, self._log = self._log, None
            try:
                log.close()
            except OSError:
                pass
