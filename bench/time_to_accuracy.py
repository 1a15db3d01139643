"""Time to accuracy in lecture-epochs: signlab's fast preset against the lecture's own loop, one run.

    python bench/time_to_accuracy.py [--seeds 0 1 2 3 4] [--eval-every 10] [--long-epochs 6] [--long-eval-every 50]
                                     [--skip-long] [--skip-same-model] [--pairs 5]

The unit is **a lecture-epoch** (LE): the time the lecture's loop (its ConvNet, ``DataLoader``
batch 32, Adam 1e-3) takes for one epoch on this machine, measured in this run before and after
signlab's runs; the shorter of the two is the unit, which is the stricter choice. Seconds do not
carry from one CPU to another; this ratio does (issue #18).

For each seed it trains the fast preset (the Train page's and the CLI's default), copies its
weights every ``--eval-every`` steps with the clock paused, and after the run evaluates all 7,172
test images on each copy; the clock runs from building the model (whitening fit and data
preparation included) to each copy.
It reports when each target (90% to 100%) was first reached, in seconds and LE, the mean and the
worst over the seeds, and the accuracy at the end of the preset's schedule; beside them, what the
lecture's loop reads after the one epoch it is timed for. A second, longer run per seed
(``--long-epochs``) looks for the first copy at 7172/7172 and reports the median seed's time to 100%. Last, the
lecture's model with the lecture's settings in signlab's trainer against the lecture loop
(samples/s, the same model and settings), in ``--pairs`` pairs taken in turn, and their median ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

from _common import lecture_loop, peak_rss_mb, run_main, threads_note
from train_speed import signlab_rate

import torch

from signlab.config import SETTING, preset
from signlab.data import load_dataset
from signlab.device import native_cpu_bf16, use_bf16
from signlab.models import build_model
from signlab.predict import predict_logits, to_float_images
from signlab.settings import parse_value
from signlab.trainer import BatchEnd, FitEnd, Trainer, measure_precision

TARGETS = [0.90, 0.95, 0.99, 0.995, 0.999, 1.0]  # 90 and 95%: issue #6's targets, kept beside #18's
GOAL_LE = 0.25  # issue #18: 99.9% within a quarter of a lecture-epoch, on every seed


def parse_setting(item: str) -> tuple[str, object]:
    """``KEY=VALUE`` as a TrainConfig change, read and checked as a link's value is."""
    key, _, text = item.partition("=")
    if key not in SETTING:
        raise SystemExit(f"--set {item}: {key!r} is not a setting")
    try:
        return key, parse_value(SETTING[key], text)
    except ValueError as err:
        raise SystemExit(f"--set {item}: {text!r} {err}") from None


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def lecture_epoch_seconds(ds, device: str = "cpu", accuracy: list[float] | None = None) -> float:
    """Seconds for one epoch (27,455 images) of the lecture's loop, after 20 warm-up steps;
    ``accuracy``, where given, receives its ConvNet's test accuracy after that epoch (off the clock)."""
    steps = -(-len(ds.train) // 32)
    trained: list = []
    seconds = len(ds.train) / lecture_loop(ds, "seed_convnet", steps=steps, warmup=20, device=device, trained=trained)
    if accuracy is not None:
        model = trained[0].eval()
        with torch.no_grad():  # the lecture's model reads raw pixels / 255, as its loop trained it
            x = torch.as_tensor(ds.test.images, dtype=torch.float32).unsqueeze(1).to(device) / 255.0
            pred = torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(x), 1024)]).cpu()
        accuracy.append(float((pred == torch.as_tensor(ds.test.targets)).float().mean()))
    return seconds


