"""Device and dtype names used on the command line, resolved to torch objects; file-name forms of names."""

from __future__ import annotations

import re
from typing import Any

from bench.errors import BenchError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def resolve_device(name: str = "auto") -> Any:
    """``auto`` -> cuda when available, else cpu; ``cpu``/``cuda``/``cuda:N`` as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: no CUDA device is visible to torch; use --device cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BenchError(f"--device {name!r} is not a device name; use auto, cpu or cuda") from None


def resolve_dtype(name: str) -> Any:
    """``fp32``/``fp16``/``bf16`` -> the torch dtype."""
    import torch

    if name not in DTYPES:
        raise BenchError(f"--dtype {name!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[name])


def hardware_summary(device: Any) -> dict[str, Any]:
    """What ran the job: CPU model and count, GPU name and memory when on CUDA."""
    import os
    import platform

    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_count=torch.cuda.device_count(),
            cuda=torch.version.cuda,
        )
    return info


def slug(text: str) -> str:
    """Lower-case file-name form of a device or method name (``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"
