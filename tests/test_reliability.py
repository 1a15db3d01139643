"""Reliability: a full disk or an unwritable runs folder, out of memory, divergence, out-of-range
settings (page and CLI), bad uploads and data files (page and CLI), the upload cap, and names that
try to leave the runs folder.

The browser-level faults (4 sessions against a limit of 2, killing the server mid-training) live
in tests/browser/test_load_browser.py; the JobManager-level ones (SIGKILL of a worker, crash
reasons) in tests/test_jobs.py.

Tests run as root in CI, where chmod does not stop a write: an unwritable folder is a path under
a file (ENOTDIR), and a full disk or a refused write is an OSError(ENOSPC / EACCES / EROFS) raised
by a patched ``os.replace``, ``tempfile.mkstemp`` or ``open``.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from signlab import api, cli, fsutil, runs as runs_mod
from signlab.config import TrainConfig
from signlab.errors import ImageError, RunError
from signlab.fsutil import StorageError, atomic_write_json
from signlab.jobs import JobManager
from signlab.models import build_model
from signlab.preprocess import MAX_FILE_BYTES, prepare
from signlab.runs import create_run, list_runs, open_run
from tests._local import read_md
from tests.test_data import MALFORMED  # the backend issue's malformed data files

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


# --------------------------------------------------------------------------- helpers
def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _oserror(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("signlab: "), err
    return lines[0]


@pytest.fixture
def data_env(tmp_path, monkeypatch, app_caches):
    """A private parsed-data cache, and the app's cached dataset dropped before and after."""
    from signlab import ui

    monkeypatch.setenv("SIGNLAB_CACHE", str(tmp_path / "cache"))
    ui._dataset.clear()
    yield
    ui._dataset.clear()


def _page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"app_pages/{page}.py")
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


# --------------------------------------------------------------------------- a full disk, an unwritable folder
@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "cannot write here"),
                                         (errno.EROFS, "read-only")])
def test_atomic_write_refused_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, code, words):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"status": "running"})
    monkeypatch.setattr(fsutil.os, "replace", _oserror(code))
    with pytest.raises(StorageError) as err:
        atomic_write_json(path, {"status": "completed"})
    assert str(path) in str(err.value) and words in str(err.value) and "\n" not in str(err.value)
    assert json.loads(path.read_text()) == {"status": "running"}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]  # no .tmp left behind


