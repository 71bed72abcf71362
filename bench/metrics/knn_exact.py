"""Improved precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020).

Every quantity uses squared Euclidean distances between feature rows and, for each sample, the radius of its
neighbourhood: the distance to its k-th nearest neighbour in its own set (itself excluded).

- precision: share of fake samples within (<=) the radius of at least one real sample;
- recall: share of real samples within (<=) the radius of at least one fake sample;
- density: number of (fake, real) pairs with the fake strictly (<) inside the real radius, over k * n_fake;
- coverage: share of real samples whose nearest fake sample lies strictly (<) inside their radius.

How it is computed. Distances come from float32 matrix products in tiles (CPU or GPU), each with a rigorous
bound on its rounding error, which depends only on the squared norms and the feature dimension (the bound
of any order of summation, so it holds for every BLAS; TF32 and other reduced-precision products are turned
off for the duration). A comparison the bound settles is final; every other one (near a radius) is redone
from the input values in float64, with the radius involved recomputed in float64 too (from float32
candidate neighbours, with a check that no other point can be closer). The per-sample decisions are
therefore those of float64 arithmetic on the given features, whatever the tile size or device; they can
differ from exact arithmetic only where a distance is within float64 rounding (about 1e-13 relative) of a
radius. Self-distance tiles are computed once for both of their triangles, and no N x N matrix is ever held:
memory is a float32 copy of the features (none when they are float32 already) plus a few tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Unit roundoff of float32.
_U32 = 2.0**-24
#: Candidate neighbours kept per sample beyond k while searching in float32.
_EXTRA = 3
#: Float64 elements handled at once (cache-sized) when norms or exact distances are computed.
_EXACT_CHUNK = 1 << 18


def _torch() -> Any:
    import torch

    return torch


def _resolve_device(device: Any, *arrays: Any) -> Any:
    torch = _torch()
    if device is not None:
        return torch.device(device)
    for a in arrays:
        if torch.is_tensor(a):
            return a.device
    return torch.device("cpu")


def _tiles(device: Any, block: int | None) -> tuple[int, int]:
    """(square tile edge for self distances, column width for cross distances)."""
    if block is not None:
        if block < 1:
            raise ValueError(f"block must be positive, got {block}")
        return block, block
    return (8192, 16384) if device.type == "cuda" else (2048, 4096)


def _error_coefficient(dim: int) -> float:
    """c such that |computed - exact| <= c * (sum of the squared norms and radii involved) for one distance
    (float32 dot products of length ``dim``, conversions and a few additions; twice the first-order bound)."""
    return 2.0 * (dim + 16) * _U32


class _Points:
    """Feature rows: a float32 working copy on the compute device and the original values for exact checks.

    On the CPU, exact (float64) work runs in NumPy, one thread: it comes in many small pieces, for which
    multi-threaded tensor operations mostly wait on each other when the machine is busy.
    """

    def __init__(self, x: Any, device: Any, name: str) -> None:
        torch = _torch()
        if torch.is_tensor(x):
            src = x.detach()
            if not src.is_floating_point():
                src = src.double()
        else:
            arr = np.asarray(x)
            if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
                arr = arr.astype(np.float64)
            src = torch.from_numpy(np.ascontiguousarray(arr))
        if src.ndim != 2 or src.shape[0] == 0 or src.shape[1] == 0:
            raise ValueError(f"{name} features must be a non-empty 2-D array, got shape {tuple(src.shape)}")
        self.n, self.dim = int(src.shape[0]), int(src.shape[1])
        self.device = device
        self.src = src
        host = src.device.type == "cpu" and device.type == "cpu" and src.dtype in (torch.float32, torch.float64)
        self.host = src.numpy() if host else None
        self.work = src.to(device=device, dtype=torch.float32).contiguous()
        step = max(1, _EXACT_CHUNK // self.dim)
        if self.host is not None:
            sq = np.empty(self.n)
            for s in range(0, self.n, step):
                rows = self.host[s : s + step].astype(np.float64)
                sq[s : s + step] = np.einsum("ij,ij->i", rows, rows)
            sq64 = torch.from_numpy(sq)
        else:
            sq64 = torch.empty(self.n, dtype=torch.float64, device=device)
            for s in range(0, self.n, step):
                sq64[s : s + step] = src[s : s + step].to(device=device, dtype=torch.float64).square().sum(1)
        if not bool(torch.isfinite(sq64).all()):
            raise ValueError(f"{name} features contain NaN or infinite values")
        self.sq64 = sq64
        self.sq = sq64.float()

    def rows64(self, idx: Any) -> Any:
        rows = self.src.index_select(0, idx.to(self.src.device))
        return rows.to(device=self.device, dtype=_torch().float64)


def _exact_sq_dist(a: _Points, ia: Any, b: _Points, ib: Any) -> Any:
    """Float64 squared distances between rows ``a[ia[t]]`` and ``b[ib[t]]``, from the input values."""
    torch = _torch()
    step = max(1, _EXACT_CHUNK // a.dim)
    if a.host is not None and b.host is not None:
        ia_np, ib_np = ia.cpu().numpy(), ib.cpu().numpy()
        out_np = np.empty(len(ia_np))
        for s in range(0, len(ia_np), step):
            diff = a.host[ia_np[s : s + step]].astype(np.float64) - b.host[ib_np[s : s + step]]
            out_np[s : s + step] = np.einsum("ij,ij->i", diff, diff)
        return torch.from_numpy(out_np).to(a.device)
    out = torch.empty(len(ia), dtype=torch.float64, device=a.device)
    for s in range(0, len(ia), step):
        out[s : s + step] = (a.rows64(ia[s : s + step]) - b.rows64(ib[s : s + step])).square_().sum(1)
    return out


def _buffer(device: Any, size: int) -> Any:
    torch = _torch()
    return torch.empty(size, dtype=torch.float32, device=device)


def _tile(buf: Any, rows: int, cols: int) -> Any:
    return buf[: rows * cols].view(rows, cols)


def _merge_candidates(best_v: Any, best_i: Any, r0: int, tile: Any, c0: int) -> None:
    """Keep, for rows r0.. of ``best_*``, the smallest values among the kept ones and those of ``tile``."""
    torch = _torch()
    kk = best_v.shape[1]
    r1 = r0 + tile.shape[0]
    v, i = tile.topk(min(kk, tile.shape[1]), dim=1, largest=False, sorted=False)
    cv = torch.cat([best_v[r0:r1], v], 1)
    ci = torch.cat([best_i[r0:r1], i + c0], 1)
    v2, pos = cv.topk(kk, dim=1, largest=False, sorted=False)
    best_v[r0:r1] = v2
    best_i[r0:r1] = ci.gather(1, pos)


class _Neighbours:
    """k-th nearest neighbour radii of one set: float32 values for all points, exact float64 ones on demand.

    The float32 k-th smallest distance differs from the exact one by at most the distance error bound,
    since order statistics move no more than the values they are taken from.
    """

    def __init__(self, p: _Points, k: int, edge: int) -> None:
        torch = _torch()
        n = p.n
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if n <= k:
            raise ValueError(f"need more than k={k} samples, got {n}")
        self.p, self.k, self.edge = p, k, edge
        kk = min(k + _EXTRA, n - 1)
        best_v = torch.full((n, kk), float("inf"), dtype=torch.float32, device=p.device)
        best_i = torch.zeros((n, kk), dtype=torch.int64, device=p.device)
        buf, tbuf = _buffer(p.device, edge * edge), _buffer(p.device, edge * edge)
        for i0 in range(0, n, edge):
            i1 = min(n, i0 + edge)
            for j0 in range(i0, n, edge):
                j1 = min(n, j0 + edge)
                t = _tile(buf, i1 - i0, j1 - j0)
                torch.addmm(p.sq[j0:j1].unsqueeze(0), p.work[i0:i1], p.work[j0:j1].T, alpha=-2.0, out=t)
                t.add_(p.sq[i0:i1].unsqueeze(1))
                if j0 == i0:
                    t.fill_diagonal_(float("inf"))
                _merge_candidates(best_v, best_i, i0, t, j0)
                if j0 != i0:  # the same tile, read by columns, serves rows j0..j1
                    tt = _tile(tbuf, j1 - j0, i1 - i0)
                    tt.copy_(t.T)
                    _merge_candidates(best_v, best_i, j0, tt, i0)
        self.best_v, self.best_i = best_v, best_i
        self.approx = best_v.kthvalue(k, dim=1).values.double()
        coef = _error_coefficient(p.dim)
        #: bound on |approx - exact| and on the error of any one float32 distance from a point
        self.error = coef * (p.sq64 + p.sq64.max())
        self._exact = torch.full((n,), float("nan"), dtype=torch.float64, device=p.device)

    def exact(self, idx: Any) -> Any:
        """Exact radii of the points ``idx`` (computed once each)."""
        torch = _torch()
        missing = torch.unique(idx[torch.isnan(self._exact[idx])])
        if len(missing):
            self._exact[missing] = self._compute(missing)
        return self._exact[idx]

    def _compute(self, rows: Any) -> Any:
        # exact distances to the candidates; their k-th is the radius unless a point outside the candidates
        # could be closer, i.e. unless it is above (largest candidate's float32 value - error bound)
        torch = _torch()
        p, k = self.p, self.k
        kk = self.best_i.shape[1]
        out = torch.empty(len(rows), dtype=torch.float64, device=p.device)
        step = max(1, _EXACT_CHUNK // (p.dim * kk))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            d = _exact_sq_dist(p, r.repeat_interleave(kk), p, self.best_i[r].reshape(-1)).view(len(r), kk)
            out[s : s + step] = d.kthvalue(k, dim=1).values
        if kk < p.n - 1:
            bound = self.best_v[rows].amax(1).double() - self.error[rows]
            unsure = ((out > bound) & (out > 0)).nonzero().flatten()
            if len(unsure):
                out[unsure] = self._slow(rows[unsure], out[unsure])
        return out

    def _slow(self, rows: Any, guess: Any) -> Any:
        """Every point whose float32 distance could be at most ``guess`` (an exact candidate distance, so an
        upper bound of the radius) is recomputed in float64."""
        torch = _torch()
        p = self.p
        out = torch.empty(len(rows), dtype=torch.float64, device=p.device)
        step = max(1, min(256, _EXACT_CHUNK // p.n))
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            d = torch.addmm(p.sq.unsqueeze(0), p.work[r], p.work.T, alpha=-2.0).add_(p.sq[r].unsqueeze(1))
            mask = d.double() <= (guess[s : s + step] + 2 * self.error[r]).unsqueeze(1)
            mask[torch.arange(len(r), device=p.device), r] = False
            li, cj = mask.nonzero(as_tuple=True)
            exact = torch.full(d.shape, float("inf"), dtype=torch.float64, device=p.device)
            exact[li, cj] = _exact_sq_dist(p, r[li], p, cj)
            out[s : s + step] = exact.kthvalue(self.k, dim=1).values
        return out


def _any_exact(unsure: Any, margins: Any, err: Any, strict: bool, inside: Any) -> Any:
    """For rows the float32 bound left open (``unsure``, with their float32 margins against every column of
    the tile): whether some column is inside in exact arithmetic. Only columns whose float32 margin is within
    the error bound of inside are recomputed, by ``inside(rows, cols)`` (local indices)."""
    torch = _torch()
    m = margins.double()
    lim = err.unsqueeze(1)
    li, cj = (m < lim if strict else m <= lim).nonzero(as_tuple=True)
    hit = inside(unsure[li], cj)
    out = torch.zeros(len(unsure), dtype=torch.bool, device=m.device)
    out[li[hit]] = True
    return out


def _decide(done: Any, margin: Any, err: Any, strict: bool) -> Any:
    """Mark as inside the entries of ``done`` whose float32 ``margin`` is surely negative (surely <= 0 when
    not strict); return the indices the bound ``err`` cannot decide."""
    if strict:
        sure, open_ = margin < -err, (margin >= -err) & (margin < err)
    else:
        sure, open_ = margin <= -err, (margin > -err) & (margin <= err)
    open_ &= ~done
    done |= sure
    return open_.nonzero().flatten()


class _Prepared:
    def __init__(self, real: Any, fake: Any, device: Any, block: int | None) -> None:
        self.device = _resolve_device(device, real, fake)
        self.real = _Points(real, self.device, "real")
        self.fake = _Points(fake, self.device, "fake")
        if self.real.dim != self.fake.dim:
            raise ValueError(f"real and fake features differ in width: {self.real.dim} vs {self.fake.dim}")
        self.edge, self.width = _tiles(self.device, block)
        self.coef = _error_coefficient(self.real.dim)
        self.buf = _buffer(self.device, self.edge * self.width)

    def tiles(self, row_bias: Any, col_bias: Any) -> Any:
        """Yield (i0, i1, j0, j1, S) over real rows x fake columns, where the float32 tile
        S[i, j] = d(real_i, fake_j) - row_bias[i] - col_bias[j] (the biases as float64 vectors)."""
        torch = _torch()
        R, F = self.real, self.fake
        rb = (R.sq64 - row_bias).float()
        cb = (F.sq64 - col_bias).float()
        for i0 in range(0, R.n, self.edge):
            i1 = min(R.n, i0 + self.edge)
            for j0 in range(0, F.n, self.width):
                j1 = min(F.n, j0 + self.width)
                S = _tile(self.buf, i1 - i0, j1 - j0)
                torch.addmm(cb[j0:j1].unsqueeze(0), R.work[i0:i1], F.work[j0:j1].T, alpha=-2.0, out=S)
                S.add_(rb[i0:i1].unsqueeze(1))
                yield i0, i1, j0, j1, S


def _full_precision() -> Any:
    """Full-precision float32 matrix products (no TF32 or other reduced-precision paths) for the duration."""
    import contextlib

    torch = _torch()

    @contextlib.contextmanager
    def ctx() -> Any:
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_float32_matmul_precision(old)

    return ctx()


def precision_recall_masks(real: Any, fake: Any, k: int = 3, *, device: Any = None,
                           block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample decisions: (fake sample inside the real manifold, real sample inside the fake manifold)."""
    torch = _torch()
    with _full_precision():
        P = _Prepared(real, fake, device, block)
        R, F = P.real, P.fake
        nr, nf = _Neighbours(R, k, P.edge), _Neighbours(F, k, P.edge)
        r_rad, f_rad = nr.approx, nf.approx
        # bound on the error of S[i, j] + one radius added back, radius errors included
        err_r = P.coef * (R.sq64 + r_rad) + nr.error
        err_f = P.coef * (F.sq64 + f_rad) + nf.error
        prec = torch.zeros(F.n, dtype=torch.bool, device=P.device)
        rec = torch.zeros(R.n, dtype=torch.bool, device=P.device)
        for i0, i1, j0, j1, S in P.tiles(r_rad, f_rad):
            # recall, real row i: min_j d(i, j) - f_rad[j] <= 0, i.e. min_j S[i, j] + r_rad[i] <= 0
            if not bool(rec[i0:i1].all()):
                err = err_r[i0:i1] + err_f[j0:j1].max()
                unsure = _decide(rec[i0:i1], S.amin(1).double() + r_rad[i0:i1], err, strict=False)
                if len(unsure):
                    rows = S[unsure].double() + r_rad[i0 + unsure].unsqueeze(1)

                    def inside(i: Any, j: Any, i0: int = i0, j0: int = j0) -> Any:
                        return _exact_sq_dist(R, i0 + i, F, j0 + j) <= nf.exact(j0 + j)

                    rec[i0 + unsure] |= _any_exact(unsure, rows, err[unsure], False, inside)
            # precision, fake column j: min_i S[i, j] + f_rad[j] <= 0
            if not bool(prec[j0:j1].all()):
                err = err_f[j0:j1] + err_r[i0:i1].max()
                unsure = _decide(prec[j0:j1], S.amin(0).double() + f_rad[j0:j1], err, strict=False)
                if len(unsure):
                    cols = S[:, unsure].T.double() + f_rad[j0 + unsure].unsqueeze(1)

                    def inside(j: Any, i: Any, i0: int = i0, j0: int = j0) -> Any:
                        return _exact_sq_dist(R, i0 + i, F, j0 + j) <= nr.exact(i0 + i)

                    prec[j0 + unsure] |= _any_exact(unsure, cols, err[unsure], False, inside)
        return prec.cpu().numpy(), rec.cpu().numpy()


