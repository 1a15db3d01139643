"""How long the feature-space map takes for the 7,172 test images: PCA and t-SNE.

Times the two parts separately: running the model to get one layer's activations, and embedding
them in 2-D (no cache involved). Uses the run given, or trains a short fastcnn run first.

    python bench/map_timing.py                      # a fresh 100-step fastcnn run, last hidden layer
    python bench/map_timing.py --run RUN --layer hidden --runs-dir runs
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import run_main  # noqa: E402

import torch  # noqa: E402

from signlab import api, embedding  # noqa: E402
from signlab.config import TrainConfig  # noqa: E402
from signlab.data import load_dataset  # noqa: E402
from signlab.runs import open_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--layer", default=None, help="a layer key (default: the last hidden layer)")
    ap.add_argument("--methods", nargs="+", default=list(embedding.METHODS))
    args = ap.parse_args()
    ds = load_dataset()
    if args.run:
        run = open_run(args.run, args.runs_dir)
    else:
        root = tempfile.mkdtemp(prefix="map-bench-")
        rec = api.train(TrainConfig(model="fastcnn", epochs=1, max_steps=100), root, dataset=ds, evaluate_test=False)
        run = open_run(rec["run_id"], root)
    model = run.load_model("cpu")
    layer = args.layer or embedding.default_layer(model)
    print(f"run {run.id} ({run.config.model}), layer {layer}, {len(ds.test):,} test images, "
          f"{torch.get_num_threads()} torch threads")
    t = time.perf_counter()
    feats, _ = embedding.activations(model, ds.test.images, layer)
    act = time.perf_counter() - t
    print(f"activations: {feats.shape[1]} dimensions in {act:.2f} s")
    for method in args.methods:
        t = time.perf_counter()
        coords = embedding.embed(feats, method)
        e = time.perf_counter() - t
        print(f"{method:>5}: embedding {e:6.2f} s, map in total {act + e:6.2f} s -> {coords.shape}")


if __name__ == "__main__":
    run_main(main)
