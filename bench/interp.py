"""Interpolation of noises and prompt embeddings (paper Figs. 13 and 14): slerp and lerp per sample.

Both work on the first dimension as the batch: each sample is flattened to one vector, interpolated in float32,
and the result is returned in the input's dtype and shape.

``slerp(a, b, t)`` moves along the great circle between the directions of ``a`` and ``b`` and interpolates the
norm linearly: ``|x_t| = (1 - t) |a| + t |b|``. For vectors of equal norm (two Gaussian noises of the same
length, roughly) that is the usual slerp, ``sin((1-t) w)/sin w a + sin(t w)/sin w b``, and it keeps the norm,
which plain averaging of two independent noises does not (their mean is about 1/sqrt(2) as long).
When the directions are parallel or antiparallel within ``tol`` (``|cos w| > 1 - tol``), or either vector is
zero, the great circle is not defined (antiparallel: every half circle is one) and slerp falls back to lerp: for
parallel vectors lerp is the same path; for antiparallel ones it passes through (near) zero half way, which is
what we do rather than pick an arbitrary circle. ``t = 0`` and ``t = 1`` return ``a`` and ``b`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: |cos w| above 1 - PARALLEL_TOL counts as (anti)parallel.
PARALLEL_TOL = 1e-6
#: What `bench interpolate` writes beside its grid (read by `bench report`).
RECORD_FILE = "interpolate.json"


def _rows(x: Any) -> Any:
    import torch

    return x.detach().to(torch.float32).reshape(x.shape[0], -1) if x.ndim > 1 else x.detach().float()[None]


def lerp(a: Any, b: Any, t: float) -> Any:
    """``(1 - t) a + t b`` in float32, per sample; the result has ``a``'s dtype and shape."""
    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate tensors of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if t == 0:
        return a.clone()
    if t == 1:
        return b.to(a.dtype).clone()
    out = (1.0 - t) * _rows(a) + t * _rows(b)
    return out.reshape(a.shape).to(a.dtype)


def slerp(a: Any, b: Any, t: float, tol: float = PARALLEL_TOL) -> Any:
    """Spherical interpolation per sample with a linearly interpolated norm; see the module docstring."""
    import torch

    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate tensors of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if t == 0 or t == 1:
        return lerp(a, b, t)
    ra, rb = _rows(a), _rows(b)
    na, nb = ra.norm(dim=1, keepdim=True), rb.norm(dim=1, keepdim=True)
    tiny = torch.finfo(torch.float32).tiny
    ua, ub = ra / na.clamp_min(tiny), rb / nb.clamp_min(tiny)
    cos = (ua * ub).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    degenerate = (cos.abs() > 1.0 - tol) | (na <= tiny) | (nb <= tiny)
    safe_sin = torch.where(degenerate, torch.ones_like(sin), sin)
    direction = (torch.sin((1.0 - t) * omega) * ua + torch.sin(t * omega) * ub) / safe_sin
    spherical = direction * ((1.0 - t) * na + t * nb)
    out = torch.where(degenerate, (1.0 - t) * ra + t * rb, spherical)
    return out.reshape(a.shape).to(a.dtype)


def interpolate(a: Any, b: Any, ts: Sequence[float], how: str = "slerp") -> list[Any]:
    """``[interp(a, b, t) for t in ts]`` with ``how`` = ``slerp`` or ``lerp``."""
    fn = {"slerp": slerp, "lerp": lerp}[how]
    return [fn(a, b, float(t)) for t in ts]


def steps(n: int) -> list[float]:
    """``n`` evenly spaced interpolation weights from 0 to 1 (both included)."""
    if n < 2:
        raise ValueError("at least 2 steps")
    return [i / (n - 1) for i in range(n)]
