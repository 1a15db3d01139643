"""Training throughput: the lecture's loop against signlab's trainer, same model and settings.

    python bench/train_speed.py [--model seed_convnet] [--steps 300]

Both run in this one process, one after the other: the lecture's ``DataLoader`` loop (batch 32,
Adam 1e-3), then signlab's Trainer with the same model, batch size and optimizer, as is and with
channels-last and bf16 autocast. Prints samples/s, the ratio to the lecture loop, the model's
training FLOPs per sample and the fraction of this machine's matmul rate that reaches.
"""
from __future__ import annotations

import argparse
import math
import time

from _common import lecture_loop, matmul_gflops, peak_rss_mb, run_main, threads_note

import torch

from signlab.config import preset
from signlab.data import load_dataset
from signlab.models import build_model, summary_totals
from signlab.trainer import BatchEnd, Trainer


def signlab_rate(ds, model: str, steps: int, warmup: int, batch_size: int | None = None, **changes) -> float:
    """samples/s of signlab's Trainer between step ``warmup`` and the end, training steps only.

    Timed between marks every ``warmup`` steps, leaving out the stretches that cross an epoch's end:
    they held the epoch's validation on the 7,172 test images and its short last batch (counted as a
    whole one), and at batch 256 a 200-step window crossed two (15.7k samples/s against 19.1k)."""
    marks: list[tuple[int, int, float]] = []

    def clock(event, trainer) -> None:
        if isinstance(event, BatchEnd):
            marks.append((event.epoch, event.step, time.perf_counter()))

    # marks every ``warmup`` steps; with fewer steps than that (gpu_check --steps 10) one mark fell after
    # the warm-up and the rate divided by zero, so then every gcd(warmup, steps) steps: a mark lands on
    # the warm-up's last step and on the last one, and the spans timed still start after the warm-up
    every = warmup if steps >= warmup else math.gcd(warmup, steps)
    every = max(1, every)
    cfg = preset("lecture", model=model, max_steps=warmup + steps, log_every=every, batch_size=batch_size,
                 **changes)
    Trainer(cfg, build_model(cfg), ds, [clock]).fit()  # logging syncs the device, so the marks time finished work
    spans = [(s1 - s0, t1 - t0) for (e0, s0, t0), (e1, s1, t1) in zip(marks, marks[1:]) if e0 == e1 and s0 >= warmup]
    if not spans:  # every stretch after the warm-up crossed an epoch's end
        raise SystemExit(f"--steps {steps}: each stretch of {every} steps after the warm-up crossed an epoch's "
                         "end (its validation is not training); give more steps")
    return sum(n for n, _ in spans) * cfg.batch_size / sum(t for _, t in spans)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="seed_convnet")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    ds = load_dataset()
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    macs = summary_totals(args.model)["mult_adds"]
    flops = 6 * macs  # forward 2 FLOP per mult-add, backward about twice the forward
    print(f"machine: fp32 matmul {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s; {threads_note()}")
    print(f"model {args.model}: {macs / 1e6:.2f} M mult-adds forward, ~{flops / 1e6:.1f} MFLOP per training sample")
    print(f"{args.steps} steps at batch 32 after {args.warmup} warm-up steps\n")

    rows = [("lecture loop (DataLoader, batch 32, Adam)", lecture_loop(ds, args.model, args.steps, args.warmup))]
    variants = [("signlab trainer, fp32 NCHW", dict(precision="fp32", channels_last=False)),
                ("signlab trainer, fp32 channels-last", dict(precision="fp32", channels_last=True)),
                ("signlab trainer, bf16 NCHW", dict(precision="bf16", channels_last=False)),
                ("signlab trainer, bf16 + channels-last", dict(precision="bf16", channels_last=True)),
                ("signlab trainer, lecture preset as shipped", dict())]
    for name, changes in variants:
        rows.append((name, signlab_rate(ds, args.model, args.steps, args.warmup, **changes)))
    base = rows[0][1]
    print(f"{'loop':<56}{'samples/s':>11}{'ratio':>8}{'GFLOP/s':>10}{'of fp32 matmul':>16}")
    for name, rate in rows:
        gflops = rate * flops / 1e9
        print(f"{name:<56}{rate:>11,.0f}{rate / base:>7.2f}x{gflops:>10.1f}{100 * gflops / fp32:>15.0f}%")
    print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    run_main(main)