def test_weights_that_do_not_fit_on_the_disk_give_the_storage_error(tmp_path):
    """A full disk while saving weights: safetensors' own writer raised SafetensorError ("I/O error: No
    space left on device"), no OSError, so `train` ended with a traceback and exit 1. Run for real in a
    child process whose files may not grow past 64 KB (RLIMIT_FSIZE: the kernel refuses the write, as a
    full disk does, with no disk to fill)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        import torch
        from signlab.fsutil import StorageError, atomic_write_safetensors
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            atomic_write_safetensors(Path({str(tmp_path)!r}) / "model.safetensors", {{"w": torch.zeros(100_000)}})
        except StorageError as err:
            print("StorageError:", err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert out.stdout.startswith(f"StorageError: {tmp_path / 'model.safetensors'}: cannot write ("), out.stdout
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_atomic_write_into_a_folder_that_cannot_exist(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot write"):
        atomic_write_json(blocker / "runs" / "x.json", {})


def test_atomic_write_without_parents_never_makes_a_deleted_folder_again(tmp_path):
    """A cache written inside a run folder (the Map's embeddings/) while another tab deleted the run
    must fail, not make the run folder again."""
    from signlab.fsutil import atomic_write

    run = tmp_path / "run"
    with pytest.raises(StorageError):
        atomic_write(run / "embeddings" / "x.npz", lambda p: p.write_bytes(b"x"), parents=False)
    assert not run.exists()
    run.mkdir()
    atomic_write(run / "embeddings" / "x.npz", lambda p: p.write_bytes(b"x"), parents=False)  # its own folder: made
    assert (run / "embeddings" / "x.npz").read_bytes() == b"x"


def test_create_run_and_submit_in_an_unwritable_runs_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for folder in (blocker / "runs", blocker):
        with pytest.raises(StorageError, match="cannot write"):
            create_run(TrainConfig(model="logreg"), folder)
        with pytest.raises(StorageError):
            JobManager(folder, limit=1).submit(TrainConfig(model="logreg"))
        with pytest.raises(StorageError):
            JobManager(folder, limit=1).tick()
        assert list_runs(folder) == []
    # a folder that exists but refuses new files (EACCES), and a full disk
    monkeypatch.setattr(fsutil.tempfile, "mkstemp", _oserror(errno.EACCES))
    with pytest.raises(StorageError, match="permission denied"):
        create_run(TrainConfig(model="logreg"), tmp_path / "runs")
    assert list_runs(tmp_path / "runs") == []  # the half-made folder is not listed


def test_a_run_cut_off_while_being_created_is_never_listed(tmp_path, monkeypatch):
    """The server killed between create_run's writes (two files, then the store's row): no run is
    listed until it is whole, and nothing half-made is left behind."""
    real = runs_mod.atomic_write_json
    for cut in range(2):
        calls = []

        def dying(path, obj, calls=calls, cut=cut):
            if len(calls) == cut:
                raise SystemExit("killed")  # like a SIGKILL between two writes
            calls.append(path)
            real(path, obj)

        monkeypatch.setattr(runs_mod, "atomic_write_json", dying)
        with pytest.raises(SystemExit):
            create_run(TrainConfig(model="logreg"), tmp_path, run_id=f"cut-{cut}")
        monkeypatch.setattr(runs_mod, "atomic_write_json", real)
        assert [r.id for r in list_runs(tmp_path)] == []
        with pytest.raises(RunError):
            open_run(f"cut-{cut}", tmp_path)
    from signlab.store import RunStore

    def dying_add(self, *a, **kw):
        raise SystemExit("killed")

    monkeypatch.setattr(RunStore, "add", dying_add)
    with pytest.raises(SystemExit):
        create_run(TrainConfig(model="logreg"), tmp_path, run_id="cut-store")
    monkeypatch.undo()
    assert [r.id for r in list_runs(tmp_path)] == [] and not (tmp_path / "cut-store").exists()
    run = create_run(TrainConfig(model="logreg"), tmp_path, run_id="whole")
    assert [r.id for r in list_runs(tmp_path)] == ["whole"]
    assert run.status()["status"] == "queued" and run.meta["run_id"] == "whole"


def test_cli_train_into_an_unwritable_runs_folder_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = cli.main(["train", "--model", "logreg", "--runs-dir", str(blocker / "runs")])
    line = _one_line_error(capsys)
    assert code == 2 and "cannot write" in line and str(blocker) in line


class _FullDiskLog:
    """The metrics log on a disk that fills up after ``room`` lines."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, s: str) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return self.f.write(s)

    def __getattr__(self, name):
        return getattr(self.f, name)