def signlab_time_to_accuracy(ds, cfg, eval_every: int, stop_at: float | None = None
                             ) -> tuple[dict[float, float | None], float, float, dict[float, int]]:
    """(seconds to each target, last accuracy measured, seconds of the run, step at each target
    reached) for one signlab run: steps tell the seed's luck apart from the machine's speed.

    Seconds run from building the model to each snapshot. Every ``eval_every`` steps the run copies
    its weights (well under a millisecond, clock paused); the test set is evaluated on the copies
    after the run, so 36k images through the network between two steps cannot disturb the training
    being timed (caches, allocator). On an AVX2 machine the change was within the noise (99.9% after
    8.4-10.2 s evaluating in between, 8.7-10.5 s after). The trainer's own validation after each
    epoch stays on the clock: the user waits for it too. ``stop_at``: the first copy at that
    accuracy ends the measurement (the long runs' 100%); the run goes on to its schedule's end.
    """
    tx, ty = to_float_images(ds.test.images), torch.as_tensor(ds.test.targets)
    snapshots: list[tuple[float, int, dict[str, torch.Tensor]]] = []
    paused = 0.0
    start = time.perf_counter()

    def snapshot(trainer) -> None:
        nonlocal paused
        now = time.perf_counter()
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        snapshots.append((now - start - paused, trainer.step, state))
        paused += time.perf_counter() - now

    def watch(event, trainer) -> None:  # every logged step, and the last steps since the last one
        if isinstance(event, BatchEnd) or (isinstance(event, FitEnd) and event.steps % eval_every):
            snapshot(trainer)

    cfg = cfg.replace(log_every=eval_every)
    trainer = Trainer(cfg, build_model(cfg), ds, [watch])
    trainer.fit()
    reached: dict[float, float | None] = {t: None for t in TARGETS}
    acc, clock = 0.0, 0.0
    steps: dict[float, int] = {}
    tx = tx.to(trainer.device)
    for clock, step, state in snapshots:
        trainer.model.load_state_dict(state)
        correct = int((predict_logits(trainer.model, tx).argmax(1).cpu() == ty).sum())
        acc = correct / len(ty)
        for k in TARGETS:
            if reached[k] is None and correct >= k * len(ty) - 1e-9:
                reached[k], steps[k] = clock, step
        if stop_at is not None and acc >= stop_at:
            break
    return reached, acc, clock, steps


def _le(seconds: float | None, le: float) -> str:
    return "not reached" if seconds is None else f"{seconds:5.2f} s = {seconds / le:.3f} LE"


