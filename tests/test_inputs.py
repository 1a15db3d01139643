"""Inputs stay in their place (issue #15, a class server): one test per attack found against main.

1. Files inside a run are trusted: a symlink planted as ``model.safetensors``, ``config.json``,
   ``metrics.jsonl``, ``kernels/`` or the runs folder's ``workers.log`` is never read, served or
   appended to.
2. A run's config can point the server anywhere: its ``data`` must be the bundled dataset or a
   source the operator allows (``SIGNLAB_DATA_SOURCES``); downloads are capped and checked, gzip is
   decompressed under a bound.
3. A 400-digit number (config or command line) is one clear line, exit 2, never an OverflowError.
4. Uploads reach only the decoders the app needs (PostScript named hand.png never reaches Ghostscript).
5. Page links accept run ids only, never paths (``runs.open_run_id``).

Every bad input gets one line naming what is wrong and where; nothing already saved is lost.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from signlab import api, cli, data
from signlab.config import TrainConfig, check_setting
from signlab.errors import ConfigError, DataError, ImageError, RunError, SignlabError
from signlab.fsutil import UnsafeFileError, open_append_nofollow, read_bytes_inside
from signlab.models import create_model
from signlab.runs import Run, RunWriter, create_held_run, create_run, list_runs, load_weights, open_run, open_run_id
from tests._local import LocalHTTPServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"  # stands for /etc/passwd: a file the server must never give out
BIG = "1" + "0" * 400  # the 400-digit number


# --------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("SIGNLAB_DB", raising=False)  # SQLite in each test's runs folder
    monkeypatch.delenv("SIGNLAB_DATA_SOURCES", raising=False)
    monkeypatch.setenv("SIGNLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def _weights_bytes() -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in create_model("logreg").state_dict().items()})


def _run(root: Path, run_id: str = "victim", weights: bool = True, **cfg) -> Run:
    run = create_run(TrainConfig(model="logreg", **cfg), root, run_id=run_id, status="completed")
    if weights:
        (run.dir / "model.safetensors").write_bytes(_weights_bytes())
    return open_run(run_id, root)


def _link(path: Path, target: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("signlab: "), err
    return lines[0]


# =========================================================================== 1. files inside a run
def test_symlinked_weights_are_neither_listed_nor_served(root, secret):
    run = _run(root)
    _link(run.dir / "model.safetensors", secret)
    assert not run.has_weights()
    assert [r.id for r in list_runs(root) if r.has_weights()] == []
    for read in (run.weights_bytes, lambda: run.file_bytes("model.safetensors"),
                 lambda: load_weights(run.dir / "model.safetensors"), run.load_model):
        with pytest.raises(RunError) as err:
            read()
        assert SECRET.decode() not in str(err.value)
    assert secret.read_bytes() == SECRET
    # said as what it is: a link refused, not weights "deleted or moved" (an audit read that and looked for them)
    with pytest.raises(RunError, match="are a link to another file, which is never read"):
        run.weights_bytes()


def test_weights_for_download_are_a_checked_safetensors_file(root):
    run = _run(root)
    raw = run.weights_bytes()
    assert raw == (run.dir / "model.safetensors").read_bytes()
    (run.dir / "model.safetensors").write_bytes(b"not weights at all")
    with pytest.raises(RunError, match="model.safetensors is not a readable safetensors file"):
        run.weights_bytes()


def test_a_link_below_a_linked_folder_or_a_hard_name_is_refused(root, secret, tmp_path):
    run = _run(root)
    _link(run.dir / "config.json", secret)
    with pytest.raises(RunError, match="config.json.*symbolic link"):
        run.config
    assert run.file_bytes("model.safetensors")  # the rest of the run is still usable
    for name in ("../victim/meta.json", "/etc/passwd", ""):
        with pytest.raises(UnsafeFileError):
            read_bytes_inside(run.dir, name, 1000)
    with pytest.raises(UnsafeFileError, match="over the limit"):
        read_bytes_inside(run.dir, "model.safetensors", 10)


def test_symlinked_settings_meta_and_metrics_are_not_read(root, tmp_path):
    run = _run(root)
    planted = tmp_path / "outside.json"
    planted.write_text(json.dumps({"model": "mlp", "name": "stolen", "type": "epoch", "epoch": 1}) + "\n")
    for name in ("config.json", "meta.json", "metrics.jsonl", "optimizer.json", "calibration.json"):
        _link(run.dir / name, planted)
    from signlab.calibrate import calibration_info

    assert calibration_info(run) is None  # a planted record is not read (it was, through the link)
    with pytest.raises(RunError, match="refused"):
        run.config
    assert run.meta == {}
    assert run.metrics() == [] and run.read_metrics(0) == ([], 0)
    assert run.summary()["model"] is None  # the row stays listed (so it can be deleted), unreadable


def test_a_fifo_in_a_run_does_not_hang_the_server(root):
    run = _run(root)
    (run.dir / "metrics.jsonl").unlink(missing_ok=True)
    os.mkfifo(run.dir / "metrics.jsonl")
    assert run.metrics() == []  # refused at once: not a regular file


def test_metrics_are_never_appended_through_a_link(root, secret):
    run, claim = create_held_run(TrainConfig(model="logreg"), "tester", root, run_id="held")
    _link(run.dir / "metrics.jsonl", secret)
    writer = RunWriter(run, claim)
    with pytest.raises(SignlabError, match="metrics.jsonl.*symbolic link"):
        writer.log({"type": "fit_start"})
    writer.close()
    assert secret.read_bytes() == SECRET


def test_kernels_are_never_read_through_links(root, tmp_path):
    run = _run(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    save_file({"kernels": torch.ones(24, 784)}, str(elsewhere / "epoch_0001.safetensors"))
    (run.dir / "kernels").mkdir(exist_ok=True)
    for f in (run.dir / "kernels").iterdir():
        f.unlink()
    _link(run.dir / "kernels" / "epoch_0001.safetensors", elsewhere / "epoch_0001.safetensors")
    assert run.kernel_history() == {}
    (run.dir / "kernels" / "epoch_0001.safetensors").unlink()
    (run.dir / "kernels").rmdir()
    _link(run.dir / "kernels", elsewhere)  # the whole folder linked out
    assert run.kernel_history() == {}
    with pytest.raises(UnsafeFileError, match="symbolic link"):  # a link on the way is refused too
        read_bytes_inside(run.dir, "kernels/epoch_0001.safetensors", 10**6)
    with pytest.raises(RunError, match="symbolic link"):
        load_weights(run.dir / "kernels" / "epoch_0001.safetensors", run.dir)
    (elsewhere / ".x.tmp").write_text("keep")
    run.remove_partial_writes()  # never deletes in the folder a link points to
    assert (elsewhere / ".x.tmp").exists()


def test_a_good_kernels_folder_still_reads(root):
    run = _run(root)
    (run.dir / "kernels").mkdir(exist_ok=True)
    save_file({"kernels": torch.ones(24, 784)}, str(run.dir / "kernels" / "epoch_0003.safetensors"))
    assert list(run.kernel_history()) == [3]


def test_workers_log_link_is_refused_and_nothing_starts(root, secret):
    from signlab import launch

    root.mkdir(parents=True)
    _link(root / "workers.log", secret)
    before = len(launch.live_children())
    with pytest.raises(UnsafeFileError, match="workers.log.*symbolic link"):
        launch.spawn(["no-such-command"], root / "workers.log")
    assert len(launch.live_children()) == before
    assert secret.read_bytes() == SECRET
    with open_append_nofollow(root / "fresh.log") as f:  # a plain log is created and appended to
        f.write(b"ok\n")
    assert (root / "fresh.log").read_bytes() == b"ok\n"


# =========================================================================== 2. where a config points
def test_data_sources_allowed_by_default_are_the_bundled_copy_only():
    data.check_source_allowed(None)
    data.check_source_allowed("")
    data.check_source_allowed(str(data.BUNDLED_DATA_DIR))
    for source in ("/etc", "/etc/passwd,/etc/shadow", "http://169.254.169.254/latest/meta-data/",
                   "file:///etc/passwd", f"{data.BUNDLED_DATA_DIR}/../../..", "~"):
        with pytest.raises(ConfigError) as err:
            data.check_source_allowed(source)
        message = str(err.value)
        assert message.startswith("data: ") and "SIGNLAB_DATA_SOURCES" in message and "\n" not in message


def test_data_sources_the_operator_allows(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "train.csv").write_text("x")
    (shared / "escape").symlink_to("/etc")
    monkeypatch.setenv("SIGNLAB_DATA_SOURCES", f"{shared}, https://data.example/signmnist/")
    for ok in (str(shared), f"{shared}/train.csv,{shared}/test.csv", "https://data.example/signmnist/",
               "https://data.example/signmnist/sign_mnist_train.csv.gz#sha256=" + "0" * 64,
               "https://DATA.example/signmnist/a.csv,https://data.example/signmnist/b.csv"):
        data.check_source_allowed(ok)
    for bad in (f"{shared}/escape", f"{shared}/../x", f"{shared}-evil", "https://data.example/signmnist-evil/a",
                "https://data.example.evil.com/signmnist/a", "https://data.example/signmnist/../admin",
                "https://data.example/signmnist/%2e%2e/admin", "http://data.example/signmnist/a",
                "https://user@data.example/signmnist/a", f"{shared}/train.csv,/etc/passwd"):
        with pytest.raises(ConfigError, match="not an allowed dataset source"):
            data.check_source_allowed(bad)


def test_queue_refuses_a_source_and_creates_nothing(root, capsys):
    with pytest.raises(ConfigError, match="data: '/etc'"):
        api.queue(TrainConfig(model="logreg", data="/etc"), root)
    assert list_runs(root) == []
    code = cli.main(["train", "--queue", "--model", "logreg", "--data", "http://169.254.169.254/x",
                     "--runs-dir", str(root)])
    line = _one_line(capsys)
    assert code == 2 and "169.254.169.254" in line and "SIGNLAB_DATA_SOURCES" in line
    assert list_runs(root) == []


def test_worker_fails_a_planted_run_without_reading_its_source(root, monkeypatch):
    from signlab import worker

    _run(root, "good-one", weights=False)  # listed first: nothing else is lost
    planted = create_run(TrainConfig(model="logreg", data="/etc"), root, run_id="planted")
    touched: list = []
    monkeypatch.setattr(api, "load_dataset", lambda *a, **k: touched.append(a) or pytest.fail("read"))
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: touched.append(a) or pytest.fail("read"))
    worker.run_worker(root, exit_when_idle=True, limit=1)
    row = planted.status()
    assert touched == []
    assert str(row["status"]) == "failed"
    assert "'/etc'" in row["message"] and "SIGNLAB_DATA_SOURCES" in row["message"]
    assert "\n" not in row["message"]
    # and its folder says so, for a database that has no row of it (it was read as interrupted)
    ends = [m for m in planted.metrics() if m["type"] == "fit_end"]
    assert [(m["status"], m["message"]) for m in ends] == [("failed", row["message"])]
    assert str(open_run("good-one", root).status()["status"]) == "completed"
    # a continuation of a finished run with such a source goes back to what the run was, as one whose
    # data went missing does (it failed the completed run, and now its folder would have said so too)
    done = _run(root, "planted-done", data="/etc")
    done.store.annotate("planted-done", epochs_completed=1)
    done.store.enqueue_continue("planted-done", 1)
    worker.run_worker(root, exit_when_idle=True, limit=1)
    row = done.status()
    assert str(row["status"]) == "completed" and "continuation could not start" in row["message"], row
    assert not [m for m in done.metrics() if m["type"] == "fit_end"]


class _Server(LocalHTTPServer):
    """127.0.0.1 http server: ``files`` by path; ``no_length`` streams without Content-Length."""

    def __init__(self, files: dict[str, bytes], no_length: bool = False) -> None:
        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if not no_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(0, len(body), 1 << 16):
                        self.wfile.write(body[i:i + (1 << 16)])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: that is the point

        super().__init__(Handler)


def _downloads(tmp_path) -> list[Path]:
    folder = tmp_path / "cache" / "downloads"
    return [p for p in folder.iterdir()] if folder.is_dir() else []


@pytest.mark.parametrize("no_length", [False, True])
def test_download_stops_at_the_size_cap(tmp_path, monkeypatch, no_length):
    monkeypatch.setenv("SIGNLAB_MAX_DOWNLOAD_MB", "1")
    with _Server({"/big.csv": b"0" * (3 * 2**20)}, no_length=no_length) as server:
        with pytest.raises(DataError, match=r"over the limit of 1 MB \(SIGNLAB_MAX_DOWNLOAD_MB\)"):
            data.download(server.url + "big.csv", progress=lambda d, t: None)
    assert _downloads(tmp_path) == []


def test_download_checks_a_known_sha256(tmp_path, csvs):
    body = csvs.write("t.csv").read_bytes()
    good = hashlib.sha256(body).hexdigest()
    with _Server({"/t.csv": body}) as server:
        with pytest.raises(DataError, match="does not match"):
            data.load_split(server.url + "t.csv#sha256=" + "0" * 64)
        assert _downloads(tmp_path) == []
        split = data.load_split(server.url + "t.csv#sha256=" + good)
        # a checksum written wrong (cut short, or not hexadecimal) was ignored: the file went unchecked
        for wrong in (good[:63], good[:-1] + "g", "abc"):
            with pytest.raises(DataError, match=r"sha256=.*is not a SHA-256 \(64 hexadecimal digits\)"):
                data.load_split(server.url + "t.csv#sha256=" + wrong)
    assert len(split) == 5


def test_gzip_is_decompressed_under_a_bound(tmp_path, monkeypatch, csvs):
    monkeypatch.setenv("SIGNLAB_MAX_CSV_MB", "1")
    row = "3" + ",0" * 784 + "\n"
    bomb = csvs.write("bomb.csv.gz", text=csvs.header + "\n" + row * 2000, gz=True)  # 3 MB unpacked
    assert bomb.stat().st_size < 100_000
    calls: list = []
    monkeypatch.setattr(gzip, "decompress", lambda *a, **k: calls.append(1) or pytest.fail("unbounded"))
    with pytest.raises(DataError) as err:
        data.load_split(str(bomb))
    assert str(bomb) in str(err.value) and "over 1 MB" in str(err.value) and calls == []
    assert data.load_split(str(csvs.write("ok.csv.gz", gz=True))).images.shape == (5, 28, 28)


@pytest.mark.parametrize("value", [BIG, "²", "٣", "1.5", "-3"])
def test_a_bad_size_setting_is_named(monkeypatch, value):
    monkeypatch.setenv("SIGNLAB_MAX_DOWNLOAD_MB", value)
    with pytest.raises(ConfigError, match="SIGNLAB_MAX_DOWNLOAD_MB"):
        data.max_download_bytes()


# =========================================================================== 3. numbers from outside
@pytest.mark.parametrize("name, value", [("seed", int(BIG)), ("epochs", int(BIG)), ("lr", int(BIG)),
                                         ("width", -int(BIG)), ("epochs", float("inf")), ("seed", float("nan"))])
def test_huge_numbers_in_a_config_are_config_errors(name, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig(model="fastcnn", **{name: value})
    message = str(err.value)
    assert message.startswith(f"{name}: ") and "allowed" in message and len(message) < 120


def test_a_run_whose_config_holds_a_huge_number_is_listed_not_crashing(root):
    from signlab import ui

    run = _run(root)
    cfg = json.loads((run.dir / "config.json").read_text())
    (run.dir / "config.json").write_text(json.dumps({**cfg, "seed": int(BIG)}))
    with pytest.raises(RunError, match="seed: .* out of range; allowed 0 to 2147483647"):
        run.config
    listed = list_runs(root)
    assert [r.id for r in listed] == ["victim"]
    assert "unreadable settings" in ui.run_label(listed[0])


def test_cli_train_with_a_400_digit_seed_exits_2_with_one_line():
    out = subprocess.run([sys.executable, "-m", "signlab", "train", "--seed", BIG, "--max-steps", "1"], cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "SIGNLAB_RUNS_DIR": "/nonexistent/never"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "seed" in lines[0] and "allowed 0 to 2147483647" in lines[0], out.stderr


@pytest.mark.parametrize("args, setting", [
    (["train", "--epochs", BIG], "--epochs"), (["train", "--batch-size", BIG], "--batch-size"),
    (["train", "--lr", "1e400"], "--lr"), (["train", "--width", BIG], "--width"),
    (["train", "--max-steps", BIG], "--max-steps"), (["train", "--val-fraction", "nan"], "--val-fraction"),
    (["train", "--resume", "victim", "--epochs", BIG], "epochs"),
    (["predict", "victim", "x.png", "--top", BIG], "--top"),
    (["sweep", "--trials", BIG], "--trials"), (["sweep", "--sampler-seed", BIG], "--sampler-seed"),
    (["sweep", "--epochs", BIG], "epochs"), (["sweep", "--timeout", "1e400"], "--timeout"),
    (["worker", "--slots", BIG], "--slots"), (["worker", "--linger", "nan"], "--linger"),
    (["worker", "--linger", "-1"], "--linger"), (["worker", "--limit", "1025"], "--limit"),
])
def test_cli_numbers_are_range_checked(args, setting, root, capsys):
    code = cli.main([*args, "--runs-dir", str(root)])
    line = _one_line(capsys)
    assert code == 2 and setting in line and ("allowed" in line or "range" in line), line
    assert len(line) < 200
    assert not root.exists() or list_runs(root) == []
    if setting in ("--limit", "--linger"):  # the range of the variable it stands for (signlab.envnum)
        from signlab.envnum import SERVER_NUMBERS

        name = "SIGNLAB_JOB_LIMIT" if setting == "--limit" else "SIGNLAB_WORKER_LINGER"
        low, high = SERVER_NUMBERS[name][:2]
        assert f"allowed {low} to {high}" in line, line


def test_a_worker_that_never_returns_does_not_take_a_linger(root, capsys):
    """``worker --linger 5`` warmed up and then served until killed: the seconds were silently moot."""
    code = cli.main(["worker", "--linger", "5", "--runs-dir", str(root)])
    line = _one_line(capsys)
    assert code == 2 and line.startswith("signlab: --linger: only with --exit-when-idle"), line


def test_predict_files_checks_top(root):
    with pytest.raises(ConfigError, match="top"):
        api.predict_files("victim", [], k=int(BIG), runs_dir=root)


def test_check_setting_names_the_range():
    check_setting("seed", 5)
    with pytest.raises(ConfigError, match="^seed: 1000000000…0000 \\(401 characters\\) is out of range"):
        check_setting("seed", int(BIG))


@pytest.mark.parametrize("name", ["optimizer", "augment"])
def test_a_number_past_pythons_digit_limit_is_refused_for_a_choice_or_a_switch(name):
    """A choice's and a switch's messages wrote the value with repr(): past 4,300 digits that raised
    Python's ValueError instead of the setting's one-line refusal (from the Python API)."""
    with pytest.raises(ConfigError, match=f"^{name}: a number with thousands of digits "):
        check_setting(name, 10 ** 5000)


# =========================================================================== 4. uploads and decoders
POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\n"
              b"newpath 0 0 moveto 28 28 lineto stroke\nshowpage\n%%EOF\n")


def test_the_postscript_payload_is_real():
    # guard: without formats= Pillow takes it for EPS, the loader that runs Ghostscript
    assert Image.open(io.BytesIO(POSTSCRIPT)).format == "EPS"


def test_postscript_named_hand_png_never_reaches_ghostscript(monkeypatch, tmp_path):
    from PIL import EpsImagePlugin

    from signlab.preprocess import prepare

    calls: list = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or pytest.fail("gs"))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    with pytest.raises(ImageError, match="^hand.png: not an image"):
        prepare(POSTSCRIPT, name="hand.png")
    path = tmp_path / "hand.png"
    path.write_bytes(POSTSCRIPT)
    with pytest.raises(ImageError, match="hand.png: not an image"):
        prepare(path, name=path.name)
    assert calls == []


def test_cli_predict_on_postscript_is_one_line(root, tmp_path, capsys):
    _run(root)
    path = tmp_path / "hand.png"
    path.write_bytes(POSTSCRIPT)
    code = cli.main(["predict", "victim", str(path), "--runs-dir", str(root)])
    line = _one_line(capsys)
    assert code == 2 and "hand.png" in line and "not an image" in line


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_the_formats_the_uploader_takes_still_open(fmt):
    from signlab.preprocess import prepare

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 90)).save(buf, format=fmt)
    assert prepare(buf.getvalue(), name=f"hand.{fmt.lower()}").image28.shape == (28, 28)


def test_no_image_is_opened_without_formats():
    # every Image.open in the package and the benchmarks names the formats it accepts
    offenders = []
    for path in [*(ROOT / "signlab").glob("*.py"), *(ROOT / "bench").glob("*.py")]:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if "Image.open(" in line and "formats=" not in line:
                offenders.append(f"{path.name}:{no}")
    assert offenders == []


# =========================================================================== 5. run ids only
def test_open_run_id_takes_ids_only(root, tmp_path):
    run = _run(root)
    assert open_run_id("victim", root).dir == run.dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("{}")
    (root / "linked").symlink_to(elsewhere)
    for ref in (str(run.dir), str(elsewhere), "/etc", "../victim", "./victim", "runs/victim", "~", "", ".", "..",
                "victim/", "linked", "missing", None, 3):
        with pytest.raises(RunError):
            open_run_id(ref, root)
    assert (elsewhere / "config.json").read_text() == "{}"


def test_sweep_files_are_not_read_through_links_nor_crash_on_numbers(root, secret):
    from signlab import sweep

    folder = sweep.sweeps_dir(root)
    folder.mkdir(parents=True)
    (folder / "s1.log").symlink_to(secret)
    assert sweep.last_log_line("s1", root) == ""
    (folder / "s2.log").write_text("starting\nsignlab: data: refused\n")
    assert sweep.last_log_line("s2", root) == "signlab: data: refused"
    (folder / "s1.stop").write_text(json.dumps({"time": int(BIG)}))
    assert sweep.stop_requested_since("s1", 0.0, root) is False  # no time at all, and no crash
    (folder / "s1.stop").write_text(json.dumps({"time": 5.0}))
    assert sweep.stop_requested_since("s1", 0.0, root) is True
    (folder / "s1.stop").write_text(json.dumps(["not", "a", "dict"]))
    assert sweep.stop_requested_since("s1", 0.0, root) is False
    (folder / "s3.json").write_text(json.dumps({"model": "logreg", "created": int(BIG)}))
    (folder / "s4.json").write_text(json.dumps({"model": "logreg", "created": "yesterday"}))
    (folder / "s5.json").write_text(json.dumps({"model": "logreg", "created": 1.5e9}))
    (folder / "s6.json").symlink_to(secret)
    studies = [s["study"] for s in sweep.list_studies(root)]
    assert studies[0] == "s5" and sorted(studies[1:]) == ["s3", "s4"]  # bad dates sort last, no crash
    assert sweep.study_record("s6", root) == {}


def test_a_linked_onnx_file_is_not_offered(root, secret):
    from signlab import export

    run = _run(root)
    _link(run.dir / "model.onnx", secret)
    assert export.onnx_path(run) is None
    with pytest.raises(RunError, match="symbolic link"):
        run.file_bytes("model.onnx")


def test_check_setting_keeps_every_rule_of_the_declaration():
    """check_setting had its own copy of the range rule, without least_above_zero: a validation share
    of 0.005 passed it while TrainConfig refused it."""
    check_setting("val_fraction", 0)
    with pytest.raises(ConfigError, match="^val_fraction: 0.005 is out of range; allowed 0, or 0.01 to 0.5"):
        check_setting("val_fraction", 0.005)
    with pytest.raises(ConfigError, match="^epochs: 2.5 must be a whole number"):
        check_setting("epochs", 2.5)


def test_a_whole_number_written_with_a_point_trains(small_dataset):
    """A config.json edited by hand (or the Python API) with "epochs": 1.0 or "batch_size": 32.0 was
    accepted and then failed deep in fit ("Expected positive integer total_steps, but got 1.0")."""
    from signlab.models import build_model
    from signlab.trainer import Trainer

    cfg = TrainConfig.from_dict({"model": "logreg", "device": "cpu", "epochs": 1.0, "batch_size": 32.0,
                                 "max_steps": 3.0})
    assert (cfg.epochs, cfg.batch_size, cfg.max_steps) == (1, 32, 3)
    assert all(type(v) is int for v in (cfg.epochs, cfg.batch_size, cfg.max_steps))
    assert Trainer(cfg, build_model(cfg), small_dataset).fit().status == "completed"
    with pytest.raises(ConfigError, match="^epochs: 1.5 must be a whole number"):
        TrainConfig(epochs=1.5)
