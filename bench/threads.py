"""Training time on one thread and on all of them, on an idle machine and beside a busy process.

    python bench/threads.py [--models logreg mlp seed_convnet] [--epochs 1] [--reps 2]

For each model (the lecture preset's settings: batch 32, Adam 1e-3, one epoch by default) it
trains with ``threads`` 1 and with torch's default thread count, first with nothing else running,
then beside one process that keeps a core busy (a stand-in for the browser drawing the Train page,
or another user's work). It prints the seconds of training of each and their ratio. It is why
``signlab.models.cpu_threads`` sends logistic regression and the MLP to one thread and leaves the
ConvNets on all (docs/speed-research.md, Part 23): a 0.5 ms step waits on a thread the scheduler
has set aside, and stops being faster with two.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics

from _common import run_main, threads_note

import torch

from signlab import api
from signlab.config import preset
from signlab.data import load_dataset


def _spin() -> None:  # a busy core
    while True:
        pass


def seconds(ds, model: str, epochs: int, threads: int, reps: int, runs_dir: str) -> float:
    """Median training seconds (the run's own clock) of ``reps`` runs of ``model`` on ``threads`` threads."""
    cfg = preset("lecture", model=model, epochs=epochs, threads=threads)
    return statistics.median(api.train(cfg, runs_dir, dataset=ds)["train_seconds"] for _ in range(reps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["logreg", "mlp", "seed_convnet"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    import tempfile

    ds = load_dataset()
    most = torch.get_num_threads()
    print(threads_note())
    print(f"{'model':<14} {'machine':<10} {'1 thread':>10} {f'{most} threads':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as runs_dir:
        for label in ("idle", "one busy"):
            spinner = None
            if label == "one busy":
                spinner = mp.get_context("spawn").Process(target=_spin, daemon=True)
                spinner.start()
            try:
                for model in args.models:
                    one = seconds(ds, model, args.epochs, 1, args.reps, runs_dir)
                    many = seconds(ds, model, args.epochs, most, args.reps, runs_dir)
                    print(f"{model:<14} {label:<10} {one:>9.2f}s {many:>9.2f}s {many / one:>6.2f}x", flush=True)
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()


if __name__ == "__main__":
    run_main(main)