def _refuse_weights(monkeypatch) -> None:
    """A disk that fills up at the first epoch end: the weights file cannot be written."""
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("model.safetensors"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", replace)


@pytest.mark.parametrize("where", ["weights", "metrics"])
def test_disk_full_during_training_ends_the_run_failed_with_a_clear_message(tmp_path, monkeypatch,
                                                                             small_dataset, where):
    if where == "weights":
        _refuse_weights(monkeypatch)
    else:
        real_open = open

        def opener(path, mode="r", *a, **k):
            f = real_open(path, mode, *a, **k)
            return _FullDiskLog(f, room=3) if str(path).endswith("metrics.jsonl") and "a" in mode else f

        monkeypatch.setattr(runs_mod, "open", opener, raising=False)
    cfg = TrainConfig(model="logreg", epochs=1, max_steps=20, log_every=2, augment=False)
    with pytest.raises(StorageError, match="disk is full"):
        api.train(cfg, tmp_path, run_id="full", dataset=small_dataset)
    monkeypatch.undo()
    run = open_run("full", tmp_path)
    status = run.status()
    assert status["status"] == "failed" and "disk is full" in status["message"], status
    assert not list(run.dir.glob(".*.tmp"))
    assert not run.has_weights()


def test_a_run_that_failed_before_its_first_step_gets_no_words_about_its_chart(tmp_path, monkeypatch, app_caches,
                                                                               small_dataset):
    """A run that failed at once (a walk's, on a device the server lacks) showed "The faint line is the
    loss averaged over each 10 batches…" under its error, with no chart there; a run with steps keeps it."""
    real_open = open

    def opener(path, mode="r", *a, **k):  # the disk full from the first line: no step is logged
        f = real_open(path, mode, *a, **k)
        return _FullDiskLog(f, room=1) if str(path).endswith("metrics.jsonl") and "a" in mode else f

    monkeypatch.setattr(runs_mod, "open", opener, raising=False)
    with pytest.raises(StorageError):
        api.train(TrainConfig(model="logreg", epochs=1, max_steps=20, log_every=2, augment=False), tmp_path,
                  run_id="at-once", dataset=small_dataset)
    monkeypatch.undo()
    api.train(TrainConfig(model="logreg", epochs=1, max_steps=4, log_every=2, augment=False), tmp_path,
              run_id="stepped", dataset=small_dataset)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    from signlab.events import Logged, logged
    from signlab.teach import live_hint

    for run_id in ("at-once", "stepped"):
        run = open_run(run_id, tmp_path)
        assert (run_id == "stepped") == (run.status()["status"] != "failed")
        at = _page("train", {"run": run_id})
        _no_exception(at)
        captions = [c.value for c in at.caption]
        if run_id == "at-once":
            assert not [c for c in captions if c.startswith("The faint line")], captions
        else:
            assert live_hint(run.config, logged(run.metrics(), Logged.EPOCH)) in captions, captions
    # and Runs does not promise its weights "yet"
    at = _page("runs")
    [picker] = [b for b in at.selectbox if b.label == "Run"]
    picker.set_value("at-once").run()
    _no_exception(at)
    infos = [i.value for i in at.info if "weights" in i.value]
    assert infos == ["This run ended before its first epoch, so it has no weights: they are saved at the end of "
                     "each epoch."], infos


def test_cli_disk_full_during_training_exits_2_with_one_line(tmp_path, monkeypatch, capsys, small_dataset):
    _refuse_weights(monkeypatch)
    monkeypatch.setattr(api, "load_dataset", lambda source=None: small_dataset)
    code = cli.main(["train", "--model", "logreg", "--epochs", "1", "--max-steps", "10", "--quiet",
                     "--runs-dir", str(tmp_path)])
    line = _one_line_error(capsys)
    assert code == 2 and "disk is full" in line and "model.safetensors" in line, line
    [run] = list_runs(tmp_path)
    assert run.status()["status"] == "failed"


@pytest.mark.parametrize("kind", ["no-folder", "full-disk"])
def test_train_page_start_with_an_unwritable_runs_folder_shows_a_message(tmp_path, monkeypatch, app_caches, kind):
    if kind == "no-folder":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(blocker / "runs"))
        words = "cannot write"
    else:
        monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setattr(fsutil.os, "replace", _oserror(errno.ENOSPC))
        words = "disk is full"
    at = _page("train", {"model": "logreg", "epochs": "1"})
    _no_exception(at)
    [start] = [b for b in at.button if "Start" in b.label]
    start.click().run()
    _no_exception(at)
    errors = [e.value for e in at.error]
    assert any("Could not start" in e and words in e for e in errors), errors
    assert list_runs(os.environ["SIGNLAB_RUNS_DIR"]) == []


# --------------------------------------------------------------------------- out of memory, divergence
def _cuda_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity)")


def test_out_of_memory_in_a_step_fails_with_a_suggestion_and_the_process_lives(small_dataset):
    from signlab.trainer import FitEnd, Trainer

    cfg = TrainConfig(model="mlp", epochs=1, max_steps=10, batch_size=64, augment=False, log_every=2)
    trainer = Trainer(cfg, build_model(cfg), small_dataset)
    real, calls = trainer.model.forward, []

    def forward(x):
        calls.append(1)
        return _cuda_oom() if len(calls) == 3 else real(x)

    trainer.model.forward = forward
    events = []
    trainer.callbacks.append(lambda e, t: events.append(e))
    end = trainer.fit()
    assert end.status == "failed" and end.epochs_completed == 0
    assert "out of memory" in end.message and "smaller batch" in end.message and "64" in end.message
    assert isinstance(events[-1], FitEnd) and events[-1] == end
    # the process is fine: the next training in it completes
    assert Trainer(cfg, build_model(cfg), small_dataset).fit().status == "completed"


