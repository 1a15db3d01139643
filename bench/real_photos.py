"""Accuracy on real photos of hands: a folder of ``<LETTER>/<image>`` files, for any run.

    python bench/real_photos.py RUN DIR [--runs-dir runs] [--json]

Every photo goes through the same path as ``python -m signlab predict`` (``signlab.api.predict_files``:
the one preprocessing function, then the model). Prints pooled accuracy, accuracy per letter, the
letters most often confused, and how well the out-of-domain warning separates wrong predictions from
right ones. Sign Language MNIST's own test accuracy cannot show this: its test images come from the
same source photos as its training images.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from _common import fmt  # noqa: F401  (puts the project on sys.path)

from signlab.api import predict_files
from signlab.labels import LETTERS
from signlab.runs import open_run

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def collect(folder: Path) -> list[tuple[Path, str]]:
    items = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        letter = d.name.strip().upper()
        if len(letter) == 1 and letter in LETTERS:
            items += [(f, letter) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return items


def measure(run_ref: str, folder: Path, runs_dir: str | None = None, crop: str | None = None) -> dict:
    run = open_run(run_ref, runs_dir)
    items = collect(folder)
    if not items:
        raise SystemExit(f"{folder}: no <LETTER>/<image> files found")
    records = predict_files(run, [f for f, _ in items], k=24, crop=crop)
    rows = []
    for (f, truth), rec in zip(items, records):
        top = rec["top"]
        rows.append({"file": str(f), "true": truth, "pred": top[0]["letter"], "p": top[0]["probability"],
                     "warned": bool(rec.get("warnings"))})
    correct = sum(r["true"] == r["pred"] for r in rows)
    per_letter = {}
    for letter in LETTERS:
        sel = [r for r in rows if r["true"] == letter]
        if sel:
            per_letter[letter] = sum(r["true"] == r["pred"] for r in sel) / len(sel)
    confused = Counter((r["true"], r["pred"]) for r in rows if r["true"] != r["pred"]).most_common(8)
    wrong = [r for r in rows if r["true"] != r["pred"]]
    right = [r for r in rows if r["true"] == r["pred"]]
    flag = lambda r: r["warned"]  # noqa: E731
    from sklearn.metrics import roc_auc_score

    is_right = [r["true"] == r["pred"] for r in rows]
    auroc = roc_auc_score(is_right, [r["p"] for r in rows]) if 0 < sum(is_right) < len(rows) else None
    by_threshold = {t: {"flagged_wrong": sum(r["p"] < t for r in wrong) / max(len(wrong), 1),
                        "flagged_right": sum(r["p"] < t for r in right) / max(len(right), 1)}
                    for t in (0.5, 0.7, 0.9)}
    return {
        "run_id": run.id, "model": run.config.model, "preset": run.config.preset, "n": len(rows), "crop": crop or "centre",
        "accuracy": correct / len(rows), "per_letter": per_letter,
        "most_confused": [{"true": t, "predicted": p, "count": c} for (t, p), c in confused],
        "warning": {"flagged_wrong": sum(map(flag, wrong)) / max(len(wrong), 1),
                    "flagged_right": sum(map(flag, right)) / max(len(right), 1)},
        "confidence_auroc": auroc, "confidence_thresholds": by_threshold,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("dir", type=Path)
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--crop", choices=("centre", "hand"), default="centre", help="as in signlab predict --crop")
    args = ap.parse_args()
    res = measure(args.run, args.dir, args.runs_dir, crop="auto" if args.crop == "hand" else None)
    if args.json:
        print(json.dumps(res))
        return
    print(f"run {res['run_id']} ({res['model']}, preset {res['preset']}): {100 * res['accuracy']:.1f}% of "
          f"{res['n']} photos (chance {100 / len(LETTERS):.1f}%)")
    print("per letter: " + "  ".join(f"{k} {100 * v:.0f}%" for k, v in res["per_letter"].items()))
    print("most confused (true -> predicted): " + ", ".join(
        f"{c['true']}->{c['predicted']} x{c['count']}" for c in res["most_confused"]))
    w = res["warning"]
    print(f"out-of-domain warning: shown for {100 * w['flagged_wrong']:.0f}% of wrong predictions and "
          f"{100 * w['flagged_right']:.0f}% of right ones")
    if res["confidence_auroc"] is not None:
        print(f"confidence separates right from wrong with AUROC {res['confidence_auroc']:.2f}; flagged below: "
              + ", ".join(f"{t:.0%}: {100 * v['flagged_wrong']:.0f}% of wrong / {100 * v['flagged_right']:.0f}% of right"
                          for t, v in res["confidence_thresholds"].items()))


if __name__ == "__main__":
    main()
