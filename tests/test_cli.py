"""The command line as a user runs it: ``python -m signlab ...`` in a subprocess.

Contract: exit 0 on success; exit 2 with exactly one line on stderr (no traceback) for bad input.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from signlab import inference
from signlab.labels import LETTERS
from signlab.normalize import normalize
from signlab.predict import forward_views
from signlab.models import model_names
from signlab.runs import open_run
from tests._local import optional

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# a device this machine does not have (the suite runs on CPU machines; on a CUDA one, Apple's MPS)
ABSENT_DEVICE = "mps" if torch.cuda.is_available() else "cuda"
ENV.pop("SIGNLAB_RUNS_DIR", None)


def signlab(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signlab", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-runs")


@pytest.fixture(scope="module")
def cli_run(runs_dir):
    """``train --json`` with tiny settings; the other commands use the run it makes."""
    out = signlab("train", "--model", "logreg", "--epochs", "1", "--max-steps", "30", "--runs-dir", runs_dir,
                  "--json", "--seed", "1")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out


def test_models_lists_all():
    out = signlab("models")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(model_names())
    assert [line.split()[0] for line in lines] == model_names()
    assert "18,840 params" in lines[0]  # logreg: 784 * 24 + 24


def test_summary():
    out = signlab("summary", "convnet")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["layer", "output"]
    assert sum("Conv2d" in line for line in lines) == 3 and "[1, 24]" in out.stdout
    assert lines[-1].startswith("total: ") and "parameters" in lines[-1]


def test_train_json(cli_run, runs_dir):
    record, out = cli_run
    for key in ("run_id", "run_dir", "status", "epochs", "val_accuracy", "test_accuracy", "train_seconds",
                "samples_per_second"):
        assert key in record, key
    assert record["status"] == "completed" and record["epochs"] == 1
    assert Path(record["run_dir"]).parent == runs_dir.resolve()
    assert 0.1 < record["test_accuracy"] <= 1 and record["train_seconds"] > 0 and record["samples_per_second"] > 0
    assert (Path(record["run_dir"]) / "model.safetensors").is_file()
    assert "training logreg" in out.stderr  # the progress goes to stderr, stdout stays parseable


def test_evaluate_json(cli_run, runs_dir):
    record, _ = cli_run
    out = signlab("evaluate", record["run_id"], "--runs-dir", runs_dir, "--json")
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["accuracy"] == pytest.approx(record["test_accuracy"])
    assert len(j["per_class"]) == 24 and {"letter", "precision", "recall", "f1", "support"} <= set(j["per_class"][0])
    assert len(j["confusion"]) == 24 and all(len(r) == 24 for r in j["confusion"])
    assert sum(map(sum, j["confusion"])) == 7172


def test_predict_json(cli_run, runs_dir, tmp_path, dataset):
    record, _ = cli_run
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(dataset.test.images[0]).resize((200, 200)).save(png)
    Image.fromarray(dataset.test.images[1]).resize((150, 120)).convert("RGB").save(jpg, quality=90)
    out = signlab("predict", record["run_id"], png, jpg, "--runs-dir", runs_dir, "--json", "--top", "5")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["file"] for r in records] == [str(png), str(jpg)]
    for r in records:
        top = r["top"]
        assert len(top) == 5 and all(set(t) >= {"letter", "probability"} for t in top)
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(t["letter"] in LETTERS for t in top)


def test_predict_answers_the_readable_images_and_names_the_others(cli_run, runs_dir, tmp_path, dataset):
    """One broken file among a folder's photos made ``predict`` print nothing for any of them. The
    readable ones are answered; the exit is still 2, with one line naming each unreadable file."""
    record, _ = cli_run
    good = [tmp_path / "a.png", tmp_path / "c.png"]
    for i, path in enumerate(good):
        Image.fromarray(dataset.test.images[i]).resize((100, 100)).save(path)
    broken, empty = tmp_path / "b.png", tmp_path / "d.jpg"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    empty.write_bytes(b"")
    out = signlab("predict", record["run_id"], good[0], broken, good[1], empty, "--runs-dir", runs_dir, "--json")
    assert out.returncode == 2, out.stderr
    assert [r["file"] for r in json.loads(out.stdout)] == [str(p) for p in good]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"signlab: {broken}: "), lines
    assert lines[0].endswith(f"(and 1 more unreadable: {empty})")


def test_export_onnx_matches_pytorch(cli_run, runs_dir, tmp_path):
    ort = optional("onnxruntime")
    record, _ = cli_run
    target = tmp_path / "m.onnx"
    out = signlab("export", record["run_id"], "--runs-dir", runs_dir, "--format", "onnx", "--out", target)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(target) and target.is_file()
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"image": x})
    model = open_run(record["run_id"], runs_dir).load_model()
    with torch.no_grad():
        torch_logits = forward_views(model, normalize(torch.from_numpy(x))).numpy()  # with its test-time shifts
    assert onnx_logits.shape == (5, 24)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=1e-4)
    probs = inference.predict(model, x[:, 0])
    e = np.exp(onnx_logits - onnx_logits.max(1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), probs, atol=1e-5)


# --------------------------------------------------------------------------- exit code 2
@pytest.fixture(scope="module")
def error_runs(cli_run, runs_dir, tmp_path_factory):
    """Every bad-input case, run three at a time (each is a fresh interpreter importing torch)."""
    record, _ = cli_run
    tmp = tmp_path_factory.mktemp("cli-bad")
    bad_csv = tmp / "bad.csv"
    bad_csv.write_text("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n9" + ",0" * 784 + "\n")
    text_file = tmp / "notes.png"
    text_file.write_text("this is not an image\n")
    empty_runs = tmp / "runs"
    run = record["run_id"]
    cases = {
        "epochs_0": (["train", "--epochs", "0", "--runs-dir", empty_runs], "epochs"),
        "lr_100": (["train", "--lr", "100", "--runs-dir", empty_runs], "lr"),
        "unknown_model": (["train", "--model", "resnet9000", "--runs-dir", empty_runs], "resnet9000"),
        "malformed_data": (["train", "--model", "logreg", "--data", f"{bad_csv},{bad_csv}", "--runs-dir",
                            empty_runs], "bad.csv"),
        "missing_run": (["evaluate", "no-such-run", "--runs-dir", runs_dir], "no-such-run"),
        "dotdot_run": (["evaluate", "../etc", "--runs-dir", runs_dir], "../etc"),
        "non_image": (["predict", run, text_file, "--runs-dir", runs_dir], "notes.png"),
        "unknown_format": (["export", run, "--runs-dir", runs_dir, "--format", "tflite"], "tflite"),
        "unknown_option": (["train", "--frobnicate"], "frobnicate"),
        "runs_dir_file": (["train", "--model", "logreg", "--runs-dir", text_file], "is not a folder"),
        # a device this machine lacks: refused like a bad setting (it left a failed run in the list)
        "absent_device": (["train", "--model", "logreg", "--device", ABSENT_DEVICE, "--runs-dir", empty_runs],
                          ABSENT_DEVICE.upper()),
    }
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(signlab, *args) for name, (args, _) in cases.items()}
        results = {name: (f.result(), cases[name][1]) for name, f in futures.items()}
    results["_empty_runs"] = empty_runs
    return results


@pytest.mark.parametrize("case", ["epochs_0", "lr_100", "unknown_model", "malformed_data", "missing_run",
                                  "dotdot_run", "non_image", "unknown_format", "unknown_option", "absent_device",
                                  "runs_dir_file"])
def test_bad_input_exits_2_with_one_line(error_runs, case):
    out, word = error_runs[case]
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("signlab: ") and word in lines[0], lines[0]
    assert out.stdout == ""


def test_bad_training_input_leaves_no_run(error_runs):
    # a bad setting, and data that cannot be used, are refused before any run exists
    empty = error_runs["_empty_runs"]
    assert [d.name for d in (empty.iterdir() if empty.exists() else []) if not d.name.startswith("signlab.db")] == []


def test_the_dashboards_run_buttons_are_commands_too(tmp_path, capsys, small_dataset):
    """stop, pause, resume, rename and delete did not exist on the command line: an instructor at the
    server's shell could not stop or cancel a student's run. They go through signlab.access as the
    machine's user (who manages every run), with one line (or --json) and exit 2 for bad input."""
    from signlab import api, cli
    from signlab.access import local_user
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    done = api.train(TrainConfig(model="logreg", epochs=1, max_steps=3), tmp_path, run_id="done",
                     dataset=small_dataset)
    assert done["status"] == "completed"
    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="waiting", owner="alice@uni.edu")

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main([*args, "--runs-dir", str(tmp_path)])
        out = capsys.readouterr()
        return code, out.out.strip(), out.err.strip()

    assert run("rename", "done", "my first") == (0, "run done: renamed to my first", "")
    assert open_run("done", tmp_path).name == "my first"
    code, out, _ = run("stop", "done", "--json")
    assert code == 0 and json.loads(out) == {"run_id": "done", "status": "completed",
                                             "message": "nothing to stop: the run is completed"}
    code, _, err = run("delete", "waiting")  # as on the Runs page: a queued run is stopped first
    assert code == 2 and err == "signlab: run waiting is waiting in the queue; stop it before deleting it"
    assert run("pause", "waiting")[1] == "run waiting: nothing to pause: the run is queued"  # nothing holds it
    # an instructor's Start next, at the shell
    code, out, _ = run("next", "waiting", "--json")
    assert code == 0 and json.loads(out) == {"run_id": "waiting", "status": "queued",
                                             "message": "starts next: it is first in the queue"}
    assert run("next", "done") == (2, "", "signlab: run done is not waiting in the queue: it is completed")
    assert run("stop", "waiting") == (0, "run waiting: cancelled before it started", "")
    status = open_run("waiting", tmp_path).status()
    assert status["status"] == "stopped" and status["stopped_by"] == local_user().id  # alice is told who
    assert run("pause", "waiting")[1] == "run waiting: nothing to pause: the run is stopped"
    lines = dict(line.split(maxsplit=1) for line in run("runs")[1].splitlines())  # whose each is, as on the page
    assert "alice@uni.edu" in lines["waiting"] and lines["done"].endswith("my first")
    assert not lines["waiting"].endswith("waiting")  # an unnamed run's id is said once
    assert run("delete", "waiting") == (0, "run waiting: deleted, with its folder", "")
    assert not (tmp_path / "waiting").exists()
    code, _, err = run("resume", "nope")
    assert code == 2 and err == f"signlab: nope: no such run in {tmp_path}"