def precision_recall(real: Any, fake: Any, k: int = 3, *, device: Any = None,
                     block: int | None = None) -> dict[str, float]:
    """Precision: share of fake samples inside the real manifold; recall: share of real inside the fake one.

    ``real``, ``fake``: 2-D float arrays or tensors (one feature row per image). ``device``: where the float32
    products run (default: the tensors' device, else the CPU); ``block``: tile size (default: by device).
    """
    prec, rec = precision_recall_masks(real, fake, k, device=device, block=block)
    return {"precision": float(prec.mean()), "recall": float(rec.mean())}


def density_coverage_counts(real: Any, fake: Any, k: int = 5, *, device: Any = None,
                            block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample terms: (for each fake sample, the number of real balls it lies strictly inside; for each real
    sample, whether its nearest fake sample lies strictly inside its ball)."""
    torch = _torch()
    with _full_precision():
        P = _Prepared(real, fake, device, block)
        R, F = P.real, P.fake
        nr = _Neighbours(R, k, P.edge)
        r_rad = nr.approx
        err_r = P.coef * (R.sq64 + r_rad) + nr.error
        err_f = P.coef * F.sq64
        count = torch.zeros(F.n, dtype=torch.int64, device=P.device)
        cov = torch.zeros(R.n, dtype=torch.bool, device=P.device)
        zero = torch.zeros(F.n, dtype=torch.float64, device=P.device)
        for i0, i1, j0, j1, S in P.tiles(r_rad, zero):
            # S[i, j] = d(i, j) - r_rad[i]; density counts, per fake column, the rows with S < 0 exactly
            err = err_f[j0:j1] + err_r[i0:i1].max()
            err32 = err.float().unsqueeze(0)
            sure = (S < -err32).sum(0)
            maybe = (S < err32).sum(0)
            count[j0:j1] += sure
            unsure = (maybe > sure).nonzero().flatten()
            if len(unsure):  # the same float32 bound as above, so no pair is counted twice
                cols = S[:, unsure].T
                e = err32[0, unsure].unsqueeze(1)
                cj, ri = ((cols >= -e) & (cols < e)).nonzero(as_tuple=True)
                hit = _exact_sq_dist(R, i0 + ri, F, j0 + unsure[cj]) < nr.exact(i0 + ri)
                count.index_add_(0, j0 + unsure[cj], hit.long())
            # coverage, real row i: min_j S[i, j] < 0
            if not bool(cov[i0:i1].all()):
                err = err_r[i0:i1] + err_f[j0:j1].max()
                unsure = _decide(cov[i0:i1], S.amin(1).double(), err, strict=True)
                if len(unsure):

                    def inside(i: Any, j: Any, i0: int = i0, j0: int = j0) -> Any:
                        return _exact_sq_dist(R, i0 + i, F, j0 + j) < nr.exact(i0 + i)

                    cov[i0 + unsure] |= _any_exact(unsure, S[unsure], err[unsure], True, inside)
        return count.cpu().numpy(), cov.cpu().numpy()


def density_coverage(real: Any, fake: Any, k: int = 5, *, device: Any = None,
                     block: int | None = None) -> dict[str, float]:
    """Density: count of (fake, real) pairs with the fake strictly inside the real ball, over k * n_fake;
    coverage: share of real samples whose nearest fake sample lies strictly inside their ball."""
    count, cov = density_coverage_counts(real, fake, k, device=device, block=block)
    return {"density": float(count.sum()) / (k * len(count)), "coverage": float(cov.mean())}


def kth_neighbour_radii(x: Any, k: int, *, device: Any = None, block: int | None = None) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row (float64, exact as above)."""
    torch = _torch()
    with _full_precision():
        dev = _resolve_device(device, x)
        p = _Points(x, dev, "input")
        nb = _Neighbours(p, k, _tiles(dev, block)[0])
        return nb.exact(torch.arange(p.n, device=dev)).cpu().numpy()