@pytest.fixture
def ended_runs(tmp_path, monkeypatch, small_dataset, capsys):
    """A runs folder with a run that ran out of memory and one that diverged (through the CLI)."""
    with monkeypatch.context() as m:
        real = torch.nn.Linear.forward
        m.setattr(torch.nn.Linear, "forward", lambda self, x: _cuda_oom() if self.training else real(self, x))
        # fp32 asked for: on a CPU with native bf16, ``precision auto`` first times a training pass,
        # which would meet the mocked OOM before training (unless an earlier test cached the verdict)
        record = api.train(TrainConfig(model="mlp", epochs=1, max_steps=10, augment=False, precision="fp32"),
                           tmp_path, run_id="oom", dataset=small_dataset)
    assert record["status"] == "failed" and "smaller batch" in record["message"]
    monkeypatch.setattr(api, "load_dataset", lambda source=None: small_dataset)
    capsys.readouterr()
    code = cli.main(["train", "--model", "mlp", "--optimizer", "sgd", "--lr", "10", "--schedule", "none",
                     "--no-augment", "--batch-size", "32", "--max-steps", "150", "--log-every", "1", "--json",
                     "--quiet", "--runs-dir", str(tmp_path)])
    out = capsys.readouterr()
    ids = {"oom": "oom", "diverged": json.loads(out.out.strip().splitlines()[-1])["run_id"]}
    return tmp_path, code, out, ids


def test_cli_diverging_run_says_so(ended_runs):
    _, code, out, ids = ended_runs
    assert code == 2, out.err
    record = json.loads(out.out.strip().splitlines()[-1])
    assert record["status"] == "diverged" and record["epochs"] == 0
    assert "learning rate" in record["message"] and "10" in record["message"]
    [line] = out.err.strip().splitlines()
    # it says which limit the loss crossed: SGD at lr 10 sends the MLP's loss past 10,000 before NaN
    assert re.match(rf"signlab: run {ids['diverged']} diverged: the loss reached [\d,]+ at step \d+ "
                    r"\(epoch 1\), over the 10,000 past which a run counts as diverged", line), line
    assert "Traceback" not in out.err


@pytest.mark.parametrize("run_id, kind, words", [("oom", "error", ["Training failed", "out of memory",
                                                                    "smaller batch"]),
                                                  ("diverged", "warning", ["Diverged", "smaller learning rate"])])
def test_train_page_shows_how_a_run_ended(ended_runs, monkeypatch, app_caches, run_id, kind, words):
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(ended_runs[0]))
    run_id = ended_runs[3][run_id]
    at = _page("train", {"run": run_id})
    _no_exception(at)
    shown = [e.value for e in getattr(at, kind)]
    assert any(all(w in s for w in words) for s in shown), shown
    assert open_run(run_id, ended_runs[0]).status()["status"] == ("failed" if run_id == "oom" else "diverged")


def test_out_of_memory_while_loading_onto_the_device(tmp_path, monkeypatch, capsys, small_dataset):
    import signlab.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "to_float_images", _cuda_oom)
    with pytest.raises(RunError, match="out of memory") as err:
        api.train(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="oom-load", dataset=small_dataset)
    assert "device cpu" in str(err.value)
    status = open_run("oom-load", tmp_path).status()
    assert status["status"] == "failed" and status["message"] == str(err.value)
    monkeypatch.setattr(api, "load_dataset", lambda source=None: small_dataset)
    assert cli.main(["train", "--model", "logreg", "--quiet", "--runs-dir", str(tmp_path)]) == 2
    assert "out of memory" in _one_line_error(capsys)


# --------------------------------------------------------------------------- out-of-range settings
@pytest.mark.parametrize("option, value, setting", [
    ("--epochs", "201", "--epochs"), ("--batch-size", "0", "--batch-size"), ("--batch-size", "5000", "--batch-size"),
    ("--lr", "0", "--lr"), ("--lr", "nan", "--lr"), ("--lr", "inf", "--lr"), ("--weight-decay", "-0.1", "--weight-decay"),
    ("--weight-decay", "2", "--weight-decay"), ("--seed", "-1", "--seed"), ("--seed", "2147483648", "--seed"),
    ("--epochs", "2.5", "--epochs"), ("--batch-size", "many", "--batch-size")])
