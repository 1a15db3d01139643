"""Shared pieces of the benchmarks: the lecture's own training loop and the machine's matmul rate.

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
from signlab.errors import SignlabError  # noqa: E402
from signlab.models import LectureConvNet, create_model  # noqa: E402


def run_main(main) -> None:
    """Run a benchmark's ``main()`` as the command line runs a command: what the package refuses (a run
    that does not exist, an image it cannot read) is one line naming it and exit status 2, not a
    traceback."""
    try:
        main()
    except SignlabError as err:
        print(f"{Path(sys.argv[0]).name}: {err}", file=sys.stderr)
        sys.exit(2)


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, reps: int = 5) -> float:
    """The machine's dense matmul rate (GFLOP/s) at ``dtype``: the ceiling we compare against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def lecture_loop(ds: Dataset, model_name: str = "seed_convnet", steps: int = 300, warmup: int = 20,
                 batch_size: int = 32, seed: int = 0, device: str = "cpu",
                 trained: list[nn.Module] | None = None) -> float:
    """The lecture's loop: DataLoader over TensorDataset, batch 32, Adam 1e-3. Returns samples/s;
    ``trained``, where given, receives the model it trained (after the clock stopped).

    On a GPU each batch is copied to the device as the lecture's code would do (``.to(device)``).
    The lecture's ConvNets run in the lecture's layer order (conv, ReLU, pool): signlab's own pools
    before the ReLU (the same function, cheaper), and the lecture loop must not get that for free.
    """
    torch.manual_seed(seed)
    model = create_model(model_name)
    if isinstance(model, LectureConvNet):
        as_written = LectureConvNet(model.output_relu, as_written=True)
        as_written.load_state_dict(model.state_dict())  # the same initial weights
        model = as_written
    model = model.to(device)
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
            if device.startswith("cuda"):  # torch.cuda on Apple's mps raised: it has its own
                torch.cuda.synchronize()
            elif device.startswith("mps"):
                torch.mps.synchronize()
            t0 = time.perf_counter()
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            n += len(yb)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()
    rate = n / (time.perf_counter() - t0)
    if trained is not None:
        trained.append(model)
    return rate


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def threads_note() -> str:
    return f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
