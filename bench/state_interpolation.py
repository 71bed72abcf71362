"""Weight interpolation of two models' state dicts (``training merge``, ``bench sweep-merge``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.errors import BenchError


def interpolate_state_dicts(a: Mapping[str, Any], b: Mapping[str, Any], lam: float) -> dict[str, Any]:
    """``theta = lam * A + (1 - lam) * B``, tensor by tensor.

    Floating-point tensors are interpolated in float32 and stored in A's dtype; other tensors (integer
    buffers) must be equal in A and B and are copied. A and B must have the same keys and shapes: the first
    mismatch (in sorted key order) raises a one-line :class:`BenchError` naming it.
    """
    import torch

    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        example = f"{only_a[0]!r} only in A" if only_a else f"{only_b[0]!r} only in B"
        raise BenchError(f"the models have different tensors ({len(only_a)} only in A, {len(only_b)} only in B, "
                         f"first: {example}); both must have the same architecture")
    lam = float(lam)
    out: dict[str, Any] = {}
    for key in sorted(a):
        ta, tb = a[key], b[key]
        if tuple(ta.shape) != tuple(tb.shape):
            raise BenchError(f"tensor {key!r} has shape {tuple(ta.shape)} in A but {tuple(tb.shape)} in B; "
                             "both models must have the same architecture")
        if ta.is_floating_point() and tb.is_floating_point():
            merged = lam * ta.to(torch.float32) + (1.0 - lam) * tb.to(torch.float32)
            out[key] = merged.to(ta.dtype)
        elif ta.is_floating_point() != tb.is_floating_point() or not torch.equal(ta, tb):
            raise BenchError(f"non-floating tensor {key!r} differs between A and B; cannot interpolate it")
        else:
            out[key] = ta.clone()
    return out


def interpolate_constants(a: Mapping[str, float], b: Mapping[str, float], lam: float) -> dict[str, float]:
    """The sampling constants of a merged model (a one-step student's x0 constant alpha_T), merged as its
    weights are: ``lam * a + (1 - lam) * b``, and exactly A's at ``lam = 1`` and B's at ``lam = 0`` (so the ends
    of a sweep reproduce each model bit for bit). Both must name the same constants."""
    if set(a) != set(b):
        raise BenchError(f"the models' sampling constants differ in kind ({sorted(a)} vs {sorted(b)}); they "
                         "cannot be merged")
    lam = float(lam)
    if lam == 1.0:
        return dict(a)
    if lam == 0.0:
        return dict(b)
    return {k: lam * float(a[k]) + (1.0 - lam) * float(b[k]) for k in a}