def test_a_name_holding_terminal_escapes_is_kept_as_plain_text(tmp_path, capsys):
    """A run renamed to ESC[31m red BEL (from the dashboard or the shell) was printed raw by
    `signlab runs`, recolouring the terminal of the instructor listing a class's runs; an id from
    a sign-in proxy could carry the same. Names and ids keep their text without control characters
    or direction marks."""
    from signlab import cli
    from signlab.access import user_id_of
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="painted", name="\x1b[31mred\x07\u202eevil")
    assert open_run("painted", tmp_path).name == "[31mred evil"
    assert cli.main(["rename", "painted", "\x1b]0;owned\x07 my\trun\n", "--runs-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli.main(["runs", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "]0;owned my run" in out and not any(c in out for c in "\x1b\x07\t\u202e"), repr(out)
    assert user_id_of("Bob\x1b[2J@Uni.edu") == "bob [2j@uni.edu" and user_id_of(" ali\u2066ce ") == "ali ce"
    assert user_id_of("a\u200eb\u200fc\u061cd") == "a b c d"  # the direction marks too


def test_a_run_listed_as_failed_for_its_settings_can_be_deleted(tmp_path, capsys):
    """A folder whose config.json is a folder was listed as failed ("can be deleted", the README
    says) while delete, evaluate and rename all said "no such run": the listing and the commands
    did not agree on what a run folder is."""
    import shutil

    from signlab import cli
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="broken")
    (tmp_path / "broken" / "config.json").unlink()
    (tmp_path / "broken" / "config.json").mkdir()
    shutil.copytree(tmp_path / "broken", tmp_path / "copied")  # one the run database has never seen
    assert cli.main(["runs", "--runs-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "broken" in listed and "copied" in listed and "failed" in listed, listed
    code = cli.main(["evaluate", "copied", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no such run" not in err and err.startswith("signlab: "), err
    assert cli.main(["stop", "broken", "--runs-dir", str(tmp_path)]) == 0  # still queued: stopped first
    capsys.readouterr()
    for rid in ("copied", "broken"):
        assert cli.main(["delete", rid, "--runs-dir", str(tmp_path)]) == 0
        assert capsys.readouterr().out.strip() == f"run {rid}: deleted, with its folder"
        assert not (tmp_path / rid).exists()


def test_a_name_that_is_not_utf8_is_kept_as_plain_text(tmp_path, capsys):
    """A shell argument that is not UTF-8 (a raw 0x9b byte) reaches Python as a lone surrogate, and
    rename crashed writing it (UnicodeEncodeError, a traceback, exit 1)."""
    import os

    from signlab import cli
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="bytes")
    name = os.fsdecode(b"red\x9b31mtext")  # as sys.argv holds it
    assert cli.main(["rename", "bytes", name, "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "run bytes: renamed to red 31mtext"
    assert open_run("bytes", tmp_path).name == "red 31mtext"
