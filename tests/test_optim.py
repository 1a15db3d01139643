"""The Muon optimiser (``optimizer="muon"``): its orthogonalisation, which parameters it takes, its
AdamW half against torch's AdamW, learning on the real dataset, and a continuation's state."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from signlab import api
from signlab.config import TrainConfig
from signlab.models import build_model, model_names
from signlab.optim import MUON_LR_SCALE, MuonAdamW, orthogonalize
from signlab.runs import open_run
from signlab.trainer import Trainer, make_optimizer, param_groups


@pytest.mark.parametrize("shape", [(48, 72), (64, 432), (64, 576), (100, 25)])  # s2net's filters; the lecture's first
def test_orthogonalize_evens_out_the_singular_values(shape):
    """A gradient's strong directions dwarf its weak ones (here 100 to 1); Muon's update moves
    every direction about equally: Newton-Schulz leaves the singular values near 1 (0.68-1.20 with
    these coefficients, which trade exactness for speed), and keeps the directions."""
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], shape[0]))
    v, _ = torch.linalg.qr(torch.randn(shape[1], shape[1]))
    r = min(shape)
    s = torch.logspace(0, -2, r)
    g = u[:, :r] @ torch.diag(s) @ v[:, :r].T  # (rows, cols), singular values 1 .. 0.01
    o = orthogonalize(g)
    assert o.shape == g.shape
    sv = torch.linalg.svdvals(o)
    assert sv.min() > 0.6 and sv.max() < 1.25, sv
    # the same singular vectors: o is about u diag(~1) v^T
    assert torch.allclose(u[:, :r].T @ o @ v[:, :r], torch.diag(torch.diagonal(u[:, :r].T @ o @ v[:, :r])), atol=0.05)


@pytest.mark.parametrize("name", model_names())
def test_muon_takes_the_convolution_filters_and_adamw_the_rest(name):
    cfg = TrainConfig(model=name, optimizer="muon", device="cpu")
    model = build_model(cfg)
    opt = make_optimizer(cfg, param_groups(cfg, model))
    assert isinstance(opt, MuonAdamW)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(seen) == sorted(id(p) for p in trainable)  # each trainable parameter once, frozen ones not
    for g in opt.param_groups:
        assert all((p.ndim == 4) == g["muon"] for p in g["params"]), name
        if g["muon"]:
            assert g["lr"] == pytest.approx(cfg.lr * g["lr_scale"]) and g["lr_scale"] >= MUON_LR_SCALE
    has_conv = any(isinstance(m, nn.Conv2d) and m.weight.requires_grad for m in model.modules())
    assert any(g["muon"] for g in opt.param_groups) == has_conv, name


def test_the_adamw_half_steps_as_torchs_adamw():
    """Parameters outside the Muon groups follow AdamW exactly (decoupled decay, bias correction)."""
    torch.manual_seed(0)
    a, b = nn.Linear(6, 3), nn.Linear(6, 3)
    b.load_state_dict(a.state_dict())
    ours = MuonAdamW([{"params": list(a.parameters())}], lr=1e-2, weight_decay=0.1)
    theirs = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.randn(16, 6)
    for _ in range(5):
        for model, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (p - q).abs().max()


def test_a_muon_run_learns_and_its_continuation_keeps_the_momentum(tmp_path, small_dataset):
    """s2net with Muon on 2,000 real training images learns (24 letters: chance is 4%); a continued
    run restores Muon's momentum buffers instead of starting them afresh."""
    cfg = TrainConfig(model="s2net", optimizer="muon", epochs=2, batch_size=100, device="cpu", tta=False,
                      precision="fp32")
    rec = api.train(cfg, tmp_path, run_id="m", dataset=small_dataset)
    assert rec["status"] == "completed" and rec["val_accuracy"] > 0.6, rec
    run = open_run("m", tmp_path)
    state = run.training_state()["optimizer"]
    buffers = [s["momentum_buffer"] for s in state["state"].values() if "momentum_buffer" in s]
    assert len(buffers) == 3 and all(b.ndim == 4 and b.abs().sum() > 0 for b in buffers)
    trainer = Trainer(run.config.replace(epochs=1), build_model(run.config), small_dataset, [],
                      start_epoch=2, optimizer_state=state)
    restored = [s["momentum_buffer"] for s in trainer.optimizer.state.values() if "momentum_buffer" in s]
    assert len(restored) == 3 and all(torch.equal(x, y) for x, y in zip(buffers, restored))


def test_a_muon_step_is_the_reference_algorithm():
    """Three steps on one convolution's filters against Muon written out (Keller Jordan's: Nesterov
    momentum, Newton-Schulz of the flattened filters, scaled to AdamW's size, decoupled decay); the
    checks above pass with a wrong step, this one does not."""
    torch.manual_seed(1)
    conv = nn.Conv2d(8, 16, 3)  # filters (16, 8, 3, 3): a 16x72 matrix
    w = conv.weight.detach().clone()
    opt = MuonAdamW([{"params": [conv.weight], "muon": True}], lr=0.02, weight_decay=0.1, momentum=0.9)
    buf = torch.zeros_like(w)
    for step in range(3):
        g = torch.randn_like(w)
        conv.weight.grad = g.clone()
        opt.step()
        buf = 0.9 * buf + g
        nesterov = (g + 0.9 * buf).reshape(16, -1)
        x = nesterov / nesterov.norm()
        for _ in range(5):
            gram = x @ x.T
            x = 3.4445 * x + (-4.7750 * gram + 2.0315 * gram @ gram) @ x
        w = w * (1 - 0.02 * 0.1) - 0.02 * 0.2 * 72 ** 0.5 * x.reshape_as(w)
        assert torch.allclose(conv.weight.detach(), w, atol=1e-5), (step, (conv.weight - w).abs().max())


def test_the_logged_learning_rate_is_the_schedules_for_every_optimizer(small_dataset):
    """Muon's filters learn at 3x the rate; the log and the chart still say the run's rate (they
    read the first group, the filters', and said 3x)."""
    from signlab.trainer import BatchEnd

    for optimizer in ("muon", "adamw"):
        cfg = TrainConfig(model="s2net", optimizer=optimizer, lr=2e-3, schedule="none", epochs=1, max_steps=4,
                          log_every=2, batch_size=50, device="cpu", tta=False)
        events = []
        Trainer(cfg, build_model(cfg), small_dataset, [lambda e, t: events.append(e)]).fit()
        lrs = [e.lr for e in events if isinstance(e, BatchEnd)]
        assert lrs and all(lr == pytest.approx(2e-3) for lr in lrs), (optimizer, lrs)
