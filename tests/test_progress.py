"""The command line's progress bar (signlab.cli.ProgressBar): a tqdm bar on a terminal, lines only
elsewhere; stdout is never touched (the --json contract is in tests/test_cli.py)."""
from __future__ import annotations

import io
from types import SimpleNamespace

from signlab.cli import ProgressBar
from signlab.events import BatchEnd, EpochEnd, FitEnd, FitStart


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(stream: io.StringIO) -> str:
    bar = ProgressBar(stream)
    trainer = SimpleNamespace(cfg=SimpleNamespace(model="logreg"), total_steps=4)
    bar(FitStart(1, 0, 4, 400, 100, "CPU (2 threads)", 18840), trainer)
    for step in (2, 4):
        bar(BatchEnd(step, 1, 1.5, 0.01, 1000.0, 0.1 * step, step / 4), trainer)
    bar(EpochEnd(1, 1.2, 0.5, 1.1, 0.6, 0.4, 0.4, 1000.0), trainer)
    bar(FitEnd("completed", "trained 1 epoch", 1, 4, 0.4, 1000.0, 0.6), trainer)
    return stream.getvalue()


def test_not_a_terminal_gets_lines_only():
    out = _feed(io.StringIO())
    assert out.splitlines() == [
        "training logreg on CPU (2 threads): 400 images, 18,840 parameters",
        "epoch 1/1: train loss 1.2000 acc 50.00% | val loss 1.1000 acc 60.00% | 0.4s",
        "completed: trained 1 epoch"]


def test_a_terminal_gets_a_bar_that_is_cleared_at_the_end():
    out = _feed(_Terminal())
    assert "\r" in out and "epoch 1/1" in out and "loss 1.5000" in out and "images/s" in out
    assert out.rstrip().endswith("completed: trained 1 epoch")
    assert "epoch 1/1: train loss 1.2000" in out


def test_one_thread_is_said_in_the_singular():
    """The device line read "CPU (1 threads)" under OMP_NUM_THREADS=1 (as the test suite and a
    torchrun process run)."""
    import torch

    from signlab.device import device_description

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert device_description(torch.device("cpu")) == "CPU (1 thread)"
        torch.set_num_threads(2)
        assert device_description(torch.device("cpu")) == "CPU (2 threads)"
    finally:
        torch.set_num_threads(before)
