"""No file signlab reads can run code: pickle-based checkpoints are refused, never unpickled."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from signlab.config import TrainConfig
from signlab.errors import RunError
from signlab.runs import create_run, load_weights, open_run

ROOT = Path(__file__).resolve().parent.parent


class _Evil:
    """Unpickling this creates the marker file (as a real attack would run any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"linear.weight": _Evil(marker)})


def _evil_torch_save(marker: Path, path: Path) -> None:
    torch.save({"linear.weight": _Evil(marker)}, str(path))  # the zip format torch.load reads


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


def test_the_payload_is_real(tmp_path, marker):
    # guard: the payload really runs when unpickled, so the tests below prove something
    pickle.loads(_evil_pickle(marker))
    assert marker.read_text() == "pwned"
    marker.unlink()
    path = tmp_path / "evil.pt"
    _evil_torch_save(marker, path)
    torch.load(str(path), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.pkl", "model.ckpt", "model.bin", "weights"])
def test_load_weights_refuses_pickle_checkpoints(tmp_path, marker, name):
    path = tmp_path / name
    path.write_bytes(_evil_pickle(marker))
    with pytest.raises(RunError, match="refused"):
        load_weights(path)
    assert not marker.exists()


def test_load_weights_refuses_torch_save_files(tmp_path, marker):
    path = tmp_path / "model.pt"
    _evil_torch_save(marker, path)
    with pytest.raises(RunError, match="never pickle"):
        load_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch_save"])
def test_safetensors_name_with_pickle_inside_is_refused(tmp_path, marker, kind):
    path = tmp_path / "model.safetensors"
    if kind == "pickle":
        path.write_bytes(_evil_pickle(marker))
    else:
        _evil_torch_save(marker, path)
    with pytest.raises(RunError, match="not a readable safetensors file"):
        load_weights(path)
    assert not marker.exists()


def _run_with(tmp_path, files: dict[str, bytes]):
    run = create_run(TrainConfig(model="logreg"), tmp_path / "runs", run_id="victim", status="completed")
    for name, data in files.items():
        (run.dir / name).write_bytes(data)
    return open_run("victim", tmp_path / "runs")


def test_run_with_only_a_pickle_checkpoint(tmp_path, marker):
    run = _run_with(tmp_path, {"model.pt": _evil_pickle(marker)})
    assert not run.has_weights()
    with pytest.raises(RunError, match="no weights"):
        run.load_model()
    assert not marker.exists()


def test_run_with_pickle_bytes_in_model_safetensors(tmp_path, marker):
    run = _run_with(tmp_path, {"model.safetensors": _evil_pickle(marker)})
    with pytest.raises(RunError):
        run.load_model()
    with pytest.raises(RunError):
        run.training_state()
    assert not marker.exists()


def test_run_with_pickle_in_optimizer_and_kernel_files(tmp_path, marker, small_dataset):
    from safetensors.torch import save_file

    run = create_run(TrainConfig(model="logreg"), tmp_path / "runs", run_id="victim", status="completed")
    model = torch.nn.Linear(784, 24)
    save_file({"linear.weight": model.weight.detach().contiguous(), "linear.bias": model.bias.detach()},
              str(run.dir / "model.safetensors"))
    (run.dir / "optimizer.safetensors").write_bytes(_evil_pickle(marker))
    (run.dir / "optimizer.json").write_text('{"param_groups": [], "state": {}}')
    (run.dir / "kernels.safetensors").write_bytes(_evil_pickle(marker))
    assert run.load_model() is not None  # the good weights still load
    with pytest.raises(RunError):
        run.training_state()
    assert run.kernel_history() == {}
    assert not marker.exists()


def test_cli_predict_with_a_poisoned_run(tmp_path, marker, capsys):
    from PIL import Image

    from signlab import cli

    run = _run_with(tmp_path, {"model.safetensors": _evil_pickle(marker)})
    img = tmp_path / "hand.png"
    Image.new("L", (28, 28), 128).save(img)
    code = cli.main(["predict", run.id, str(img), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "model.safetensors" in err and "not a readable safetensors file" in err
    assert not marker.exists()


def test_no_module_calls_pickle_loaders():
    # the only weight reader is safetensors: no torch.load / pickle.load anywhere in the package
    offenders = []
    for path in (ROOT / "signlab").glob("*.py"):
        text = path.read_text()
        for needle in ("torch.load(", "pickle.load", "pickle.loads", "joblib.load", "np.load(allow_pickle=True",
                       "allow_pickle=True"):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def test_poisoned_dataset_cache_is_not_unpickled(tmp_path, marker, monkeypatch):
    import hashlib

    import numpy as np

    from signlab import data

    monkeypatch.setenv("SIGNLAB_CACHE", str(tmp_path / "cache"))
    csv = tmp_path / "train.csv"
    csv.write_text("label," + ",".join(f"pixel{i}" for i in range(1, 785)) + "\n3" + ",7" * 784 + "\n")
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    cached = tmp_path / "cache" / "parsed" / f"v{data.CACHE_VERSION}-{digest}.npz"
    cached.parent.mkdir(parents=True)
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(marker)
    with open(cached, "wb") as f:
        np.savez(f, images=evil, targets=evil)  # object arrays are stored with pickle
    split = data.load_split(str(csv))
    assert not marker.exists()
    assert split.images.shape == (1, 28, 28) and int(split.images.max()) == 7  # rebuilt from the CSV
