"""A few timed training steps of a configuration: how fast a network this server has never trained
would train, for the time estimates of Train, the tour and Sweeps.

:func:`trial_speed` runs the real loop (its network, optimizer, augmentation and precision) on a
slice of the data and returns the upper quartile of its steps' images a second after a short warm-up.
:func:`measure` runs it in a short-lived child process (``python -m signlab.trial``), as a worker
would train: with the workers' share of the cores, no distributed setup, a time limit, and only for
a configuration small enough (:data:`MAX_MEMORY_MB`). The dashboard's server never trains in its
own process: torch's thread count and random generator are the whole process's, shared by every
student's session, and a large configuration from a link (batch 4,096, eight networks) took 74 s
and 3.5 GB when timed in place.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from .access import estimate_memory_mb
from .config import TrainConfig
from .data import Dataset, load_dataset
from .events import BatchEnd
from .models import build_model
from .paths import PROJECT_ROOT
from .trainer import Trainer

TRIAL_WARMUP = 3  # steps not timed: the first allocate buffers and pick kernels, and run slower
MAX_MEMORY_MB = 1024  # larger configurations are not timed (signlab.access.estimate_memory_mb)
TIMEOUT_S = 30.0  # the child's whole life: starting Python and torch (2-4 s), the data, the trial
# the settings that change nothing in a step's speed: a change of epochs must not time it again,
# and ``tta`` only changes predictions
IGNORED = ("epochs", "max_steps", "seed", "lr", "weight_decay", "schedule", "log_every", "val_fraction",
           "data", "label_smoothing", "preset", "tta")
# torchrun's variables: a child that saw them would try to join a process group
_DISTRIBUTED = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


def trial_key(cfg: TrainConfig) -> str:
    """The settings that decide a step's speed, as JSON: one trial serves every configuration with the same key."""
    return json.dumps({k: v for k, v in cfg.to_dict().items() if k not in IGNORED}, sort_keys=True)


def trial_speed(cfg: TrainConfig, dataset: Any, budget_s: float = 1.0, max_steps: int = 40,
                deadline_s: float = 20.0) -> float | None:
    """Images a second ``cfg`` trains at on this machine, in this process: the upper quartile of the
    steps after :data:`TRIAL_WARMUP`, stopped once ``budget_s`` of them or ``max_steps`` are timed (three
    at least), or ``deadline_s`` after the start (the network built, its precision chosen). None
    when fewer than three steps were timed (too few images, or a network too slow for the deadline).
    It moves torch's random generator and threads; :func:`measure` runs it in a child process."""
    started = time.perf_counter()
    n = min(len(dataset.train), cfg.batch_size * (TRIAL_WARMUP + max_steps + 1))
    # the first images: enough for every step, and a small test split (a stopped epoch never validates)
    small = Dataset(train=replace(dataset.train, images=dataset.train.images[:n], targets=dataset.train.targets[:n]),
                    test=replace(dataset.test, images=dataset.test.images[:256], targets=dataset.test.targets[:256]))
    # no schedule: a timing needs none, and it costs nothing a step
    trial = replace(cfg, epochs=1, max_steps=None, log_every=1, val_fraction=0.0, schedule="none")
    speeds: list[float] = []
    spent = 0.0

    def timed(event: Any, trainer: Trainer) -> None:
        nonlocal spent
        if not isinstance(event, BatchEnd):
            return
        if event.step > TRIAL_WARMUP:
            speeds.append(event.samples_per_second)
            spent += cfg.batch_size / max(event.samples_per_second, 1e-9)
        enough = len(speeds) >= 3 and (spent >= budget_s or len(speeds) >= max_steps)
        if enough or time.perf_counter() - started > deadline_s:
            trainer.stop("trial")

    Trainer(trial, build_model(trial), small, [timed]).fit()
    # the upper quartile of the steps' speeds, not their median: other work on the machine (the
    # worker the Train page starts ahead of a click, another page's rendering) only slows steps, and a
    # walk that moved between presets read deepcnn at 2 min, then 23 s on a quiet server
    return float(sorted(speeds)[(3 * len(speeds)) // 4]) if len(speeds) >= 3 else None


def measure(cfg: TrainConfig, env: dict[str, str] | None = None, timeout_s: float = TIMEOUT_S) -> float | None:
    """:func:`trial_speed` of ``cfg`` in a child process (``env``: the workers' thread share, as
    :func:`signlab.launch.cpu_share` gives it); None when the configuration is over
    :data:`MAX_MEMORY_MB`, the child fails or outlives ``timeout_s`` (it is killed then)."""
    try:
        if estimate_memory_mb(cfg) > MAX_MEMORY_MB:
            return None
    except Exception:  # noqa: BLE001 - a model the estimate cannot build is not timed either
        return None
    child_env = {k: v for k, v in os.environ.items() if k not in _DISTRIBUTED}
    try:
        # the bundled data: a run's own source (a URL, a folder) is read when the run starts, not to time it
        config = json.dumps(replace(cfg, data=None).to_dict())
        done = subprocess.run([sys.executable, "-m", "signlab.trial", config], cwd=PROJECT_ROOT,
                              env={**child_env, **(env or {})}, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout_s)
        speed = json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"] if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError, TypeError):
        return None  # killed at the timeout, or no answer: nothing is said
    return float(speed) if isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0 else None


def main(argv: list[str] | None = None) -> int:
    """``python -m signlab.trial CONFIG_JSON``: print ``{"images_per_second": x}`` (null when it
    could not be timed). The child :func:`measure` starts; not a command of the CLI."""
    args = sys.argv[1:] if argv is None else argv
    cfg = TrainConfig.from_dict(json.loads(args[0]))
    print(json.dumps({"images_per_second": trial_speed(cfg, load_dataset(cfg.data))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
