"""Time to accuracy: the lecture's loop against signlab's recommended configuration, in one run.

    python bench/time_to_accuracy.py [--seeds 0] [--lecture-epochs 10] [--skip-lecture]

Test accuracy is measured every ``--eval-every`` steps with the clock paused, so the seconds are
training time only. Prints the seconds to 90/95/99/99.5/99.9% for each, and the ratio.
"""
from __future__ import annotations

import argparse
import time

from _common import fmt, lecture_time_to_accuracy, peak_rss_mb, threads_note

import torch

from signlab.config import preset
from signlab.data import load_dataset
from signlab.models import build_model
from signlab.predict import predict_logits, to_float_images
from signlab.trainer import BatchEnd, FitEnd, Trainer

TARGETS = [0.90, 0.95, 0.99, 0.995, 0.999]


def signlab_time_to_accuracy(ds, cfg, eval_every: int) -> tuple[dict[float, float | None], float, float]:
    """(seconds to each target, final accuracy, training seconds) for one signlab run."""
    tx, ty = to_float_images(ds.test.images), torch.as_tensor(ds.test.targets)
    reached: dict[float, float | None] = {t: None for t in TARGETS}
    paused = 0.0  # evaluation time, taken off the training clock
    final = {"acc": 0.0, "train": 0.0}

    def watch(event, trainer) -> None:
        nonlocal paused
        if isinstance(event, BatchEnd):
            t0 = time.perf_counter()
            acc = (predict_logits(trainer.model, tx).argmax(1) == ty).float().mean().item()
            for k in TARGETS:
                if reached[k] is None and acc >= k:
                    reached[k] = event.train_seconds - paused
            paused += time.perf_counter() - t0
        elif isinstance(event, FitEnd):
            final["train"] = event.train_seconds - paused

    cfg = cfg.replace(log_every=eval_every)
    end = Trainer(cfg, build_model(cfg), ds, [watch]).fit()
    final["acc"] = end.val_accuracy or 0.0
    return reached, final["acc"], final["train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--eval-every", type=int, default=25, help="steps between test evaluations (signlab)")
    ap.add_argument("--lecture-epochs", type=int, default=10)
    ap.add_argument("--skip-lecture", action="store_true")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the fast preset (default: the preset's)")
    args = ap.parse_args()
    ds = load_dataset()
    print(f"{threads_note()}; seconds are training time only (evaluation paused the clock)\n")
    rows = []
    if not args.skip_lecture:
        lec = lecture_time_to_accuracy(ds, TARGETS, "convnet", epochs=args.lecture_epochs, eval_every=200)
        rows.append(("lecture loop: convnet, DataLoader, batch 32, Adam 1e-3", lec, lec.get("final"), lec.get("seconds")))
    for seed in args.seeds:
        cfg = preset("fast", seed=seed, epochs=args.epochs)
        reached, acc, train = signlab_time_to_accuracy(ds, cfg, args.eval_every)
        rows.append((f"signlab fast preset ({cfg.model}, {cfg.epochs} epochs, seed {seed})", reached, acc, train))
    head = "".join(f"{f'{100 * t:g}%':>12}" for t in TARGETS)
    print(f"{'configuration':<58}{head}{'final':>9}{'train s':>9}")
    for name, reached, acc, train in rows:
        cells = "".join(f"{fmt(reached[t]):>12}" for t in TARGETS)
        tail = f"{100 * acc:>8.2f}%{train:>9.1f}" if acc is not None else ""
        print(f"{name:<58}{cells}{tail}")
    if not args.skip_lecture and len(rows) > 1:
        base = rows[0][1]
        for name, reached, _, _ in rows[1:]:
            ratios = [f"{base[t] / reached[t]:.0f}x" if base[t] and reached[t] else
                      ("lecture never got there" if reached[t] else "-") for t in TARGETS]
            print(f"speed-up over the lecture loop ({name.split('(')[1][:-1]}): " + ", ".join(
                f"{100 * t:g}%: {r}" for t, r in zip(TARGETS, ratios)))
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