def test_cli_out_of_range_setting_is_refused_before_anything_starts(tmp_path, capsys, option, value, setting):
    code = cli.main(["train", "--model", "logreg", option, value, "--runs-dir", str(tmp_path / "runs")])
    line = _one_line_error(capsys)
    # named by the flag the user typed
    assert code == 2 and (line.startswith(f"signlab: {setting}:") or f"argument {setting}:" in line) and value in line, line
    assert not (tmp_path / "runs").exists(), "a run was created for a refused setting"


PAGE_NUMBERS = ("Epochs", "Batch size", "Learning rate", "Weight decay", "Seed")
BAD_LINKS = [
    {"epochs": "0", "batch_size": "99999", "lr": "100", "weight_decay": "2", "seed": "-1", "optimizer": "rmsprop",
     "schedule": "cyclic", "device": "tpu", "model": "resnet9000", "augment": "maybe", "ensemble": "0"},
    {"epochs": "500", "batch_size": "0", "lr": "nan", "weight_decay": "-1", "seed": "3000000000", "preset": "turbo",
     "ensemble": "9", "input_norm": "sharpen"},
    {"epochs": "2.5", "batch_size": "1e3", "lr": "0.0000001", "weight_decay": "inf", "seed": "x"},
]


@pytest.mark.parametrize("link", range(len(BAD_LINKS)))
def test_train_page_link_with_out_of_range_settings(tmp_path, monkeypatch, app_caches, link):
    """The Train page reads its settings from the URL: each bad one is named, none is silently clamped."""
    from signlab.config import RANGES

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    query = BAD_LINKS[link]
    at = _page("train", query)
    _no_exception(at)
    warnings = [w.value for w in at.warning]
    for field, raw in query.items():
        assert any(f"The link's {field}={raw!r}" in w for w in warnings), (field, warnings)
    assert len(warnings) == len(query)
    assert not at.error, [e.value for e in at.error]  # the defaults make a valid config
    names = {"Epochs": "epochs", "Batch size": "batch_size", "Learning rate": "lr", "Weight decay": "weight_decay",
             "Seed": "seed", "Ensemble size": "ensemble", "Label smoothing": "label_smoothing",
             "Bias rate ×": "norm_lr_scale"}
    for box in at.number_input:
        lo, hi = RANGES[names[box.label]]
        assert lo <= box.value <= hi, (box.label, box.value)
    [start] = [b for b in at.button if "Start" in b.label]
    assert not start.disabled
    assert list_runs(tmp_path) == []  # nothing started (the run database may exist, empty)


def test_train_page_link_with_good_settings_applies_them(tmp_path, monkeypatch, app_caches):
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    query = {"model": "mlp", "epochs": "2", "batch_size": "64", "lr": "0.01", "weight_decay": "0",
             "seed": "7", "optimizer": "sgd", "schedule": "cosine", "augment": "false", "device": "cpu",
             "ensemble": "2", "input_norm": "equalize", "label_smoothing": "0", "norm_lr_scale": "1", "tta": "false"}
    at = _page("train", query)
    _no_exception(at)
    assert not at.warning, [w.value for w in at.warning]
    values = {b.label: b.value for b in at.number_input}
    assert values == {"Epochs": 2, "Batch size": 64, "Learning rate": 0.01, "Weight decay": 0.0, "Seed": 7,
                      "Ensemble size": 2, "Label smoothing": 0.0, "Bias rate ×": 1.0}
    assert {t.label: t.value for t in at.toggle} == {"Augmentation": False, "Test-time shifts": False}
    assert {s.label: s.value for s in at.selectbox if s.label in ("Architecture", "Optimizer", "Schedule",
                                                                  "Device", "Input normalisation")} == {
        "Architecture": "mlp", "Optimizer": "sgd", "Schedule": "cosine", "Device": "cpu",
        "Input normalisation": "equalize"}


