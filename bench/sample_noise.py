"""Per-sample noise that depends only on (seed, sample index).

Sample ``i`` of a run with seed ``s`` draws its initial noise from a CPU ``torch.Generator`` seeded with
:func:`sample_seed` ``(s, i)``, in float32, then moves it to the device and dtype. Batch size, device count,
sharding and resuming therefore never change a sample's noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def sample_seed(seed: int, index: int) -> int:
    """The 63-bit seed of sample ``index``: BLAKE2b with an 8-byte digest (``digest_size=8``, not a truncation) of
    ``"<seed>:<index>"``, read little-endian, top bit cleared."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def sample_noise(seed: int, index: int, shape: Sequence[int]) -> Any:
    """Standard normal float32 noise of ``shape`` for one sample, on the CPU."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(sample_seed(seed, index))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


def batch_noise(seed: int, indices: Sequence[int], shape: Sequence[int], device: Any = "cpu", dtype: Any = None) -> Any:
    """Noise for several samples stacked along a new batch dimension."""
    import torch

    noise = torch.stack([sample_noise(seed, i, shape) for i in indices])
    return noise.to(device=device, dtype=dtype or torch.float32)
