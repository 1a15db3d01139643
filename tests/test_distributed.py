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


def _fitted_stem_gap(rank: int, world: int, images, labels, out: str) -> None:
    """One process of a gloo group: build a Trainer for s2net and report (rank 0) how far the ranks'
    frozen whitening filters are apart. The group meets in a file, not on a port another test may hold."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), OMP_NUM_THREADS="1")
    import torch

    from signlab.config import TrainConfig
    from signlab.data import Dataset, Split
    from signlab.models import WhitenStem, build_model
    from signlab.trainer import Trainer

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}.group", rank=rank, world_size=world)
    try:
        ds = Dataset(train=Split(images, labels, "train"), test=Split(images[:48], labels[:48], "test"))
        cfg = TrainConfig(model="s2net", epochs=1, device="cpu")
        trainer = Trainer(cfg, build_model(cfg), ds)
        (stem,) = [m for m in trainer.model.modules() if isinstance(m, WhitenStem)]
        w = stem.conv.weight.detach().contiguous()
        every = [torch.empty_like(w) for _ in range(world)]
        torch.distributed.all_gather(every, w)
        if rank == 0:
            Path(out).write_text(str(max((every[0] - e).abs().max().item() for e in every)))
        # both done before either tears down: a process that left first closed its connection while the
        # other still used it, and that one died on a signal (twice in the suite, on a loaded machine)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_every_process_trains_with_rank_0s_whitening_filters(tmp_path, small_dataset):
    """s2net's frozen first layer is fitted to the data. Fitted after DDP was made, each process fitted
    it to its own share and kept it (DDP copies rank 0's weights only when it is made): the processes
    trained different networks, whose filters differed by 0.04."""
    import torch.multiprocessing as mp

    out = tmp_path / "gap.txt"
    split = small_dataset.train
    mp.start_processes(_fitted_stem_gap, args=(2, split.images, split.targets, str(out)), nprocs=2,
                       start_method="spawn")
    assert float(out.read_text()) == 0.0


def test_a_stop_asked_after_the_processes_agreed_waits_for_their_next_agreement(small_dataset, monkeypatch):
    """Under torchrun the processes leave the loop on what they agreed at a logging step. The stop flag
    was read again after the agreement: a Ctrl-C landing in between took rank 0 out of the loop alone,
    and the others waited in their next collective for good."""
    import torch

    from signlab.config import TrainConfig
    from signlab.models import build_model
    from signlab.trainer import Trainer

    cfg = TrainConfig(model="logreg", epochs=1, device="cpu")
    trainer = Trainer(cfg, build_model(cfg), small_dataset)
    trainer.world = 2  # as one of two processes (the collective is stood in for below)
    loss = torch.tensor(1.0)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda flags, op: trainer.stop())  # lands just after
    assert trainer._should_leave(loss, at_log=True, epoch=0) is False  # the others agreed to go on
    assert trainer._should_leave(loss, at_log=False, epoch=0) is False  # no agreement between logging steps
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda flags, op: None)  # the next logging step
    assert trainer._should_leave(loss, at_log=True, epoch=0) is True


def test_ctrl_c_in_a_process_other_than_rank_0_asks_for_the_agreed_stop(tmp_path, small_dataset, monkeypatch):
    """A rank other than 0 reports nothing, so the command line's Ctrl-C callback never learned its
    trainer: a press there quit that process at once, and rank 0 met a dead peer. It is told now."""
    import torch

    from signlab import api
    from signlab.cli import CtrlC
    from signlab.config import TrainConfig

    made = []

    class Trainer:  # rank 1's trainer, recorded
        def __init__(self, *args, **kwargs):
            self.reasons = []
            made.append(self)

        def stop(self, reason):
            self.reasons.append(reason)

        def fit(self):
            return type("End", (), {"status": "completed"})()

    monkeypatch.setattr(api, "distributed_rank_world", lambda: (1, 2))
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", lambda ids, src: None)
    monkeypatch.setattr(api, "Trainer", Trainer)
    ctrl_c = CtrlC()
    record = api.train(TrainConfig(model="logreg", epochs=1), tmp_path, callbacks=[ctrl_c], dataset=small_dataset)
    assert record["rank"] == 1 and ctrl_c.trainer is made[0]
    assert ctrl_c._first_press() == "stopping after this step" and made[0].reasons == [CtrlC.REASON]
