"""The command line keeps what is saved and answers bad input in one line (exit 2), in process:
each case a review of the CLI found (a file overwritten, a traceback, an option silently ignored,
a limit carried into a later run).

test_cli.py runs the commands in fresh interpreters; these call ``cli.main`` on runs trained on a
slice of the dataset, so they take seconds.
"""
from __future__ import annotations

import json
import os
import re
import pickle

import numpy as np
import pytest

from signlab import access, api, cli
from signlab.config import TrainConfig
from signlab.errors import ConfigError, DataError, SignlabError
from signlab.runs import open_run
from tests._local import optional


def _one_line(capsys, code: int, *words: str) -> str:
    """The command exited 2 with one line on stderr naming ``words``; that line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert lines[0].startswith("signlab: ") and not lines[0].startswith("signlab: signlab"), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture
def small_data(monkeypatch, small_dataset):
    """Commands in this process train and evaluate on the small slice of the dataset."""
    monkeypatch.setattr(api, "load_dataset", lambda source=None: small_dataset)
    return small_dataset


@pytest.fixture
def run(tmp_path, small_data):
    record = api.train(TrainConfig(model="logreg", epochs=1, max_steps=5, augment=False), tmp_path / "runs",
                       run_id="r1", dataset=small_data, evaluate_test=False)
    assert record["status"] == "completed"
    return open_run("r1", tmp_path / "runs")


# --------------------------------------------------------------------------- export
def test_export_never_overwrites_a_run_file_or_an_existing_file(run, tmp_path, capsys):
    weights = (run.dir / "model.safetensors").read_bytes()
    for target in (run.dir / "model.safetensors", run.dir / "config.json", run.dir.parent / "signlab.db",
                   run.dir.parent / "other.onnx"):
        before = target.read_bytes() if target.exists() else None
        code = cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--out", str(target)])
        _one_line(capsys, code, "--out", "inside the runs folder")
        assert (target.read_bytes() if target.exists() else None) == before
    assert (run.dir / "model.safetensors").read_bytes() == weights
    mine = tmp_path / "mine.onnx"
    mine.write_text("a file the user keeps")
    code = cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--out", str(mine)])
    _one_line(capsys, code, "already exists", "--force")
    assert mine.read_text() == "a file the user keeps"
    code = cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--out", str(tmp_path)])
    _one_line(capsys, code, "is a folder")
    assert cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--out", str(mine), "--force"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(mine) and mine.stat().st_size > 1000
    assert out.err == ""  # no exporter warnings for the user to puzzle over
    assert cli.main(["export", "r1", "--runs-dir", str(run.dir.parent)]) == 0  # the run's own model.onnx, again
    assert cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--format", "ONNX"]) == 0  # any case
    assert (run.dir / "model.onnx").is_file()


def test_export_keeps_out_of_the_runs_folder_whichever_way_the_run_is_named(run, tmp_path, capsys, monkeypatch):
    """A run given as a copy's folder passed the check (only the folder holding the copy was guarded),
    and its export replaced another run's weights with ONNX bytes. ``--out exports/`` wrote a file
    named ``exports``; a path that is not UTF-8 ended in the exporter's 300-line traceback; a path
    that cannot be written told the user to choose a writable runs folder."""
    import shutil

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(run.dir.parent))
    copy = tmp_path / "copies" / "r1"
    shutil.copytree(run.dir, copy)
    weights = (run.dir / "model.safetensors").read_bytes()
    for target in (run.dir / "model.safetensors", run.dir.parent / "signlab.db"):
        code = cli.main(["export", str(copy), "--out", str(target), "--force"])
        _one_line(capsys, code, "--out", "inside the runs folder")
    assert (run.dir / "model.safetensors").read_bytes() == weights
    database = tmp_path / "class.db"
    monkeypatch.setenv("SIGNLAB_DB", str(database))
    database.write_bytes(b"the class's runs")
    _one_line(capsys, cli.main(["export", str(copy), "--out", str(database), "--force"]), "is the run database")
    assert database.read_bytes() == b"the class's runs"
    monkeypatch.delenv("SIGNLAB_DB")
    for slash in ("exports/", str(tmp_path / "exports") + "/"):
        _one_line(capsys, cli.main(["export", "r1", "--out", slash]), "--out", "names a folder")
        assert not (tmp_path / "exports").exists() and not os.path.exists("exports")
    latin = os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.onnx")  # a Latin-1 name on a UTF-8 system
    import io
    import sys

    with monkeypatch.context() as m:  # a terminal's stdout: UTF-8, strict
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        m.setattr(sys, "stdout", stdout)
        assert cli.main(["export", "r1", "--out", latin]) == 0
        stdout.flush()
        assert stdout.buffer.getvalue() == os.fsencode(latin) + b"\n"
    assert os.path.getsize(latin) > 1000
    capsys.readouterr()
    if os.path.isdir("/sys/kernel"):  # a read-only place, for root too
        line = _one_line(capsys, cli.main(["export", "r1", "--out", "/sys/kernel/r1.onnx"]), "cannot write here")
        assert line.endswith("choose another --out"), line


def test_export_never_replaces_a_link_to_nowhere_unasked(run, tmp_path, capsys):
    """A link whose target is gone does not 'exist' to Path.exists(): export replaced it with the file."""
    link = tmp_path / "latest.onnx"
    link.symlink_to(tmp_path / "moved-away" / "model.onnx")
    _one_line(capsys, cli.main(["export", "r1", "--runs-dir", str(run.dir.parent), "--out", str(link)]),
              "already exists", "--force")
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "moved-away" / "model.onnx")


def test_a_line_break_inside_a_value_keeps_the_problem_on_the_one_line(run, capsys):
    """The one error line was the message's first line: a value holding a line break (a pasted path)
    cut it before the problem was said ("signlab: /tmp/x"). Control characters are spaces now."""
    root = str(run.dir.parent)
    line = _one_line(capsys, cli.main(["runs", "--runs-dir", root, "--db", "/tmp/x\ny.db"]))
    assert line == "signlab: --db: /tmp/x y.db does not exist"
    line = _one_line(capsys, cli.main(["predict", "nosuch\u2028", "a.png", "--runs-dir", root]))
    assert line.endswith("is not a valid run id (letters, digits, '-', '_' and '.' only)"), line


def test_a_blank_runs_folder_variable_is_unset(monkeypatch, tmp_path):
    """SIGNLAB_RUNS_DIR="   ": `runs` said the folder did not exist while `train` made a folder named
    three spaces in the current folder. Blank is unset, as empty was."""
    from signlab import paths

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", "   ")
    assert paths.default_runs_dir() == paths.PROJECT_ROOT / "runs"
    assert paths.runs_dir_problem(must_exist=False) is None


def test_export_never_replaces_a_device_or_a_pipe(run, tmp_path, capsys):
    """Run as root, `export --out /dev/null --force` replaced the machine's /dev/null with a file
    (the atomic write renames over whatever is at --out)."""
    import socket
    import stat

    # a pipe and a socket stand in for a device: a regression must not replace the machine's /dev/null
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    root = str(run.dir.parent)
    try:
        for name in ("pipe", "sock"):
            code = cli.main(["export", "r1", "--runs-dir", root, "--out", str(tmp_path / name), "--force"])
            _one_line(capsys, code, "--out", name, "is not a file")
    finally:
        sock.close()
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode) and stat.S_ISSOCK(os.stat(tmp_path / "sock").st_mode)


def test_a_path_name_too_long_for_the_file_system_is_one_line(run, tmp_path, capsys, monkeypatch):
    """Python 3.11's Path.exists() and is_dir() raise on a name over 255 bytes: export, evaluate,
    calibrate, --db and --runs-dir (and train --data) each printed a traceback and exited 1."""
    monkeypatch.setenv("SIGNLAB_DB", "")
    long = str(tmp_path / ("a" * 300))
    root = str(run.dir.parent)
    for command in (["export", "r1", "--runs-dir", root, "--out", long + ".onnx"], ["evaluate", long],
                    ["runs", "--runs-dir", root, "--db", long + ".db"], ["calibrate", "r1", long, "--runs-dir", root],
                    ["runs", "--runs-dir", long]):
        _one_line(capsys, cli.main(command), long)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", long)  # and every page says so, rather than stopping
    _dashboard_refuses(monkeypatch, long, "SIGNLAB_RUNS_DIR", "File name too long")


def test_commands_on_runs_refuse_a_mistyped_database_file(run, tmp_path, capsys, monkeypatch):
    """`stop RUN --db typo.db` made an empty database and answered from it ("nothing to stop: the
    run is interrupted") while the run stayed queued in the real one. Only the commands that make
    runs may start a new database file."""
    monkeypatch.setenv("SIGNLAB_DB", "")
    root, typo = str(run.dir.parent), str(tmp_path / "typo.db")
    for command in (["stop", "r1"], ["pause", "r1"], ["resume", "r1"], ["next", "r1"], ["rename", "r1", "x"],
                    ["delete", "r1"], ["evaluate", "r1"], ["export", "r1"], ["predict", "r1", "a.png"]):
        _one_line(capsys, cli.main([*command, "--runs-dir", root, "--db", typo]), "--db", typo, "does not exist")
        assert not os.path.exists(typo)
    assert open_run("r1", root).name != "x" and (run.dir / "model.safetensors").is_file()
    # the same mistake in SIGNLAB_DB (it was checked for its folder only)
    monkeypatch.setenv("SIGNLAB_DB", typo)
    for command in (["stop", "r1"], ["runs"], ["evaluate", "r1"]):
        _one_line(capsys, cli.main([*command, "--runs-dir", root]), "SIGNLAB_DB", typo, "does not exist")
        assert not os.path.exists(typo)
    fresh = str(tmp_path / "class.db")  # train starts one
    monkeypatch.setenv("SIGNLAB_DB", "")
    assert cli.main(["train", "--queue", "--model", "logreg", "--runs-dir", root, "--db", fresh, "--json"]) == 0
    assert os.path.isfile(fresh)
    monkeypatch.setenv("SIGNLAB_DB", fresh)  # and once it exists, it is read
    assert cli.main(["runs", "--runs-dir", root, "--json"]) == 0


def test_an_unwritable_cache_only_costs_speed(tmp_path, monkeypatch):
    """The parsed-data cache under a file (SIGNLAB_CACHE=/etc/passwd) stopped every `train` with
    "cannot write (Not a directory)": the cache's own error handling missed the StorageError that
    atomic writes raise."""
    from signlab.data import load_split

    monkeypatch.setenv("SIGNLAB_CACHE", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a folder")
    csv = tmp_path / "t.csv"
    csv.write_text("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n3" + ",7" * 784 + "\n")
    split = load_split(str(csv))
    assert split.targets.tolist() == [3] and int(split.images[0, 0, 0]) == 7


# --------------------------------------------------------------------------- predict, calibrate, runs, evaluate
def test_paths_of_the_wrong_kind_are_named(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIGNLAB_DB", "")  # --db sets it for the process (as SIGNLAB_DB): put back after
    root = str(run.dir.parent)
    _one_line(capsys, cli.main(["predict", "r1", str(tmp_path), "--runs-dir", root]), str(tmp_path), "is a folder")
    # a device or a pipe: `predict RUN /dev/zero` read until the machine ran out of memory (a pipe waits forever)
    _one_line(capsys, cli.main(["predict", "r1", "/dev/null", "--runs-dir", root]), "/dev/null", "is not a file")
    os.mkfifo(tmp_path / "pipe")
    _one_line(capsys, cli.main(["predict", "r1", str(tmp_path / "pipe"), "--runs-dir", root]), "pipe", "is not a file")
    photo = tmp_path / "a.png"
    photo.write_bytes(b"\x89PNG")
    _one_line(capsys, cli.main(["calibrate", "r1", str(photo), "--runs-dir", root]), "is a file")
    _one_line(capsys, cli.main(["runs", "--runs-dir", str(tmp_path / "nowhere")]), "--runs-dir", "does not exist")
    _one_line(capsys, cli.main(["runs", "--runs-dir", str(photo)]), "--runs-dir", "is not a folder")
    # the same setting from the environment, named as such (a file there: "…/a.png/signlab.db: cannot write")
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(photo))
    _one_line(capsys, cli.main(["train", "--epochs", "1"]), "SIGNLAB_RUNS_DIR", "is not a folder")
    _dashboard_refuses(monkeypatch, photo, "SIGNLAB_RUNS_DIR", "is not a folder")  # and every page says so
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path / "nowhere"))
    _one_line(capsys, cli.main(["runs"]), "SIGNLAB_RUNS_DIR", "does not exist")
    monkeypatch.delenv("SIGNLAB_RUNS_DIR")
    # a mistyped database file: it was made, empty, and every run listed as interrupted
    _one_line(capsys, cli.main(["runs", "--runs-dir", root, "--db", str(tmp_path / "typo.db")]), "--db", "does not exist")
    assert not (tmp_path / "typo.db").exists()
    # a kind of database SQLAlchemy does not know, for a command that opens no run database too
    for command in (["runs"], ["evaluate", "r1"], ["export", "r1"]):
        _one_line(capsys, cli.main([*command, "--runs-dir", root, "--db", "foo://bar"]), "unknown kind of database 'foo'")
    # a URL SQLAlchemy cannot even read (a port that is not a number raised ValueError: a traceback)
    monkeypatch.setenv("SIGNLAB_DB", "postgresql://u@h:abc/db")
    _one_line(capsys, cli.main(["models"]), "SIGNLAB_DB or --db", "not a file path or a database URL")
    monkeypatch.setenv("SIGNLAB_DB", "")
    assert cli.main(["runs", "--runs-dir", root, "--db", str(run.dir.parent / "signlab.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] != "interrupted"
    _one_line(capsys, cli.main(["evaluate", str(tmp_path / "gone" / "run"), "--runs-dir", root]),
              "no such run directory")
    _one_line(capsys, cli.main(["train", "--epochs", "many"]), "train: argument --epochs")


def test_a_fractional_label_is_quoted_as_written(tmp_path, capsys):
    csv = tmp_path / "float.csv"
    csv.write_text("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n1.5" + ",0" * 784 + "\n")
    code = cli.main(["train", "--data", f"{csv},{csv}", "--runs-dir", str(tmp_path / "runs")])
    line = _one_line(capsys, code, "float.csv", "line 2", "'1.5' is not a whole number")
    assert "np.float64" not in line
    assert not (tmp_path / "runs").exists() or [p.name for p in (tmp_path / "runs").iterdir()
                                                 if not p.name.startswith("signlab.db")] == []


# --------------------------------------------------------------------------- train --resume
def test_a_dry_run_limit_is_not_carried_into_a_continuation(run, small_data, capsys):
    assert run.config.max_steps == 5
    steps_per_epoch = -(-len(small_data.train) // run.config.batch_size)
    code = cli.main(["train", "--resume", "r1", "--runs-dir", str(run.dir.parent), "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["status"] == "completed" and record["epochs"] == 2
    config = json.loads((run.dir / "config.json").read_text())
    assert config["epochs"] == 2 and config["max_steps"] is None
    second = [m for m in run.metrics() if m["type"] == "batch" and m["epoch"] == 2]
    # a whole epoch (the continuation counts its own steps), not the 5 steps of the first dry run
    assert second and max(m["step"] for m in second) == steps_per_epoch and second[-1]["progress"] == 1.0
    # a continuation's own limit applies to it alone
    code = cli.main(["train", "--resume", "r1", "--max-steps", "3", "--runs-dir", str(run.dir.parent), "--quiet"])
    assert code == 0
    assert json.loads((run.dir / "config.json").read_text())["max_steps"] is None


def _train_signalled(monkeypatch, capsys, root: str, signum: int, sent: dict) -> tuple[int, dict, object]:
    """`train` of 2 logreg epochs that sends itself ``signum`` at the steps of ``sent["at"]`` (step:
    how many times; changed between calls by the caller), from the progress bar's place. Returns
    (exit code, the --json record, the captured output)."""
    import os

    from signlab.events import BatchEnd

    class Send:
        def __call__(self, event, trainer):
            if isinstance(event, BatchEnd):
                for _ in range(sent["at"].get(event.step, 0)):
                    os.kill(os.getpid(), signum)

    monkeypatch.setattr(cli, "ProgressBar", Send)
    code = cli.main(["train", "--model", "logreg", "--epochs", "2", "--log-every", "1", "--json", "--runs-dir", root])
    out = capsys.readouterr()
    return code, json.loads(out.out.strip().splitlines()[-1]), out


def test_ctrl_c_stops_a_run_as_stop_does_and_a_second_quits(small_data, tmp_path, capsys, monkeypatch,
                                                            ctrl_c_reaches_python):
    """Ctrl-C on `train` printed "signlab: interrupted" and left the run "running" under a claim
    nobody held, so `train --resume` was refused until the lease ran out. The first Ctrl-C stops it
    after the step, keeping its finished epochs; a second one quits at once."""
    import os
    import signal

    from signlab.runs import list_runs, open_run

    presses = {"at": {20: 1}}  # step: times pressed; in epoch 2 (16 steps an epoch: 2,000 images, batches of 128)
    handler = signal.getsignal(signal.SIGINT)
    root = str(tmp_path / "runs")
    code, record, out = _train_signalled(monkeypatch, capsys, root, signal.SIGINT, presses)
    assert code == 0 and (record["status"], record["message"]) == ("stopped", "stopped with Ctrl-C during epoch 2")
    assert record["epochs"] == 1
    assert "Ctrl-C again to quit at once" in out.err and "Traceback" not in out.err
    assert signal.getsignal(signal.SIGINT) is handler  # given back
    run = open_run(record["run_id"], root)
    assert str(run.status()["status"]) == "stopped"  # nothing held: it can be continued at once
    presses["at"] = {2: 2}  # pressed twice: the fit ends at once, and the command says so
    code = cli.main(["train", "--resume", record["run_id"], "--runs-dir", root])  # its own log_every: 1
    err = capsys.readouterr().err
    assert code == 1 and err.strip().endswith("signlab: interrupted"), (code, err)
    assert signal.getsignal(signal.SIGINT) is handler
    # and lets the run go, its finished epoch kept (it stayed "running" until the lease ran out)
    row = run.status()
    assert (str(row["status"]), row["message"]) == ("stopped", "its process was told to quit at once; the weights "
                                                               "of epoch 1 are kept"), row
    # pressed while the data loads, before any run is made: nothing to stop, so it quits at once
    presses["at"] = {}

    def loading(source=None):
        os.kill(os.getpid(), signal.SIGINT)
        return small_data

    monkeypatch.setattr(api, "load_dataset", loading)
    code = cli.main(["train", "--model", "logreg", "--runs-dir", root, "--quiet"])
    assert code == 1 and capsys.readouterr().err.strip() == "signlab: interrupted"
    assert [r.id for r in list_runs(root)] == [record["run_id"]]  # no run made


def test_sigterm_stops_a_train_as_a_first_ctrl_c_does(small_data, tmp_path, capsys, monkeypatch):
    """`kill` (SIGTERM) on `train` ended it at once with exit 143 and nothing said; the run read
    "running" until its lease ran out, and `train --resume` was refused meanwhile, naming a dead
    process. Now it stops after the step, its record printed, and can be continued at once."""
    import signal

    from signlab.runs import open_run

    handler = signal.getsignal(signal.SIGTERM)
    root = str(tmp_path / "runs")
    # at step 20, in epoch 2: a process manager stopping the command
    code, record, out = _train_signalled(monkeypatch, capsys, root, signal.SIGTERM, {"at": {20: 1}})
    assert code == 0 and (record["status"], record["message"], record["epochs"]) == (
        "stopped", "stopped by a termination signal (SIGTERM) during epoch 2", 1), record
    assert signal.getsignal(signal.SIGTERM) is handler and "Traceback" not in out.err
    assert str(open_run(record["run_id"], root).status()["status"]) == "stopped"  # nothing held
    monkeypatch.setattr(cli, "ProgressBar", lambda: (lambda event, trainer: None))
    assert cli.main(["train", "--resume", record["run_id"], "--runs-dir", root, "--quiet"]) == 0


def test_a_continuation_after_a_torn_last_line_keeps_its_own_records(run, capsys):
    """A writer killed mid-line leaves metrics.jsonl without its last newline; the next fit appended
    its fit_start to the torn line, and the reader skipped both as one unreadable line."""
    log = run.dir / "metrics.jsonl"
    log.write_bytes(log.read_bytes()[:-20])  # the fit_end, cut
    assert cli.main(["train", "--resume", "r1", "--runs-dir", str(run.dir.parent), "--quiet"]) == 0
    kinds = [m["type"] for m in run.metrics()]
    # the first fit's end is lost with its torn line; the continuation's every record is read
    assert kinds[0] == "fit_start" and kinds.count("fit_start") == 2 and kinds[-1] == "fit_end", kinds


def test_a_resume_refused_for_its_device_or_its_data_leaves_the_run_as_it_was(run, capsys, monkeypatch):
    """`train --resume R --device cuda` on a machine without a GPU, and a resume of a run whose data
    folder was moved, were refused after the run was claimed: the completed run turned failed, and its
    config.json said cuda and an epoch it never trained."""
    import torch

    from signlab import data

    monkeypatch.setattr(api, "load_dataset", data.load_dataset)  # the real one: it reads the run's data setting

    root = str(run.dir.parent)
    before = (run.status()["status"], run.status()["message"])
    settings = (run.dir / "config.json").read_bytes()
    if not torch.cuda.is_available():
        code = cli.main(["train", "--resume", "r1", "--device", "cuda", "--runs-dir", root, "--quiet"])
        _one_line(capsys, code, "device: CUDA was asked for")
        assert (run.status()["status"], run.status()["message"]) == before
        assert (run.dir / "config.json").read_bytes() == settings
    moved = json.loads(settings)
    moved["data"] = str(run.dir.parent / "moved-away")
    (run.dir / "config.json").write_text(json.dumps(moved))
    settings = (run.dir / "config.json").read_bytes()
    code = cli.main(["train", "--resume", "r1", "--runs-dir", root, "--quiet"])
    _one_line(capsys, code, "moved-away")
    assert (run.status()["status"], run.status()["message"]) == before
    assert (run.dir / "config.json").read_bytes() == settings
    # a continuation queued from the dashboard, taken by a worker, fails on the missing data, and its
    # settings still say the epochs it has (the new total was written before the data was looked for)
    run.store.enqueue_continue("r1", 1)
    claim = run.store.claim("w", 1, run_id="r1")
    with pytest.raises(SignlabError, match="moved-away"):
        api.train_claimed(run, claim)
    assert (run.dir / "config.json").read_bytes() == settings


@pytest.mark.parametrize("args, words", [
    (["--model", "mlp"], ["--model", "--resume"]),
    (["--batch-size", "7", "--data", "elsewhere"], ["--batch-size", "--data"]),
    (["--preset", "lecture"], ["--preset"]),
    (["--epochs", "0"], ["--epochs", "0 is out of range"]),
])
def test_resume_refuses_what_it_would_ignore(run, capsys, args, words):
    config = (run.dir / "config.json").read_bytes()
    code = cli.main(["train", "--resume", "r1", "--runs-dir", str(run.dir.parent), *args])
    _one_line(capsys, code, *words)
    assert (run.dir / "config.json").read_bytes() == config
    assert run.status()["status"] == "completed"


def test_resume_of_weights_that_do_not_fit_the_config_changes_nothing(run, capsys):
    config = json.loads((run.dir / "config.json").read_text())
    (run.dir / "config.json").write_text(json.dumps({**config, "model": "mlp"}))
    saved = (run.dir / "config.json").read_bytes()
    code = cli.main(["train", "--resume", "r1", "--runs-dir", str(run.dir.parent)])
    _one_line(capsys, code, "model.safetensors does not fit model mlp")
    assert (run.dir / "config.json").read_bytes() == saved  # not rewritten with more epochs
    assert run.status()["status"] == "completed"  # not marked failed


def test_a_continuation_past_the_epochs_range_is_refused_before_the_run_is_touched(run, capsys):
    """A completed 1-epoch run continued for 200 was claimed, then failed on "epochs: 201 is out of
    range": its "completed" was lost. The total is checked first, on the command line and the page's path."""
    from signlab.errors import RunError
    from signlab.jobs import JobManager

    config = (run.dir / "config.json").read_bytes()
    code = cli.main(["train", "--resume", "r1", "--epochs", "200", "--runs-dir", str(run.dir.parent)])
    _one_line(capsys, code, "run r1 has trained 1 epoch; 200 more would make 201, over the 200 a run may have",
              "continue it for at most 199")
    jm = JobManager(run.dir.parent, limit=1, start_workers=False)
    with pytest.raises(RunError, match="at most 199"):
        jm.submit_continue("r1", 200)
    assert (run.dir / "config.json").read_bytes() == config
    assert run.status()["status"] == "completed" and run.epochs_completed() == 1
    assert jm.queued() == []


def test_a_diverging_run_is_reported_once(tmp_path, small_data, capsys):
    code = cli.main(["train", "--model", "mlp", "--optimizer", "sgd", "--lr", "10", "--schedule", "none",
                     "--no-augment", "--batch-size", "32", "--max-steps", "150", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert len([line for line in err.splitlines() if "diverged" in line]) == 1, err


# --------------------------------------------------------------------------- worker, sweep, handshape
def test_worker_refuses_an_unknown_device_before_claiming_a_run(tmp_path, capsys):
    queued = api.queue(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path)
    for device in ("tpu", "cuda:7"):
        code = cli.main(["worker", "--device", device, "--exit-when-idle", "--runs-dir", str(tmp_path)])
        _one_line(capsys, code, "--device", repr(device))
    assert str(queued.status()["status"]) == "queued"


def test_a_worker_on_one_gpu_of_several_is_told_how(monkeypatch, tmp_path, capsys):
    """`worker --device cuda:1` wrote "cuda:1" into each run's settings, which no run can hold (its
    device is auto, cpu, cuda or mps), so every run it took failed to load. One GPU of several is
    chosen the way every CUDA program's is."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    queued = api.queue(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path)
    code = cli.main(["worker", "--device", "cuda:1", "--exit-when-idle", "--runs-dir", str(tmp_path)])
    _one_line(capsys, code, "--device", "CUDA_VISIBLE_DEVICES=1 and --device cuda")
    assert str(queued.status()["status"]) == "queued"
    # cpu:0 was told to use CUDA_VISIBLE_DEVICES; a typo was offered cuda:N, which is always refused
    for device, words in (("cpu:0", "names one cpu of several; use auto, cpu, cuda or mps"),
                          ("CPU", "is not a device; use auto, cpu, cuda or mps")):
        code = cli.main(["worker", "--device", device, "--exit-when-idle", "--runs-dir", str(tmp_path)])
        line = _one_line(capsys, code, "--device", repr(device), words)
        assert "CUDA_VISIBLE" not in line and "cuda:N" not in line


@pytest.mark.parametrize("content", [b"\xa9\x00\xffnot text\n", b'{"a": 1}\n'], ids=["binary", "other-json"])
def test_a_sweep_storage_that_is_not_a_journal_is_named(tmp_path, content):
    optional("optuna")
    from signlab.sweep import open_storage

    path = tmp_path / "study.journal"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"--storage: {path} is not an Optuna journal"):
        open_storage(str(path), "study", tmp_path)
    assert path.read_bytes() == content


def test_a_landmarks_file_with_pickled_objects_is_refused(tmp_path):
    from signlab.handshape import load_landmarks

    path = tmp_path / "landmarks.npz"
    with open(path, "wb") as f:
        np.savez(f, train_landmarks=np.array([{"code": "would run on unpickling"}], dtype=object))
    with pytest.raises(DataError, match="not a landmarks file signlab wrote"):
        load_landmarks("train", path)
    plain = tmp_path / "plain.npz"
    plain.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(DataError, match="not a landmarks file signlab wrote"):
        load_landmarks("train", plain)
    # a truncated copy of the shipped file (zipfile's BadZipFile was a traceback from `handshape`)
    from signlab.handshape import LANDMARKS_FILE

    cut = tmp_path / "cut.npz"
    cut.write_bytes(LANDMARKS_FILE.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"{cut}: not a landmarks file signlab wrote"):
        load_landmarks("train", cut)


def test_handshape_reports_progress_on_stderr_with_json_too(monkeypatch, capsys):
    import signlab.handshape as hs

    def build(extract_again: bool = False, progress=None, **_kw):
        for i in (1, 501, 1000):
            progress("train", i, 1000)
        return {"train_hands": 1, "test_hands": 1, "test_accuracy": 1.0, "seconds": 0.0}

    monkeypatch.setattr(hs, "build", build)
    assert cli.main(["handshape", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["train_hands"] == 1  # stdout: the JSON alone
    assert "finding the hand landmarks" in out.err and "train: 1,000/1,000 images" in out.err
    # the time left comes from this machine's own pace, not a constant ("about 15 minutes" was said)
    assert "minutes" not in out.err and re.search(r"train: 501/1,000 images, about \d+ s left", out.err), out.err


def test_the_command_line_says_its_version(capsys):
    import signlab

    with pytest.raises(SystemExit) as ended:
        cli.main(["--version"])
    assert ended.value.code == 0 and capsys.readouterr().out.strip() == f"signlab {signlab.__version__}"


def test_a_worker_refuses_a_bad_class_setting_before_taking_a_run(monkeypatch, tmp_path, capsys):
    """SIGNLAB_MAX_PAUSE_MINUTES=abc was read only when a student paused, and then meant no limit. The
    message names the variable to fix (it named the setting, max_pause_minutes, found nowhere in the
    environment); an instructor list that is not one is named so too."""
    monkeypatch.setenv("SIGNLAB_MAX_PAUSE_MINUTES", "abc")
    queued = api.queue(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path)
    code = cli.main(["worker", "--exit-when-idle", "--runs-dir", str(tmp_path)])
    _one_line(capsys, code, "SIGNLAB_MAX_PAUSE_MINUTES: 'abc' is not a whole number")
    assert str(queued.status()["status"]) == "queued"
    assert api.pause_limit_seconds(tmp_path) == 60.0 * access.Policy().max_pause_minutes  # a default, not none


def _dashboard_refuses(monkeypatch, runs_dir, *words: str) -> None:
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from signlab import ui

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(runs_dir))
    started = []
    monkeypatch.setattr(ui, "job_manager", lambda: started.append(1))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith("**signlab cannot run with this server's settings.**"), error
    for w in words:
        assert w in error, (w, error)
    assert started == [] and not at.title  # no page ran, no queue started


@pytest.mark.parametrize("name, value", [("SIGNLAB_MAX_ACTIVE_PER_USER", "-3"), ("SIGNLAB_MAX_PAUSE_MINUTES", "²"),
                                         ("SIGNLAB_SHOW_CLASSMATES", "maybe")])
def test_a_bad_class_setting_is_refused_by_every_command_and_the_dashboard(monkeypatch, tmp_path, capsys, name, value):
    """SIGNLAB_MAX_ACTIVE_PER_USER=-3 put a traceback on every page, while `runs --json` and
    `train --queue` went on with it and only `worker` refused it."""
    monkeypatch.setenv(name, value)
    for args in (["runs", "--json"], ["train", "--queue", "--model", "logreg"], ["models"]):
        code = cli.main([*args, "--runs-dir", str(tmp_path)] if args != ["models"] else args)
        _one_line(capsys, code, name)
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing queued
    _dashboard_refuses(monkeypatch, tmp_path, name)


@pytest.mark.parametrize("name, value, words", [
    ("SIGNLAB_JOB_LIMIT", "abc", "not a whole number of runs training at a time from 1 to 1024"),
    ("SIGNLAB_JOB_LIMIT", "0", "from 1 to 1024"),
    ("SIGNLAB_LEASE_SECONDS", "inf", "not a number of seconds from 1 to 86400"),
    ("SIGNLAB_WORKER_LINGER", "soon", "not a number of seconds from 0 to 86400"),
    ("SIGNLAB_JOB_LIMIT", "٣", "not a whole number"),  # float() reads it as 3
    # read only where they were used, these surfaced at the first download or the first queued run
    ("SIGNLAB_MAX_DOWNLOAD_MB", "abc", "not a whole number of MB from 1 to 1000000"),
    ("SIGNLAB_MAX_CSV_MB", "-1", "not a whole number of MB from 1 to 1000000"),
    ("SIGNLAB_LOCAL_WORKERS", "x", "'x' is not 0 or 1 (1: the dashboard starts workers here, 0: it only queues)"),
])
def test_the_servers_numbers_from_the_environment_are_checked_first(monkeypatch, tmp_path, capsys, name, value, words):
    """SIGNLAB_LEASE_SECONDS=inf printed a traceback from the lease thread ("timestamp out of range")
    and `train` still exited 0; SIGNLAB_JOB_LIMIT=abc and SIGNLAB_WORKER_LINGER=abc silently meant
    their defaults. Every command names the variable first, and a run is left as it was."""
    from signlab import store

    queued = api.queue(TrainConfig(model="logreg", epochs=1, max_steps=2), tmp_path)
    monkeypatch.setenv(name, value)
    code = cli.main(["worker", "--exit-when-idle", "--runs-dir", str(tmp_path)])
    _one_line(capsys, code, name, repr(value), words)
    assert str(queued.status()["status"]) == "queued"
    code = cli.main(["runs", "--runs-dir", str(tmp_path)])
    _one_line(capsys, code, name)
    # the dashboard says so before any page, and starts no worker on it (they all exited 2, one every
    # few seconds, with the reason in workers.log alone, while Start queued runs nobody would train)
    _dashboard_refuses(monkeypatch, tmp_path, name, repr(value))
    # read while something runs, a bad value holds within its range instead of failing a thread
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "inf")
    assert store.lease_seconds() == 20.0
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "1e30")
    assert store.lease_seconds() == 86_400.0


def test_a_bad_class_setting_in_the_secrets_stops_the_dashboard_too(monkeypatch, tmp_path):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.secrets["signlab"] = {"max_runs_per_user": -1}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    [error] = [e.value for e in at.error]
    assert "[signlab] max_runs_per_user in secrets.toml: '-1' is not a whole number" in error, error
    assert "secrets.toml`) and restarts the server" in error, error  # where it is, not only "the environment"
    # a name signlab does not know: "instructor" was ignored without a word, its teacher a student
    at.secrets["signlab"] = {"instructor": ["teacher@example.edu"]}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    [error] = [e.value for e in at.error]
    assert "[signlab] instructor in secrets.toml: signlab has no such setting; did you mean instructors?" in error
    at.secrets["signlab"] = {"colour": "blue"}
    at.run()
    [error] = [e.value for e in at.error]
    assert "[signlab] colour in secrets.toml: signlab has no such setting; the class settings are show_classmates," in error


def test_a_width_the_model_has_no_use_for_is_said(small_data, tmp_path, capsys):
    root = str(tmp_path / "runs")
    assert cli.main(["train", "--model", "logreg", "--width", "16", "--max-steps", "1", "--runs-dir", root, "--quiet"]) == 0
    assert "signlab: warning: --width: logreg has no width to set; it is ignored" in capsys.readouterr().err
    assert cli.main(["train", "--model", "mlp", "--width", "16", "--max-steps", "1", "--runs-dir", root, "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_run_that_will_not_fit_in_memory_is_warned_of(small_data, tmp_path, capsys, monkeypatch):
    """`train --model deepcnn --ensemble 8 --batch-size 4096 --width 256` grew to 23 GB and the kernel
    killed it without a word (the command line has no quota). The layer table's estimate is said first."""
    from signlab import access

    root = str(tmp_path / "runs")
    need = access.estimate_memory_mb(TrainConfig(model="logreg"))
    for free, warned in ((need / 2, True), (need * 2, False)):
        monkeypatch.setattr(access, "free_memory_mb", lambda: free)
        assert cli.main(["train", "--model", "logreg", "--max-steps", "1", "--runs-dir", root, "--quiet"]) == 0
        err = capsys.readouterr().err
        assert ("signlab: warning: this run needs about" in err and "a smaller --batch-size" in err) == warned, err


def test_a_relative_data_path_is_kept_as_the_folder_it_named(tmp_path, capsys, monkeypatch):
    """`train --queue --data data/sign-mnist` kept the path as typed: a worker started in another
    folder refused the bundled dataset as "not an allowed dataset source", and evaluate or --resume
    from elsewhere read whatever folder of that name lay there. The path is made absolute where it is
    typed, for train and for a sweep's trials."""
    from signlab.data import BUNDLED_DATA_DIR
    from signlab.sweep import base_config

    monkeypatch.setenv("SIGNLAB_DB", "")
    monkeypatch.chdir(BUNDLED_DATA_DIR.parent)
    root = str(tmp_path / "runs")
    assert cli.main(["train", "--queue", "--model", "logreg", "--data", BUNDLED_DATA_DIR.name, "--runs-dir", root,
                     "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    assert open_run(run_id, root).config.data == str(BUNDLED_DATA_DIR)
    pair = base_config(data="a.csv, https://example.org/b.csv").data
    assert pair == f"{BUNDLED_DATA_DIR.parent / 'a.csv'},https://example.org/b.csv"


def test_runs_names_a_run_folder_it_cannot_list(run, capsys, monkeypatch):
    """A run copied in by hand as `copy ü space` was left out of `runs` without a word, while
    evaluate and predict took its path."""
    import shutil

    monkeypatch.setenv("SIGNLAB_DB", "")
    shutil.copytree(run.dir, run.dir.parent / "copy ü space")
    assert cli.main(["runs", "--runs-dir", str(run.dir.parent), "--json"]) == 0
    out = capsys.readouterr()
    assert [r["run_id"] for r in json.loads(out.out)] == ["r1"]
    assert "copy ü space: not listed" in out.err and "rename the folder" in out.err, out.err


def test_a_too_small_validation_share_is_named_by_its_flag(tmp_path, capsys):
    """`train --val-fraction 0.0001` said "val_fraction: hold out at least 0.01 …" (the setting's
    name, not its flag), and its help and range said "allowed 0 to 0.5": the rule lay outside the
    setting's declaration. Declared there, every message and the help give it."""
    from signlab.config import SETTING

    code = cli.main(["train", "--val-fraction", "0.0001", "--runs-dir", str(tmp_path)])
    _one_line(capsys, code, "--val-fraction: 0.0001 is out of range; allowed 0, or 0.01 to 0.5")
    assert SETTING["val_fraction"].problem(0.0) is None and SETTING["val_fraction"].problem(0.01) is None
    assert SETTING["val_fraction"].allowed_text() == "0, or 0.01 to 0.5"


def test_predict_says_a_near_certain_letter_as_the_classify_page_does(tmp_path, capsys, monkeypatch):
    """`predict` printed 0.9996 as "A 100.0%" (and the rest as "S 0.0%"), where the Classify page
    (numbers.percent_text) widens a figure that rounds to 100% or 0%: certainty the model did not give."""
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # read by the stand-in below, never opened
    record = {"file": str(image), "warnings": [], "notes": [],
              "top": [{"letter": "A", "probability": 0.9996}, {"letter": "S", "probability": 0.0004},
                      {"letter": "E", "probability": 0.0}]}
    monkeypatch.setattr(api, "predict_files", lambda *a, **k: [record])
    assert cli.main(["predict", "r1", str(image), "--runs-dir", str(tmp_path), "--top", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{image}: A 99.96%, S 0.04%, E 0.0%"
    record["top"][:2] = [{"letter": "A", "probability": 0.999996}, {"letter": "S", "probability": 0.000004}]
    assert cli.main(["predict", "r1", str(image), "--runs-dir", str(tmp_path), "--top", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{image}: A over 99.99%, S under 0.01%, E 0.0%"
