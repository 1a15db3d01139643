"""Training under torchrun with DistributedDataParallel (gloo on the CPU): one run, same format."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _train(cmd: list[str], runs: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd + ["train", "--model", "logreg", "--epochs", "2", "--no-augment", "--runs-dir", str(runs),
                                "--json", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_two_gloo_processes_write_one_run_close_to_single_process(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun") if (Path(sys.executable).parent / "torchrun").exists() \
        else shutil.which("torchrun")
    ddp = _train([torchrun, "--nproc-per-node", "2", "--master-port", "29531", "-m", "signlab"], tmp_path / "ddp")
    single = _train([sys.executable, "-m", "signlab"], tmp_path / "single")
    runs = [d for d in (tmp_path / "ddp").iterdir() if d.is_dir()]
    assert len(runs) == 1, "only rank 0 writes a run"
    run_dir = runs[0]
    for name in ("config.json", "metrics.jsonl", "model.safetensors"):
        assert (run_dir / name).is_file(), name
    from signlab.runs import list_runs

    assert [r.id for r in list_runs(tmp_path / "ddp")] == [run_dir.name]  # one row in the run store
    assert list_runs(tmp_path / "ddp")[0].summary()["status"] == "completed"
    assert ddp["status"] == "completed" and ddp["epochs"] == 2
    fit_starts = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                  if '"fit_start"' in line]
    assert len(fit_starts) == 1 and fit_starts[0]["n_train"] == 27455 // 2  # each process trains on half
    assert abs(ddp["test_accuracy"] - single["test_accuracy"]) < 0.05, (ddp["test_accuracy"], single["test_accuracy"])
    assert ddp["test_accuracy"] > 0.4  # logistic regression after 2 epochs is far above chance (4%)
