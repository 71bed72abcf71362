"""Cost of the newer metric networks and of the metric intervals (``tox -e perf``; JSON under results/perf/).

- ``bootstrap_fid.json``: FID's interval (grouped-jackknife replicates with the reference fixed,
  :mod:`bench.bootstrap`) against one FID computation with the reference statistics cached on disk, at
  n = 3,000 generated x 2048-d features (``BENCH_BOOT_N``; reference 4,000 rows), measured end to end and by
  parts, and extrapolated to a 30K evaluation with B = 200 groups: a replicate costs a covariance downdate by
  its left-out group's rows (n / B rows x d x d) and one d x d eigenproblem, plus the whole set's scatter
  matrix once; the FID computation costs the covariance, the reference's square root once and an eigenproblem.
- ``bootstrap_fid-<device>.json`` (``bootstrap_device``): FID's interval replicates on the run's device (a GPU
  when there is one), as a 30K evaluation runs them: B = 200 groups of n = 30,000 generated x 2048-d features
  (``BENCH_BOOT_N``, ``BENCH_BOOT_B``; 3,000 and 10 without a GPU) against a fixed reference, timed, and the
  first replicates recomputed on the CPU (float64 both) and by numpy from the kept rows, with their largest
  relative differences.
- ``network_cost.json``: seconds per image of each feature network's forward pass with random weights in the
  full architectures (batch 8, CPU threads as given), and of its per-image preparation, as ratios to
  Inception-v3's; ``BENCH_NET_BATCH`` sets the batch.

Run one directly with ``python tests/perf/bench_new_metrics.py bootstrap|device|networks``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("BENCH_PERF_OUT") or REPO / "results" / "perf")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _write(name: str, record: dict[str, Any], device: str = "cpu") -> None:
    from bench.devices import hardware_summary

    OUT.mkdir(parents=True, exist_ok=True)
    record = {**record, "hardware": hardware_summary(device)}
    (OUT / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


def _median_time(fn: Any, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bootstrap_cost(n: int, b: int = 10, dim: int = 2048, n_ref: int = 4000) -> dict[str, Any]:
    """End to end at ``n`` (FID once, then ``b`` replicates through :func:`bench.bootstrap.intervals`), and its
    parts (generated covariance, a left-out group's downdate at 30K / 200 rows, the reference's square root,
    one eigenproblem) for the 30K extrapolation."""
    from bench.bootstrap import Recording, intervals
    from bench.metrics import fid as fidmod

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(n_ref, dim))
    gen = rng.normal(size=(n, dim)) + 0.1

    class Ctx:
        prompts, groups, generator, device = [""] * n, None, None, "cpu"

        def image_features(self, spec: Any, which: str) -> np.ndarray:
            return gen if which == "generated" else ref

    metric = fidmod.FID(weights="random")
    mu_r, sigma_r = fidmod.reference_statistics(ref, metric.spec().extractor_spec())  # warm disk cache, as in a run
    fidmod._REFERENCE.clear()
    start = time.perf_counter()
    value = metric.compute(Ctx()).values["fid"]
    t_fid = time.perf_counter() - start
    start = time.perf_counter()
    intervals(metric, Recording(Ctx()), {"fid": value}, b=b)
    t_rep = (time.perf_counter() - start) / b
    mu_g, sigma_g = fidmod.feature_statistics(gen)
    t_cov = _median_time(lambda: fidmod.feature_statistics(gen))
    group = gen[: 30000 // 200]
    t_down = _median_time(lambda: group.T @ group)
    t_root = _median_time(lambda: fidmod.FrechetReference(mu_r, sigma_r), 1)
    frechet = fidmod.FrechetReference(mu_r, sigma_r)
    t_eig = _median_time(lambda: frechet.distance(mu_g, sigma_g))
    cov30k = t_cov * 30000 / n
    fid30k, rep30k = cov30k + t_root + t_eig, t_down + t_eig + cov30k / 200
    return {"dim": dim, "n": n, "n_reference": n_ref, "replicates_timed": b,
            "measured": {"fid_s": round(t_fid, 3), "replicate_s": round(t_rep, 3),
                         "ratio_replicate_to_fid": round(t_rep / t_fid, 3)},
            "parts_s": {"covariance": round(t_cov, 3), "group_downdate_150_rows": round(t_down, 4),
                        "reference_sqrt_once": round(t_root, 3), "eigenproblem": round(t_eig, 3)},
            "extrapolated_30k": {"fid_s": round(fid30k, 2), "replicate_s": round(rep30k, 2),
                                 "ratio_replicate_to_fid": round(rep30k / fid30k, 3),
                                 "b200_s": round(200 * rep30k, 1), "b200_over_fid": round(200 * rep30k / fid30k, 1)}}


def bootstrap_device(n: int, b: int, dim: int = 2048, n_ref: int = 10000, checked: int = 3) -> dict[str, Any]:
    """FID's interval replicates on CUDA when available (else the CPU): time for ``b`` groups, and the first
    ``checked`` replicates against the CPU path and against numpy on the kept rows."""
    import torch

    from bench.bootstrap import draws
    from bench.metrics import fid as fidmod

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(n_ref, dim)).astype(np.float32)
    gen = (rng.normal(size=(n, dim)) * 1.05 + 0.1).astype(np.float32)
    frechet = fidmod.FrechetReference(*fidmod.feature_statistics(ref))
    drawn = [idx for idx, _ in draws(n, None, "sample", b, 0)]
    frechet.resampled_distances(gen, drawn[:1], device)  # warm-up: kernels, solver workspaces
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    values = frechet.resampled_distances(gen, drawn, device)
    t_all = time.perf_counter() - start
    start = time.perf_counter()
    one = frechet.distance(*fidmod.feature_statistics(gen))  # the FID itself (numpy), its reference ready
    t_fid = time.perf_counter() - start
    on_cpu = frechet.resampled_distances(gen, drawn[:checked], "cpu")
    by_rows = [frechet.distance(*fidmod.feature_statistics(gen[idx])) for idx in drawn[:checked]]

    def rel(a: list[float], c: list[float]) -> float:
        return float(max(abs(x - y) / abs(y) for x, y in zip(a, c, strict=False)))

    return {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "dim": dim, "n": n,
            "n_reference": n_ref, "B": b, "replicates_s": round(t_all, 3), "per_replicate_s": round(t_all / b, 4),
            "fid_once_s_numpy_reference_ready": round(t_fid, 3), "fid": one,
            "max_rel_diff_vs_cpu": rel(values[:checked], on_cpu), "max_rel_diff_vs_numpy_rows": rel(values[:checked],
                                                                                                  by_rows),
            "note": "random Gaussian features; times the computation a 30K run's FID interval does"}


NETWORKS = {
    "inception": {"kind": "inception", "weights": "random"},
    "dinov2 ViT-L/14 (fd_dinov2, diversity)": {"kind": "dinov2", "weights": "random"},
    "CLIP ViT-L/14-336 (cmmd)": {"kind": "hf_clip", "weights": "random"},
    "CLIP-H PickScore (pickscore)": {"kind": "hf_clip", "weights": "random", "repo": "yuvalkirstain/PickScore_v1",
                                     "resize": "processor"},
}


def network_cost(batch: int = 8, repeats: int = 2) -> dict[str, Any]:
    from bench.metrics.extractors import build_extractor
    from bench.metrics.preprocess import Preprocess

    imgs = np.random.default_rng(0).integers(0, 255, (batch, 512, 512, 3)).astype(np.uint8)
    out: dict[str, Any] = {}
    for name, spec in NETWORKS.items():
        ext = build_extractor(spec)
        ext.model  # noqa: B018
        suite = Preprocess()  # Inception sees the suite's 256 px images; the others their own crop
        src = np.stack([suite(im) for im in imgs]) if spec["kind"] == "inception" else imgs
        start = time.perf_counter()
        prepared = np.stack([ext.prepare(im) for im in src])
        prep = (time.perf_counter() - start) / batch
        ext.forward(prepared[:2])  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            ext.forward(prepared)
            times.append((time.perf_counter() - start) / batch)
        out[name] = {"forward_s_per_image": round(min(times), 4), "prepare_s_per_image": round(prep, 4)}
        del ext
    base = out["inception"]["forward_s_per_image"]
    for v in out.values():
        v["forward_ratio_to_inception"] = round(v["forward_s_per_image"] / base, 2)
    return {"batch": batch, "device": "cpu", "weights": "random (full architectures)", "networks": out}


def test_bootstrap_cost():
    rec = bootstrap_cost(int(os.environ.get("BENCH_BOOT_N", "3000")))
    _write("bootstrap_fid.json", rec)
    assert rec["extrapolated_30k"]["ratio_replicate_to_fid"] < 1.0


def test_bootstrap_device():
    import torch

    gpu = torch.cuda.is_available()  # a CPU gets a smaller problem, so the script keeps working there
    rec = bootstrap_device(int(os.environ.get("BENCH_BOOT_N", "30000" if gpu else "3000")),
                           int(os.environ.get("BENCH_BOOT_B", "200" if gpu else "10")))
    from bench.devices import slug

    _write(f"bootstrap_fid-{slug(rec['device'])}.json", rec, "cuda" if gpu else "cpu")
    # float64 throughout; the trace terms (about 2 x d) cancel down to the distance, so allow 1e-7 relative
    assert rec["max_rel_diff_vs_cpu"] < 1e-7 and rec["max_rel_diff_vs_numpy_rows"] < 1e-7


def test_network_cost():
    rec = network_cost(int(os.environ.get("BENCH_NET_BATCH", "8")))
    _write("network_cost.json", rec)
    assert rec["networks"]["inception"]["forward_ratio_to_inception"] == 1.0


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "bootstrap"
    {"bootstrap": test_bootstrap_cost, "device": test_bootstrap_device, "networks": test_network_cost}[what]()
