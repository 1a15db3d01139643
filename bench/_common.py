"""Shared pieces of the benchmarks: the lecture's own training loop, the machine's matmul rate,
and a clock that leaves evaluation out.

Run benchmarks from the project root, e.g. ``python bench/train_speed.py``.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from signlab.data import Dataset  # noqa: E402
from signlab.models import create_model  # noqa: E402
from signlab.predict import to_float_images  # noqa: E402


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, reps: int = 5) -> float:
    """The machine's dense matmul rate (GFLOP/s) at ``dtype``: the ceiling we compare against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def lecture_loop(ds: Dataset, model_name: str = "seed_convnet", steps: int = 300, warmup: int = 20,
                 batch_size: int = 32, seed: int = 0, device: str = "cpu") -> float:
    """The lecture's loop: DataLoader over TensorDataset, batch 32, Adam 1e-3. Returns samples/s.

    On a GPU each batch is copied to the device as the lecture's code would do (``.to(device)``).
    """
    torch.manual_seed(seed)
    model = create_model(model_name).to(device)
    x = torch.tensor(ds.train.images, dtype=torch.float32).unsqueeze(1) / 255.0  # (N, 1, 28, 28)
    y = torch.tensor(ds.train.targets)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n, t0 = 0, None
    it = iter(loader)
    for i in range(warmup + steps):
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        if i == warmup:
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            n += len(yb)
    if device != "cpu":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def lecture_time_to_accuracy(ds: Dataset, targets: list[float], model_name: str = "convnet", epochs: int = 10,
                             eval_every: int = 200, time_limit: float = 240.0) -> dict[float, float | None]:
    """Seconds of training (evaluation excluded) until test accuracy first reaches each target.

    The result also holds ``"final"`` (the last accuracy measured) and ``"seconds"`` (training time).
    """
    torch.manual_seed(0)
    model = create_model(model_name)
    x = torch.tensor(ds.train.images, dtype=torch.float32).unsqueeze(1) / 255.0
    y = torch.tensor(ds.train.targets)
    tx = to_float_images(ds.test.images)
    ty = torch.tensor(ds.test.targets)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    reached: dict[float, float | None] = {t: None for t in targets}
    clock, step = 0.0, 0
    for _ in range(epochs):
        t = time.perf_counter()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % eval_every == 0:
                clock += time.perf_counter() - t
                # the lecture feeds pixels/255 without standardising; evaluate it the same way
                model.eval()
                with torch.no_grad():
                    acc = (model(tx).argmax(1) == ty).float().mean().item()
                model.train()
                for k in targets:
                    if reached[k] is None and acc >= k:
                        reached[k] = clock
                reached["final"], reached["seconds"] = acc, clock
                if all(reached[k] is not None for k in targets) or clock > time_limit:
                    return reached
                t = time.perf_counter()
        clock += time.perf_counter() - t
    reached["seconds"] = clock
    return reached


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fmt(v: float | None, unit: str = "s") -> str:
    return "not reached" if v is None else f"{v:.1f} {unit}"


def threads_note() -> str:
    return f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
