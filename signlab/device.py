"""Where training and inference run: the device, bf16 autocast and the torchrun process group.

``precision auto`` on a CPU is decided by measurement (:func:`bf16_measured_faster`): native bf16
(AVX512-BF16 or AMX) made the fast preset's steps faster on a 2-core AMD EPYC, and 1.2x slower on
a 2-core Intel Xeon that reports the same instructions (docs/speed-research.md, Part 17), so
"the CPU has bf16" alone does not say which wins.
"""
from __future__ import annotations

import copy
import hashlib
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, SignlabError
from .fsutil import atomic_write_json, read_json
from .numbers import count_text
from .paths import cache_dir


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, after joining the process group; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but no CUDA GPU is available; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device: MPS was asked for but is not available; use auto or cpu")
    return torch.device(name)


def check_device(name: str, what: str = "--device") -> torch.device:
    """``name`` as a device this machine has (``auto``, ``cpu``, ``cuda``, ``mps``), or a ConfigError
    naming ``what`` and what is allowed: checked before a worker claims a run, so a typo fails the
    command rather than the first run it would take. A run's settings name their device ``cuda``,
    never ``cuda:1`` (such runs failed to load), so an index is refused with the way to one GPU."""
    allowed = "auto, cpu, cuda or mps"
    try:
        device = resolve_device(name)
    except ConfigError as err:
        raise ConfigError(f"{what}: {str(err).removeprefix('device: ')}") from err
    except RuntimeError as err:  # torch.device("tpu"): not a device type torch knows
        raise ConfigError(f"{what}: {name!r} is not a device; use {allowed}") from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{what}: {name!r} is not a device signlab trains on; use {allowed}")
    if device.index is not None:
        if device.type == "cuda":
            raise ConfigError(f"{what}: {name!r}: for one GPU of several, start the worker with "
                              f"CUDA_VISIBLE_DEVICES={device.index} and {what} cuda")
        raise ConfigError(f"{what}: {name!r} names one {device.type} of several; use {allowed}")
    return device


def native_cpu_bf16() -> bool:
    """Whether oneDNN reports native bf16 on this CPU (AVX512-BF16 or AMX); emulated bf16 is several
    times slower than fp32, so without it bf16 is never the faster choice."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: asked for, or ``auto`` on hardware with fast bf16.

    On a CPU this is the hardware's report; the trainer then measures which precision trains its
    network faster (:func:`bf16_measured_faster`, through ``signlab.trainer.measure_precision``).
    """
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        # native only: by default the check counts emulation, and a T4 (compute 7.5) trained in slow bf16
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return native_cpu_bf16()


def _cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_MEASURED: dict[str, dict[str, Any]] = {}  # this process's verdicts, by key
BF16_MARGIN = 0.05  # how much faster bf16 must measure to be chosen (rounding changes a run's steps)
MIN_TIMED = 4  # timed passes of each precision, at the least


