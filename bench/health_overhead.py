"""What the health statistics cost: training time with and without signlab.health.HealthMonitor.

For each model (the fast preset's fastcnn at its default logging interval of 10 steps, and the
lecture ConvNet at the lecture preset's 50), trains the same steps with and without the monitor,
alternating the two ``--reps`` times (a shared machine drifts), and prints the median training
times side by side with their ratio. Training time is the Trainer's own clock (validation left out).
On a busy shared machine the two runs' times drift more than the monitor costs, so the monitor
also clocks its own work inside each monitored run ("monitor share" of that run's training time).

    python bench/health_overhead.py                 # both models, 300 steps, 3 repetitions each
    python bench/health_overhead.py --steps 600 --reps 5 --models fastcnn
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import run_main  # noqa: E402

from signlab.config import preset  # noqa: E402
from signlab.data import Dataset, Split, load_dataset  # noqa: E402
from signlab.health import HealthMonitor  # noqa: E402
from signlab.models import build_model  # noqa: E402
from signlab.trainer import Trainer  # noqa: E402

PRESETS = {"fastcnn": "fast", "seed_convnet": "lecture"}


class TimedMonitor(HealthMonitor):
    """The monitor, clocking its own work (hooks and callback) within the run it watches: a
    measure of its cost that a busy shared machine disturbs much less than two separate runs."""

    def __init__(self, log) -> None:
        super().__init__(log)
        self.spent = 0.0

    def _timed(self, fn):
        def wrapped(*args):
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.spent += time.perf_counter() - t
        return wrapped

    def _relu_hook(self, name):
        return self._timed(super()._relu_hook(name))

    def _logits_hook(self, *args):
        return self._timed(super()._logits_hook)(*args)

    def __call__(self, event, trainer) -> None:
        self._timed(super().__call__)(event, trainer)


def train_seconds(cfg, ds: Dataset, monitored: bool) -> tuple[float, int, float]:
    """(training seconds, health records, seconds the monitor itself spent)."""
    records: list[dict] = []
    mon = TimedMonitor(records.append) if monitored else None
    end = Trainer(cfg, build_model(cfg), ds, [mon] if mon else []).fit()
    return end.train_seconds, len(records), mon.spent if mon else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(PRESETS))
    args = ap.parse_args()
    full = load_dataset()
    ds = Dataset(train=full.train, test=Split(full.test.images[:256], full.test.targets[:256], full.test.source))
    print(f"{'model':<14}{'log every':>10}{'steps':>7}{'without (s)':>13}{'with (s)':>10}{'ratio':>8}{'records':>9}"
          f"{'monitor (s)':>13}{'monitor share':>15}")
    for model in args.models:
        # epochs far beyond the steps: max_steps alone decides how long each measurement trains
        cfg = preset(PRESETS.get(model, "fast"), model=model, epochs=50, max_steps=args.steps)
        warm = cfg.replace(max_steps=20)
        Trainer(warm, build_model(warm), ds).fit()  # warm-up: first-call costs out of the comparison
        without, with_, spent, n = [], [], [], 0
        for _ in range(args.reps):
            without.append(train_seconds(cfg, ds, False)[0])
            t, n, own = train_seconds(cfg, ds, True)
            with_.append(t)
            spent.append(own / t)
        a, b = statistics.median(without), statistics.median(with_)
        share = statistics.median(spent)
        print(f"{model:<14}{cfg.log_every:>10}{args.steps:>7}{a:>13.2f}{b:>10.2f}{b / a:>8.3f}{n:>9}"
              f"{share * b:>13.3f}{100 * share:>14.2f}%")


if __name__ == "__main__":
    run_main(main)
