"""Where training and inference run: the device, bf16 autocast and the torchrun process group."""
from __future__ import annotations

import os

import torch

from .errors import ConfigError


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
    """``name`` as a device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``), or a
    ConfigError naming ``what`` and what is allowed: checked before a worker claims a run, so a
    typo fails the command rather than the first run it would take."""
    try:
        device = resolve_device(name)
    except ConfigError as err:
        raise ConfigError(f"{what}: {str(err).removeprefix('device: ')}") from err
    except RuntimeError as err:  # torch.device("tpu"): not a device type torch knows
        raise ConfigError(f"{what}: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{what}: {name!r} is not a device signlab trains on; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(f"{what}: {name!r} is not here; this machine has "
                          f"{'no CUDA GPU' if n == 0 else f'{n} CUDA GPU' + ('s' if n > 1 else '')}")
    return device


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: asked for, or ``auto`` on hardware with fast bf16."""
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN reports native bf16 (AVX512-BF16 or AMX); emulated bf16 would be slower than fp32
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_description(device: torch.device | None = None) -> str:
    """A short human description: the GPU's name, or the CPU with its thread count."""
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
