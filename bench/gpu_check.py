"""GPU check, under 5 minutes: samples/s of every model, the fast preset's time to accuracy in
lecture-epochs measured on the same GPU, and the ratio to the lecture's loop.

    python bench/gpu_check.py [--device cuda] [--steps 200]

Everything runs on the same device in this one process. signlab keeps the data on the device,
cuts batches by index, trains under bf16 autocast with channels-last, and syncs with the host only
when it logs; the lecture's loop copies every batch from a DataLoader. ``--device cpu --steps 20``
is a smoke test of this script on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import time

from _common import lecture_loop, run_main
from time_to_accuracy import lecture_epoch_seconds, signlab_time_to_accuracy
from train_speed import signlab_rate

import torch

from signlab.config import preset
from signlab.data import load_dataset
from signlab.device import device_description, resolve_device
from signlab.models import model_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3, help="fast-preset runs timed to accuracy")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    t_start = time.perf_counter()
    ds = load_dataset()
    print(f"device: {device_description(dev)}; torch {torch.__version__}")
    # each model against the lecture's loop training that same model (divided by seed_convnet's loop,
    # logreg read 473x)
    print("\nlecture loop: DataLoader, batch 32, Adam, the same model")
    print(f"\n{'model':<14}{'lecture samples/s':>19}{'batch 32 samples/s':>20}{'vs lecture':>12}"
          f"{'batch 256 samples/s':>21}")
    for name in model_names():
        lecture = lecture_loop(ds, name, args.steps, args.warmup, device=str(dev))
        r32 = signlab_rate(ds, name, args.steps, args.warmup, batch_size=32, device=args.device)
        r256 = signlab_rate(ds, name, args.steps, args.warmup, batch_size=256, device=args.device)
        print(f"{name:<14}{lecture:>19,.0f}{r32:>20,.0f}{r32 / lecture:>11.2f}x{r256:>21,.0f}")
    le = lecture_epoch_seconds(ds, device=str(dev))
    print(f"\nlecture-epoch on this device: {le:.2f} s")
    for seed in range(args.seeds):
        cfg = preset("fast", device=args.device, seed=seed)
        reached, acc, train, _ = signlab_time_to_accuracy(ds, cfg, eval_every=20)  # and its steps
        cells = ", ".join(f"{100 * t:g}%: " + ("not reached" if s is None else f"{s:.1f} s = {s / le:.3f} LE")
                          for t, s in reached.items())
        print(f"fast preset, seed {seed}: {cells}; end {100 * acc:.2f}% after {train:.1f} s", flush=True)
    print(f"total time of this check: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    run_main(main)