# --------------------------------------------------------------------------- bad uploads, bad data files
def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height``: a decompression bomb as PIL first sees it."""
    import struct
    import zlib

    data = bytearray(_encode(Image.new("L", (1, 1))))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _uploads() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, "error", "prediction" or "nothing" (a blank image), words the message or a note must hold)."""
    rng = np.random.default_rng(0)
    png = _encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    frames = [Image.new("L", (40, 40), v) for v in (30, 220, 128)]
    hand = Image.linear_gradient("L").resize((96, 96)).rotate(30)
    return {
        "empty.png": (b"", "error", "the file is empty"),
        "truncated.png": (png[: len(png) // 2], "error", "truncated or corrupt"),
        "bomb.png": (_png_claiming(60000, 60000), "error", "more pixels than the 50 megapixels"),
        "big-claim.png": (_png_claiming(8000, 8000), "error", "too large"),
        "oversize.jpg": (b"\xff\xd8" + b"\0" * MAX_FILE_BYTES, "error", "over the limit of 20 MB"),
        "animated.gif": (_encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
                         "nothing", "3 frames"),  # its first frame is one flat shade
        "cmyk.jpg": (_encode(hand.convert("CMYK"), "JPEG", quality=90), "prediction", ""),
        "one-pixel.png": (_encode(Image.new("RGB", (1, 1), (200, 150, 100))), "nothing", ""),
        # visibly not flat, but grey once shrunk: the message says it is flat at the model's size
        "noise.png": (_encode(Image.fromarray(rng.integers(0, 256, (750, 1000, 3), dtype=np.uint8))), "nothing", ""),
        "huge.png": (_encode(Image.linear_gradient("L").resize((6000, 6000)), compress_level=1), "prediction",
                     "reduced to 512 pixels on its longer side"),
        "../../../../etc/passwd.png": (_encode(hand), "prediction", ""),
    }


@pytest.fixture(scope="module")
def classify_runs(tmp_path_factory, dataset):
    root = tmp_path_factory.mktemp("reliability-classify")
    api.train(TrainConfig(model="logreg", epochs=1, max_steps=20, augment=False), root, run_id="tiny",
              dataset=dataset, evaluate_test=False)
    return root


def test_classify_page_bad_uploads_give_a_message_or_a_prediction(classify_runs, monkeypatch, app_caches):
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(classify_runs))
    before = sorted(p.name for p in classify_runs.parent.iterdir())
    at = _page("classify")
    _no_exception(at)
    at.session_state["classify_source"] = "📁 Upload"
    at.run()
    for name, (data, outcome, words) in _uploads().items():
        at.get("file_uploader")[0].upload(name, data, "application/octet-stream").run()
        _no_exception(at)
        errors = [read_md(e.value) for e in at.error]  # as it reads: the file's name is escaped
        verdicts = [m.value for m in at.markdown if m.value.startswith("####")]
        notes = [c.value for c in at.caption if c.value.startswith("Note:")]
        if outcome == "error":
            assert len(errors) == 1 and not verdicts, (name, errors, verdicts)
            assert errors[0].startswith(f"Cannot use this image: {name}: ") and words in errors[0], errors[0]
        elif outcome == "nothing":
            assert not errors and not verdicts and any("Nothing to classify" in i.value for i in at.info), name
            assert any("Shrunk to the 28×28 pixels the model sees" in i.value for i in at.info), name
            assert not words or any(words in n for n in notes), (name, notes)
        else:
            assert not errors and len(verdicts) == 1, (name, errors, verdicts)
            assert not words or any(words in n for n in notes), (name, notes)
    assert sorted(p.name for p in classify_runs.parent.iterdir()) == before  # the names wrote nothing


def test_bad_images_keep_memory_bounded(tmp_path):
    """Peak memory of the one preprocessing path on the largest images it accepts, and on bombs it refuses."""
    big = tmp_path / "big.png"
    Image.linear_gradient("L").resize((6000, 6000)).convert("RGB").save(big, compress_level=1)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60000, 60000))
    script = f"""
import json
from signlab.errors import ImageError
from signlab.preprocess import prepare
def kb(key):
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))
out = {{}}
for name in ({str(bomb)!r}, {str(big)!r}):
    data = open(name, 'rb').read()
    base = kb('VmRSS')
    open('/proc/self/clear_refs', 'w').write('5')  # the peak starts again from here
    try:
        prepare(data, name)
        result = 'ok'
    except ImageError as err:
        result = str(err)
    out[name] = [result, (kb('VmHWM') - base) / 1024]
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "more pixels than the 50 megapixels" in r[str(bomb)][0] and r[str(bomb)][1] < 20, r  # refused before decoding
    # 6000x6000 RGB decodes to 144 MB (4 bytes a pixel); one more full-size copy would be 288 MB
    assert r[str(big)][0] == "ok" and r[str(big)][1] < 200, r


def test_upload_cap_in_config_and_in_code():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 1024 * 1024 == MAX_FILE_BYTES  # Streamlit counts MB as 2**20 B
    at_cap = b"\0" * MAX_FILE_BYTES
    with pytest.raises(ImageError, match="not an image"):  # the cap itself is allowed through to the decoder
        prepare(at_cap, "cap.png")
    with pytest.raises(ImageError, match="over the limit of 20 MB"):
        prepare(at_cap + b"\0", "over.png")



@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_data_file_through_the_cli(case, tmp_path, data_env, capsys):
    text, pattern = MALFORMED[case]
    bad = tmp_path / f"{case}.csv"
    bad.write_text(text)
    code = cli.main(["train", "--model", "logreg", "--data", f"{bad},{bad}", "--quiet",
                     "--runs-dir", str(tmp_path / "runs")])
    line = _one_line_error(capsys)
    assert code == 2 and str(bad) in line and re.search(pattern, line), line
    assert all(not r.has_weights() and r.status()["status"] == "failed" for r in list_runs(tmp_path / "runs"))


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_data_file_on_the_pages(case, tmp_path, data_env, monkeypatch):
    """The app takes a dataset from SIGNLAB_DATA (no page uploads one): Home and Data say what is wrong."""
    text, pattern = MALFORMED[case]
    bad = tmp_path / f"{case}.csv"
    bad.write_text(text)
    monkeypatch.setenv("SIGNLAB_DATA", f"{bad},{bad}")
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path / "runs"))
    for page in ("home", "data"):
        at = _page(page)
        _no_exception(at)
        [error] = [read_md(e.value) for e in at.error]  # as it reads: the path is escaped
        assert error.startswith("Cannot load the dataset: ") and str(bad) in error and re.search(pattern, error), error


# --------------------------------------------------------------------------- names that try to leave the runs folder
def test_user_supplied_run_ids_stay_inside_the_runs_folder(tmp_path, capsys, monkeypatch, app_caches):
    root = tmp_path / "runs"
    run = create_run(TrainConfig(model="logreg"), root, run_id="mine", status="completed")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps(TrainConfig(model="logreg").to_dict()))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    # a planted symlink is never listed: the Runs page could otherwise rename (write) through it
    assert [r.id for r in list_runs(root)] == ["mine"]
    jm = JobManager(root, limit=1)
    for bad in ("../outside", "escape", "/etc", "mine/../../outside"):
        with pytest.raises(RunError):
            jm.submit_continue(bad, 1)
        assert cli.main(["train", "--resume", bad, "--runs-dir", str(root)]) == 2
        assert bad in _one_line_error(capsys)
        with pytest.raises(RunError):
            runs_mod.delete_run(bad, root)
    # a display name is only ever data in meta.json
    run.rename("../../outside/evil")
    assert run.name == "../../outside/evil" and sorted(p.name for p in outside.iterdir()) == ["config.json"]
    # a run id in a page's link that points outside opens nothing
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    for bad in ("../outside", "escape", "%2e%2e%2foutside"):
        at = _page("train", {"run": bad})
        _no_exception(at)
        assert not any("Run " in s.value for s in at.subheader)  # no run is shown
    assert sorted(p.name for p in outside.iterdir()) == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "runs"]


@pytest.mark.parametrize("args", [
    ["train", "--resume", ""], ["predict", "some-run", ""], ["calibrate", "some-run", ""], ["evaluate", ""],
    ["runs", "--runs-dir", ""], ["runs", "--db", " "], ["export", "some-run", "--out", ""],
    ["train", "--model", "logreg", "--data", ""], ["sweep", "--study", ""], ["sweep", "--storage", ""],
])
def test_an_empty_argument_is_refused_not_taken_as_left_out(tmp_path, capsys, monkeypatch, args):
    """`train --resume ""` trained a new 2-epoch run, `predict RUN ""` read the current folder and
    `--runs-dir ""` meant the project's runs/: an empty value read as no value. Each is refused."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    assert cli.main(args) == 2
    line = _one_line_error(capsys)
    assert "is empty" in line, line
    assert not any(tmp_path.iterdir())  # refused before anything was made: no run, no database


