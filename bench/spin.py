"""Training beside a busy core: libgomp's default spin count against signlab's, side by side.

    python bench/spin.py [--models s2net:100 seed_convnet:200] [--reps 2] [--busy 0 1]

For each model (``name:steps``; s2net with the fast preset's settings, the others with the lecture
preset's, fp32, seed 0, torch's default thread count) it trains that many steps in a fresh process
with ``GOMP_SPINCOUNT`` at 300,000 (what libgomp, torch's OpenMP, uses when nothing is set) and at
signlab's :data:`signlab.OMP_SPIN`, first on an idle machine, then beside one process that keeps a
core busy (a stand-in for the browser drawing the Train page, or another user's work), and beside
more such processes with ``--busy``. It prints
the median seconds of training of each, the ratio default / signlab's, and whether the weights came
out identical (they must: how long a thread spins does not change what it computes).
docs/speed-research.md, Part 26, has the figures and why signlab sets the variable on import.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPIN = "300000"  # libgomp's spin count when OMP_WAIT_POLICY is not set

# a fresh process for each case: libgomp reads GOMP_SPINCOUNT once, when torch loads it
CHILD = r"""
import hashlib, json, sys, tempfile
from signlab import api
from signlab.config import preset
from signlab.data import load_dataset
from signlab.runs import open_run_id
model, steps, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = load_dataset()
out = []
with tempfile.TemporaryDirectory() as d:
    for _ in range(reps):
        cfg = preset("fast" if model == "s2net" else "lecture", model=model, epochs=1, max_steps=steps,
                     seed=0, precision="fp32")
        r = api.train(cfg, d, dataset=ds)
        weights = open_run_id(r["run_id"], d).dir / "model.safetensors"
        out.append([r["train_seconds"], hashlib.sha1(weights.read_bytes()).hexdigest()])
print(json.dumps(out))
"""


def _spin() -> None:  # a busy core
    while True:
        pass


def train(model: str, steps: int, reps: int, spin: str) -> tuple[float, set[str]]:
    """Median seconds of training and the weights' digests, in a child process with ``spin``."""
    env = {**os.environ, "GOMP_SPINCOUNT": spin, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(steps), str(reps)], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"spin.py: training {model} failed:\n{done.stderr[-2000:]}")
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    return statistics.median(s for s, _ in runs), {h for _, h in runs}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from signlab import OMP_SPIN

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["s2net:100", "seed_convnet:200"],
                    help="name:steps for each model (default: s2net:100 seed_convnet:200)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy processes beside it (default: 0 1)")
    args = ap.parse_args()
    cases = []
    for spec in args.models:
        name, _, steps = spec.partition(":")
        cases.append((name, int(steps or 100)))
    print(f"{os.cpu_count()} cores; GOMP_SPINCOUNT {DEFAULT_SPIN} (libgomp's default) against {OMP_SPIN} (signlab's)")
    print(f"{'model':<14} {'steps':>5} {'machine':<9} {'default s':>10} {'signlab s':>10} {'ratio':>7}  weights")
    for busy in args.busy:
        label = "idle" if busy == 0 else f"{busy} busy"
        spinners = [mp.get_context("spawn").Process(target=_spin, daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        if spinners:
            time.sleep(0.5)
        try:
            for name, steps in cases:
                slow, a = train(name, steps, args.reps, DEFAULT_SPIN)
                ours, b = train(name, steps, args.reps, OMP_SPIN)
                same = "identical" if len(a | b) == 1 else f"DIFFER ({len(a | b)} digests)"
                print(f"{name:<14} {steps:>5} {label:<9} {slow:>10.2f} {ours:>10.2f} {slow / ours:>6.2f}x  {same}",
                      flush=True)
        finally:
            for p in spinners:
                p.terminate()

if __name__ == "__main__":
    main()