def precision_note(cfg) -> str:
    """What ``precision auto`` trains the preset's network in here, settled before the clock starts.

    With native bf16 the trainer times a pass of the network both ways once per machine and keeps
    the verdict in the cache folder (signlab.trainer.measure_precision); settling it here, off the
    clock, stands for that cache, as the app's warm worker does (signlab.worker.warm_up). A user's
    first run of another network on a machine pays about half a second more, later runs nothing.
    """
    v = measure_precision(cfg, build_model(cfg), torch.zeros(cfg.batch_size, 1, 28, 28))
    if v is None:
        return f"precision: {'bf16' if use_bf16(cfg.precision, torch.device('cpu')) else 'fp32'} ({cfg.precision})"
    return (f"precision auto: {'bf16' if v['bf16'] else 'fp32'} for {cfg.model} here (a training pass "
            f"{v['bf16_ms']:.1f} ms in bf16, {v['fp32_ms']:.1f} ms in fp32, measured once per machine and "
            "network, off the clock)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--eval-every", type=int, default=10, help="steps between test evaluations")
    ap.add_argument("--long-epochs", type=int, default=6, help="epochs of the run that looks for 100%%")
    ap.add_argument("--long-eval-every", type=int, default=50, help="steps between test evaluations of the long runs")
    ap.add_argument("--skip-long", action="store_true", help="no long runs (no time to 100%%)")
    ap.add_argument("--skip-same-model", action="store_true", help="no same-model throughput comparison")
    ap.add_argument("--pairs", type=int, default=5, help="lecture loop / signlab pairs of the same-model comparison")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="change the preset, to measure a lever (e.g. --set tta=false epochs=3)")
    args = ap.parse_args()
    ds = load_dataset()
    fast = preset("fast", **dict(parse_setting(item) for item in args.set))
    print(f"machine: {cpu_model()}; torch {torch.__version__}; CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; native bf16: {native_cpu_bf16()}; "
          f"{threads_note()}")
    print(f"fast preset: {fast.model}, {fast.epochs} epochs, batch {fast.batch_size}, {fast.optimizer} "
          f"{fast.lr:g}, augment {fast.augment_style}, label smoothing {fast.label_smoothing}, norm lr x"
          f"{fast.norm_lr_scale:g}, test-time shifts {fast.tta}, precision {fast.precision}")
    print(precision_note(fast))
    lecture_acc: list[float] = []
    le_before = lecture_epoch_seconds(ds, accuracy=lecture_acc)
    print(f"lecture-epoch (before): {le_before:.2f} s; the lecture's loop then reads {100 * lecture_acc[0]:.2f}% "
          "of the test set\n")

    runs = []
    for seed in args.seeds:
        reached, acc, clock, steps = signlab_time_to_accuracy(ds, fast.replace(seed=seed), args.eval_every)
        runs.append((seed, reached, acc, clock))
        print(f"  seed {seed}: 99.9% after {reached[0.999] and round(reached[0.999], 2)} s (step "
              f"{steps.get(0.999)}); "
              f"end of schedule {100 * acc:.2f}% after {clock:.2f} s", flush=True)
    longs = []
    if not args.skip_long:
        for seed in args.seeds:
            reached, acc, clock, _ = signlab_time_to_accuracy(ds, fast.replace(seed=seed, epochs=args.long_epochs),
                                                           args.long_eval_every, stop_at=1.0)
            longs.append((seed, reached[1.0], acc))
            print(f"  seed {seed}, {args.long_epochs} epochs: 100% after {reached[1.0] and round(reached[1.0], 2)} s "
                  f"(best {100 * acc:.2f}% when it stopped)", flush=True)
    same = None
    if not args.skip_same_model:
        # pairs taken in turn, their median ratio: on a shared 2-core machine one pair of 300 steps
        # each read anywhere from 1.24x to 1.63x in one sitting (2026-12-01, AVX2)
        same = [(lecture_loop(ds, "seed_convnet", steps=300, warmup=20), signlab_rate(ds, "seed_convnet", 300, 20))
                for _ in range(args.pairs)]
    le_after = lecture_epoch_seconds(ds)
    le = min(le_before, le_after)
    print(f"\nlecture-epoch (after): {le_after:.2f} s; the unit (LE) is the shorter: {le:.2f} s\n")

    print(f"{'fast preset':<12}" + "".join(f"{f'{100 * t:g}%':>22}" for t in TARGETS) + f"{'end of schedule':>26}")
    # the lecture's loop, timed for one epoch: a target it reached by then is reached within 1 LE
    # (its model after the timed epoch and the 20 warm-up steps before it: 878 steps of 858 an epoch)
    print(f"{'lecture loop':<12}" + "".join(f"{'<= 1 LE' if lecture_acc[0] >= t else 'not in 1 LE':>22}"
                                           for t in TARGETS) + f"{f'{100 * lecture_acc[0]:.2f}% after 1 epoch':>26}")
    for seed, reached, acc, clock in runs:
        print(f"{f'seed {seed}':<12}" + "".join(f"{_le(reached[t], le):>22}" for t in TARGETS)
              + f"{f'{100 * acc:.2f}% at {clock / le:.3f} LE':>26}")
    t999 = [r[0.999] for _, r, _, _ in runs]
    if all(t is not None for t in t999):
        mean, worst = statistics.mean(t999) / le, max(t999) / le
        verdict = "met" if worst <= GOAL_LE else "NOT met"
        print(f"\n99.9%: mean {mean:.3f} LE, worst {worst:.3f} LE over {len(t999)} seeds "
              f"(goal <= {GOAL_LE} on every seed: {verdict})")
    else:
        print(f"\n99.9%: not reached on {sum(t is None for t in t999)} of {len(t999)} seeds (goal NOT met)")
    if longs:
        times = sorted((t if t is not None else float("inf")) for _, t, _ in longs)
        median = times[len(times) // 2]
        print(f"100% (7172/7172) with {args.long_epochs} epochs: " + ", ".join(
            f"seed {s} {'not reached' if t is None else f'{t / le:.2f} LE'}" for s, t, _ in longs)
            + f"; median seed {'not reached' if median == float('inf') else f'{median / le:.2f} LE'}"
            + f" (goal <= 1 LE: {'met' if median <= le else 'NOT met'})")
    if same:
        ratio = statistics.median(ours / lecture for lecture, ours in same)
        print("same model and settings (seed_convnet, batch 32, Adam 1e-3), samples/s, lecture loop / signlab: "
              + ", ".join(f"{lecture:,.0f} / {ours:,.0f} = {ours / lecture:.2f}x" for lecture, ours in same)
              + f"; median {ratio:.2f}x (goal >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    run_main(main)