def test_an_empty_runs_folder_variable_is_the_default(monkeypatch, tmp_path):
    """SIGNLAB_RUNS_DIR set but empty made the current folder the runs folder (a signlab.db appeared
    in the project's root); empty is unset."""
    from signlab.paths import PROJECT_ROOT, default_runs_dir

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", "")
    assert default_runs_dir() == PROJECT_ROOT / "runs"
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    assert default_runs_dir() == tmp_path


def test_train_page_link_names_a_key_it_does_not_know(tmp_path, monkeypatch, app_caches):
    """A misspelt key (epoch=5 for epochs) kept the preset's 2 epochs without a word."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _page("train", {"epoch": "5", "run": "nothing-yet"})
    _no_exception(at)
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("The link's epoch='5' is not a setting of the Train page; it is left out.") for w in warnings), \
        warnings
    assert not any("run=" in w for w in warnings), warnings


def test_the_lecture_logistic_regression_hint_sets_its_epochs_at_a_click(tmp_path, monkeypatch, app_caches):
    """The Train page said "set Epochs to 2 to train it as the lecture did" beside a box left at 10: a
    student's walk trained 10 epochs after reading it. A button beside the words sets them."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _page("train", {"preset": "lecture", "model": "logreg"})
    _no_exception(at)
    assert at.number_input(key="cfg_epochs").value == 10
    at.button(key="train_lecture_epochs").click().run()
    _no_exception(at)
    assert at.number_input(key="cfg_epochs").value == 2
    assert not [b for b in at.button if b.key == "train_lecture_epochs"]  # the hint is gone with its reason


