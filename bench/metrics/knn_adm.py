"""Precision and recall with the float16 distance arithmetic of the guided-diffusion (ADM) evaluator.

What the SBv2 release ran (``distances="fp16-adm"`` of the ``precision_recall`` metric; the quirk
``pr-fp16-distances`` of the ``sbv2-release`` profile):

* features (float32) are split into blocks of 10,000 rows and 10,000 columns;
* each block's squared distances are computed in float16: U, V rounded to float16, ``norm_u`` = row sums of the
  float16 squares, ``P = U V^T``, then ``D = max(norm_u - 2 P + norm_v, 0)`` with every element-wise step
  rounded to float16; a block with any non-finite value is recomputed in float32 (same formula);
* the radius of a sample is the value at sorted position k (0-based) of its distances to its own set *including
  itself* (the self distance is normally the smallest, so this is the k-th neighbour);
* a sample is inside when its float32-cast distance is ``<=`` a radius.

Remaining difference: the float16 row sums and the float16 matrix product are accumulated here in float32
(exact float16 products, float32 sums) and rounded to float16 once, as cuBLAS does for TensorFlow's float16
matmul on GPUs; the order of the float32 summation (and TensorFlow's accumulator for the row sums) may differ,
which can move a float16-rounded value by one unit in the last place in rare cases. The k-smallest search keeps
the exact float32 values (order statistics do not depend on the order of the search), so radii and decisions
are otherwise those of the release's formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Rows and columns per distance block in the ADM evaluator.
ADM_BLOCK = 10_000


def _torch() -> Any:
    import torch

    return torch


class _Half:
    """A feature set as float32 and float16 tensors, with both kinds of squared norms."""

    def __init__(self, x: Any, device: Any) -> None:
        torch = _torch()
        arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if arr.ndim != 2 or len(arr) == 0:
            raise ValueError(f"features must be a non-empty 2-D array, got shape {arr.shape}")
        self.f32 = torch.from_numpy(arr).to(device)
        self.f16 = self.f32.half()
        self.norm16 = self.f16.square().float().sum(1).half()
        self.norm32 = self.f32.square().sum(1)
        self.n = len(arr)


def adm_distance_block(a: _Half, i0: int, i1: int, b: _Half, j0: int, j1: int) -> Any:
    """float32 (i1 - i0, j1 - j0) squared distances, float16 arithmetic unless it overflows (see module)."""
    torch = _torch()
    u, v = a.f16[i0:i1], b.f16[j0:j1]
    prod = (u.float() @ v.float().T).half()
    d = ((a.norm16[i0:i1].unsqueeze(1) - 2 * prod) + b.norm16[j0:j1].unsqueeze(0)).clamp_min(0)
    if bool(torch.isfinite(d).all()):
        return d.float()
    prod32 = a.f32[i0:i1] @ b.f32[j0:j1].T
    return ((a.norm32[i0:i1].unsqueeze(1) - 2 * prod32) + b.norm32[j0:j1].unsqueeze(0)).clamp_min(0)


def adm_radii(p: _Half, k: int, block: int = ADM_BLOCK) -> Any:
    """Per row: the value at sorted position ``k`` of its distances to every row of the set (itself included)."""
    torch = _torch()
    if p.n <= k:
        raise ValueError(f"need more than k={k} samples, got {p.n}")
    out = torch.empty(p.n, dtype=torch.float32, device=p.f32.device)
    for i0 in range(0, p.n, block):
        i1 = min(p.n, i0 + block)
        best = None
        for j0 in range(0, p.n, block):
            d = adm_distance_block(p, i0, i1, p, j0, min(p.n, j0 + block))
            v = d.topk(min(k + 1, d.shape[1]), dim=1, largest=False).values
            best = v if best is None else torch.cat([best, v], 1).topk(k + 1, dim=1, largest=False).values
        assert best is not None
        out[i0:i1] = best.kthvalue(k + 1, dim=1).values
    return out


def adm_precision_recall_masks(real: Any, fake: Any, k: int = 3, *, device: Any = None,
                               block: int = ADM_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(fake sample inside the real manifold, real sample inside the fake manifold), ADM arithmetic."""
    from bench.metrics.knn_exact import _full_precision

    torch = _torch()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with _full_precision():
        R, F = _Half(real, dev), _Half(fake, dev)
        if R.f32.shape[1] != F.f32.shape[1]:
            raise ValueError(f"real and fake features differ in width: {R.f32.shape[1]} vs {F.f32.shape[1]}")
        r_rad, f_rad = adm_radii(R, k, block), adm_radii(F, k, block)
        prec = torch.zeros(F.n, dtype=torch.bool, device=dev)
        rec = torch.zeros(R.n, dtype=torch.bool, device=dev)
        for i0 in range(0, R.n, block):
            i1 = min(R.n, i0 + block)
            for j0 in range(0, F.n, block):
                j1 = min(F.n, j0 + block)
                d = adm_distance_block(R, i0, i1, F, j0, j1)
                rec[i0:i1] |= (d <= f_rad[j0:j1].unsqueeze(0)).any(1)
                prec[j0:j1] |= (d <= r_rad[i0:i1].unsqueeze(1)).any(0)
        return prec.cpu().numpy(), rec.cpu().numpy()


def adm_precision_recall(real: Any, fake: Any, k: int = 3, *, device: Any = None,
                         block: int = ADM_BLOCK) -> dict[str, float]:
    """Precision and recall as the ADM evaluator computes them (float16 distances, see the module)."""
    prec, rec = adm_precision_recall_masks(real, fake, k, device=device, block=block)
    return {"precision": float(prec.mean()), "recall": float(rec.mean())}
