"""How much a few of your own photos help: calibrate a run on the first K photos of each letter,
test on the rest.

    python bench/calibrate.py RUN DIR [DIR ...] --shots 1 3 5 [--methods head finetune ncm] [--spread] [--json]

Each ``DIR`` holds ``<LETTER>/<image>`` files (one person's photos). For every K, the first K
photos of each letter (natural name order: 2.jpg before 10.jpg) calibrate the run through
``signlab.calibrate.calibrate_run`` (the path of ``signlab calibrate``: photos read, model adapted,
new run saved, its test-set accuracy measured); the other photos are the test. Printed per
folder, K and method: accuracy on the held-out photos before and after (through ``predict``'s
path: the same preprocessing, test-time views and hand shape; ``--no-hand-shape``: the image model
alone), the seconds calibration took, and the
dataset's own test accuracy after calibration (the letters it must not forget). With several
folders, a pooled line adds them up (each folder calibrated on its own, as each person would).

The photos of one folder usually come from one session, often consecutive video frames, so the
held-out photos are near duplicates of the calibration photos: read the "after" numbers as an
upper bound for photos taken in a new session (another day, room or light). ``--spread`` takes the
K photos spread evenly over each letter's photos instead (first, middle, last for K = 3): in a
folder of several sessions, photos from different ones, as the Calibrate page advises.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import run_main, threads_note  # noqa: F401  (puts the project on sys.path)

import numpy as np  # noqa: E402

from signlab.calibrate import (DEFAULT_METHOD, METHODS, CalibrationError, calibrate_run,  # noqa: E402
                               first_k, load_folder, predict_views, prepare_usable, spread_k)
from signlab.handshape import net_for, probs_of  # noqa: E402
from signlab.data import load_dataset  # noqa: E402
from signlab.errors import SignlabError  # noqa: E402
from signlab.preprocess import CROPS, PHOTO_CROP  # noqa: E402
from signlab.runs import open_run  # noqa: E402

UPPER_BOUND_NOTE = ("note: the photos of one folder come from one session (often consecutive frames), so the "
                    "held-out photos are near duplicates of the calibration photos; the 'after' accuracy is an "
                    "upper bound for photos from a new session.")


def measure(run_ref: str, folders: list[Path], shots: list[int], methods: list[str], runs_dir: str | None = None,
            crop: str | None = PHOTO_CROP, steps: int | None = None, seed: int = 0,
            on_row=lambda row: None, hand_shape: bool = True, spread: bool = False) -> list[dict]:
    """One row per folder, K and method (and pooled rows when there are several folders);
    ``on_row`` sees each row as soon as it is measured."""
    parent = open_run(run_ref, runs_dir)
    model, tta = parent.load_model(), parent.config.augment_photo
    dataset = load_dataset(parent.config.data)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="signlab-calibrate-bench-") as tmp:
        for folder in folders:
            # once per folder, split by index below; a photo calibration would refuse (a blank one)
            # is left out and named, so one odd photo does not end the measurement
            try:
                photos, views, targets, feats, refused = prepare_usable(load_folder(folder), crop)
            except CalibrationError as err:  # a folder with no usable photo: the other folders go on
                print(f"{folder}: left out: {err}", file=sys.stderr)
                continue
            for reason in refused:
                print(f"left out: {reason}", file=sys.stderr)
            index = {id(p): i for i, p in enumerate(photos)}
            for k in shots:
                cal, rest = (spread_k if spread else first_k)(photos, k)
                if not rest:
                    print(f"{folder}: no photos left to test with K={k}", file=sys.stderr)
                    continue
                test = np.array([index[id(p)] for p in rest])
                y = targets[test]
                shape = probs_of(net_for(parent.dir), feats[test]) if hand_shape else None  # None: the image model alone
                before = float((predict_views(model, views[test], tta, shape).argmax(1) == y).mean())
                for method in methods:
                    cpu0 = time.process_time()
                    rec = calibrate_run(parent, cal, runs_dir=tmp, method=method, crop=crop, steps=steps,
                                        seed=seed, dataset=dataset)
                    cpu = time.process_time() - cpu0  # all threads: on a busy machine wall time says little
                    adapted = open_run(rec["run_dir"]).load_model()  # the saved run, as predict loads it
                    shape = probs_of(net_for(Path(rec["run_dir"])), feats[test]) if hand_shape else None
                    after = float((predict_views(adapted, views[test], tta, shape).argmax(1) == y).mean())
                    rows.append({"dir": str(folder), "shots": k, "method": method, "calibration_photos": len(cal),
                                 "test_photos": len(rest), "left_out": len(refused), "spread": spread,
                                 "before": before, "after": after,
                                 "correct_before": int(round(before * len(rest))),
                                 "correct_after": int(round(after * len(rest))),
                                 "seconds": rec["seconds"], "cpu_seconds": round(cpu, 1),
                                 "dataset_test_accuracy": rec["test_accuracy"]})
                    on_row(rows[-1])
    if len(folders) > 1:
        for k in shots:
            for method in methods:
                sel = [r for r in rows if r["shots"] == k and r["method"] == method]
                n = sum(r["test_photos"] for r in sel)
                if n:
                    rows.append({"dir": "pooled", "shots": k, "method": method,
                                 "calibration_photos": sum(r["calibration_photos"] for r in sel), "test_photos": n,
                                 "left_out": sum(r["left_out"] for r in sel),
                                 "before": sum(r["correct_before"] for r in sel) / n,
                                 "after": sum(r["correct_after"] for r in sel) / n,
                                 "seconds": max(r["seconds"] for r in sel),
                                 "cpu_seconds": max(r["cpu_seconds"] for r in sel),
                                 "dataset_test_accuracy": min(r["dataset_test_accuracy"] for r in sel)})
                    on_row(rows[-1])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5], help="photos per letter to calibrate on")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=[DEFAULT_METHOD])
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--crop", choices=CROPS, default=PHOTO_CROP, help="as in signlab predict --crop")
    ap.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the method's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-hand-shape", action="store_true", help="as in signlab predict: the image model alone")
    ap.add_argument("--spread", action="store_true",
                    help="calibrate on K photos spread over each letter's photos (first, middle, last), not the first K")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def show(r: dict) -> None:
        print(f"{Path(r['dir']).name:<28} {r['shots']:>2} {r['method']:<9} {r['calibration_photos']:>4} "
              f"{r['test_photos']:>5} {100 * r['before']:>6.1f}% {100 * r['after']:>6.1f}% {r['seconds']:>8.1f} "
              f"{r['cpu_seconds']:>6.1f} {100 * r['dataset_test_accuracy']:>12.2f}%", flush=True)

    if not args.json:
        print(f"run {args.run}; {threads_note()}")
        print(f"{'folder':<28} {'K':>2} {'method':<9} {'cal':>4} {'test':>5} {'before':>7} {'after':>7} "
              f"{'seconds':>8} {'cpu s':>6} {'dataset test':>13}", flush=True)
    try:
        rows = measure(args.run, args.dirs, args.shots, args.methods, args.runs_dir,
                       crop=args.crop, steps=args.steps, seed=args.seed,
                       on_row=(lambda r: None) if args.json else show, hand_shape=not args.no_hand_shape,
                       spread=args.spread)
    except SignlabError as err:
        raise SystemExit(f"calibrate bench: {err}")
    if args.json:
        print(json.dumps({"rows": rows, "note": UPPER_BOUND_NOTE, "threads": threads_note()}))
        return
    print(UPPER_BOUND_NOTE)
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    run_main(main)