@pytest.mark.parametrize("model, epochs", [("logreg", 2), ("seed_convnet", 10)])
def test_a_lecture_network_under_the_fast_preset_offers_the_lectures_settings(tmp_path, monkeypatch, app_caches,
                                                                              model, epochs):
    """A student told to start with logistic regression picked it under the fast preset and trained it
    with augmentation, label smoothing, one-cycle and test-time shifts, and the page then explained a loss
    floor the lecture never had. The page says so, and a button puts the lecture's settings in, the
    network kept, at the lecture's epochs for it."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _page("train", {"preset": "fast", "model": model})
    _no_exception(at)
    assert ("These settings train the " + ("logistic regression" if model == "logreg" else "lecture's ConvNet")
            + " with augmentation, label smoothing, a one-cycle schedule and test-time shifts. The lecture trained it "
            f"plainly: Adam at 0.001, batches of 32, {epochs} epochs.") in [c.value for c in at.caption]
    at.button(key="train_lecture_settings").click().run()
    _no_exception(at)
    assert at.selectbox(key="cfg_preset").value == "lecture" and at.selectbox(key="cfg_model").value == model
    assert at.number_input(key="cfg_epochs").value == epochs and at.number_input(key="cfg_batch_size").value == 32
    assert not [b for b in at.button if b.key == "train_lecture_settings"]  # its reason is gone
    custom = [c.value for c in at.caption if c.value.startswith("✏️ Custom")]
    # the lecture trained logistic regression too, at its own 2 epochs: not "Custom" right after the button
    # that put the lecture's settings in (and Runs calls such a run "lecture"); other epochs are a change
    assert custom == []
    if model == "logreg":
        at.number_input(key="cfg_epochs").set_value(5).run()
        assert [c.value for c in at.caption if c.value.startswith("✏️ Custom")] == [
            "✏️ Custom: Epochs changed from the lecture preset."]
    at = _page("train", {"preset": "fast", "model": "s2net"})
    assert not [b for b in at.button if b.key == "train_lecture_settings"]  # the preset's own network: no word