def precision_key(model: torch.nn.Module, example: torch.Tensor) -> str:
    """What a bf16-against-fp32 verdict depends on: how it is decided (verdicts of an older rule are
    not read), the CPU, torch, the threads, the network's layers and memory layout (the strides of
    its 4-d weights: channels-last or not) and the batch's shape and strides."""
    strides = [tuple(p.stride()) for p in model.parameters() if p.ndim == 4]
    text = "|".join([f"fastest passes, margin {BF16_MARGIN}", _cpu_name(), torch.__version__,
                     str(torch.backends.cpu.get_cpu_capability()),
                     str(torch.get_num_threads()), repr(model), str(strides), str(tuple(example.shape)),
                     str(tuple(example.stride()))])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _step_ms(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> float:
    """One forward and backward pass of ``model`` on ``x``, in milliseconds."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    out.float().logsumexp(-1).mean().backward()  # a cross-entropy's cost, without labels
    return 1000 * (time.perf_counter() - t0)


def bf16_measured_faster(model: torch.nn.Module, example: torch.Tensor, repeats: int = 12,
                         cache: Path | None = None, budget_ms: float = 1500.0) -> dict[str, Any]:
    """Time a training pass of ``model`` on ``example`` under bf16 autocast and in fp32, on this CPU.

    Returns ``{"bf16": bool, "bf16_ms": float, "fp32_ms": float}`` (the fastest pass of each): bf16
    wins when it is at least :data:`BF16_MARGIN` faster; a tie goes to fp32, whose kernels are exact.
    The two alternate (three warm-up passes each, then ``repeats``), and the fastest pass of each is
    compared because other work on the machine can only add time: the app's worker measures while
    the browser draws the Train page. On a 2-core Intel Xeon where bf16 trains s2net 1.2x slower,
    with one core kept busy, the medians' ratio read 0.51-1.27 over six tries (one wrong verdict, and
    one made under a page load was cached), the fastest passes' 1.01-1.22; quiet, 1.04-1.17. It runs
    on a copy of the model (batch-norm statistics, gradients and the random numbers of the real run
    untouched) and takes 30 passes, 0.3-0.8 s for the fast and lecture presets' networks on 2
    cores; once ``budget_ms`` is spent it stops after :data:`MIN_TIMED` timed passes of each (the
    robust preset's three networks take about 0.1 s a pass at batch 128). The verdict is
    remembered for this process and in ``cache`` (default: the cache folder's
    ``cpu-precision.json``), so each machine measures each network and batch once; two processes
    writing at once can drop one verdict, which is then measured again.
    """
    key = precision_key(model, example)
    if key in _MEASURED:
        return _MEASURED[key]
    path = cache or cache_dir() / "cpu-precision.json"
    saved = read_json(path, default={})
    saved = saved if isinstance(saved, dict) else {}
    verdict = saved.get(key)
    if not (isinstance(verdict, dict) and isinstance(verdict.get("bf16"), bool)):
        probe = copy.deepcopy(model).train()
        x = example.detach()
        times: dict[bool, list[float]] = {True: [], False: []}
        with torch.random.fork_rng(devices=[]):  # dropout here must not move the run's random numbers
            spent = 0.0
            for i in range(3 + repeats):
                if i >= 3 + MIN_TIMED and spent > budget_ms:  # a large network: its passes are long and steadier
                    break
                for bf16 in ((True, False) if i % 2 else (False, True)):
                    ms = _step_ms(probe, x, bf16)
                    spent += ms
                    if i >= 3:
                        times[bf16].append(ms)
                    probe.zero_grad(set_to_none=True)
        b, f = min(times[True]), min(times[False])
        verdict = {"bf16": b <= (1 - BF16_MARGIN) * f, "bf16_ms": round(b, 2), "fp32_ms": round(f, 2)}
        try:
            atomic_write_json(path, {**saved, key: verdict})
        except (OSError, SignlabError):  # a read-only cache folder costs a measurement per process
            pass
    _MEASURED[key] = verdict
    return verdict


def device_description(device: torch.device | None = None, why_threads: str = "") -> str:
    """A short human description: the GPU's name, or the CPU with its thread count (and
    ``why_threads``, the reason for that count, where it is not the machine's choice)."""
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    why = f": {why_threads}" if why_threads else ""
    return f"CPU ({count_text(torch.get_num_threads(), 'thread')}{why})"  # "1 thread", not "1 threads"


# --------------------------------------------------------------------------- how busy the machine is
def machine_load() -> float | None:
    """How busy the machine is now, for the time estimates' "other work keeps this machine busy": its
    1-minute load average, held to the threads runnable at this moment (:func:`runnable_now`). The
    average alone stays high for a minute after a run of this server ends, and its own run would have
    been called other work. None where the platform has no load average."""
    try:
        average = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    now = runnable_now()
    return average if now is None else min(average, now)


def runnable_now() -> float | None:
    """The threads runnable on the machine now, this one not counted: the median of five looks at
    ``/proc/loadavg`` 10 ms apart; None without ``/proc``."""
    try:
        looks = []
        for _ in range(5):
            with open("/proc/loadavg", encoding="ascii") as f:
                looks.append(int(f.read().split()[3].split("/")[0]) - 1)  # "running/total": less this thread
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return float(sorted(looks)[len(looks) // 2])
