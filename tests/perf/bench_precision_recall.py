"""Precision/recall speed and memory (``tox -e perf``; JSON under results/perf/).

- ``precision_recall_10k.json``: N_real = N_fake = 10,000, 2048-d float32 features. Measured side by side in
  one process, interleaved rounds, medians: our precision/recall, the bare float32 distance products it needs
  (real x real, fake x fake, real x fake as full matrix products: the floor), torch-fidelity's full-matrix
  implementation and prdc. Targets: at most 1.25 x the floor, faster than both references, identical values.
- ``precision_recall_coco.json``: N_real = 40,504 (all of COCO val2014), N_fake = 30,000, in a child process
  whose peak resident memory (the process's own high-water mark, VmHWM; everything included: interpreter,
  torch, the features) must stay at most 2 GB. (ru_maxrss would not do: Linux carries it across fork and exec,
  so the child would report the peak of the benchmark process that started it.)
- ``precision_recall_gpu.json`` (only where CUDA is available): 50,000 x 50,000 on the GPU.

Sizes and repeats can be changed with BENCH_PR_N, BENCH_PR_ROUNDS, BENCH_PR_REF_ROUNDS, BENCH_PR_COCO
("40504,30000") and BENCH_PR_GPU_N. Run one case directly with
``python tests/perf/bench_precision_recall.py speed|memory|gpu``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "results" / "perf"
DIM = 2048
TARGET_RATIO = 1.25
MEMORY_LIMIT_BYTES = 2_000_000_000

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "torch": torch.__version__}
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = os.getloadavg()
    return info


def features(n: int, seed: int, clusters: int, device: str = "cpu") -> Any:
    """Clustered non-negative float32 features (like post-ReLU pool features), generated in chunks."""
    import torch

    g = torch.Generator(device=device).manual_seed(1000)
    centres = torch.randn(64, DIM, generator=g, device=device) * 0.3
    g.manual_seed(seed)
    out = torch.empty(n, DIM, device=device)
    for s in range(0, n, 4096):
        e = min(n, s + 4096)
        z = torch.randint(0, clusters, (e - s,), generator=g, device=device)
        out[s:e] = torch.relu(centres[z] + torch.randn(e - s, DIM, generator=g, device=device))
    return out


def timed(fn: Any, sync: Any = None) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds)."""
    if sync:
        sync()
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    if sync:
        sync()
    return result, time.perf_counter() - w, time.process_time() - c


def bare_products(real: Any, fake: Any) -> None:
    """The three float32 distance matrix products precision/recall needs, each computed in full."""
    import torch

    for a, b in ((real, real), (fake, fake), (real, fake)):
        m = torch.mm(a, b.T)
        del m


def write(name: str, record: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


def summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    return {"median_s": statistics.median(r[0] for r in runs), "median_cpu_s": statistics.median(r[1] for r in runs),
            "runs_s": [round(r[0], 3) for r in runs], "runs_cpu_s": [round(r[1], 3) for r in runs]}


def run_speed() -> dict[str, Any]:
    from prdc import compute_prdc
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    from bench.metrics.knn_exact import precision_recall

    n = int(os.environ.get("BENCH_PR_N", "10000"))
    rounds = int(os.environ.get("BENCH_PR_ROUNDS", "3"))
    ref_rounds = int(os.environ.get("BENCH_PR_REF_ROUNDS", "1"))
    info = machine()
    real, fake = features(n, 1, 64), features(n, 2, 48)
    precision_recall(real[:500], fake[:500])  # warm-up (allocator, threads)
    ours, floor, tfid, prdc_runs = [], [], [], []
    values: dict[str, Any] = {}
    for r in range(max(rounds, ref_rounds)):
        if r < rounds:
            order = ("floor", "ours") if r % 2 == 0 else ("ours", "floor")
            for what in order:
                if what == "floor":
                    _, w, c = timed(lambda: bare_products(real, fake))
                    floor.append((w, c))
                else:
                    values["ours"], w, c = timed(lambda: precision_recall(real, fake, 3))
                    ours.append((w, c))
        if r < ref_rounds:
            # torch-fidelity's convention: features_1 generated, features_2 real
            (p, rc), w, c = timed(lambda: calculate_precision_recall_full(fake, real, 3, 10000))
            values["torch_fidelity"] = {"precision": p, "recall": rc}
            tfid.append((w, c))
            with contextlib.redirect_stdout(io.StringIO()):
                res, w, c = timed(lambda: compute_prdc(real.numpy(), fake.numpy(), 3))
            values["prdc"] = {k: float(v) for k, v in res.items()}
            prdc_runs.append((w, c))
    counts = {name: (round(v["precision"] * n), round(v["recall"] * n)) for name, v in values.items()}
    s_ours, s_floor, s_tfid, s_prdc = summary(ours), summary(floor), summary(tfid), summary(prdc_runs)
    with contextlib.suppress(OSError):
        info["load_average_at_end"] = os.getloadavg()
    return {
        "benchmark": "precision_recall_10k",
        "n_real": n, "n_fake": n, "dim": DIM, "k": 3, "dtype": "float32", "device": "cpu",
        "ours": s_ours, "floor_bare_products": s_floor, "torch_fidelity_full": s_tfid, "prdc": s_prdc,
        "ratio_to_floor": s_ours["median_s"] / s_floor["median_s"],
        "ratio_to_floor_cpu": s_ours["median_cpu_s"] / s_floor["median_cpu_s"],
        "speedup_vs_torch_fidelity": s_tfid["median_s"] / s_ours["median_s"],
        "speedup_vs_prdc": s_prdc["median_s"] / s_ours["median_s"],
        "values": values,
        "samples_inside": counts,
        "identical_results": len(set(counts.values())) == 1,
        "target_ratio_to_floor": TARGET_RATIO,
        "note": "floor = torch.mm of real x real, fake x fake and real x fake in float32; our self-distance tiles "
                "serve both triangles, so we can be below it. Wall times on a shared machine; CPU times alongside.",
        "machine": info,
    }


def peak_rss_bytes() -> int:
    """This process's own peak resident memory: VmHWM from /proc (ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_memory(n_real: int, n_fake: int) -> dict[str, Any]:
    """Runs in a fresh process: generate the features, score them, report peak memory."""
    import torch

    from bench.metrics.knn_exact import precision_recall

    rss_imports = peak_rss_bytes()
    real, fake = features(n_real, 1, 64), features(n_fake, 2, 48)
    rss_data = peak_rss_bytes()
    out, w, c = timed(lambda: precision_recall(real, fake, 3))
    peak = peak_rss_bytes()
    return {"values": out, "seconds": w, "cpu_seconds": c, "peak_rss_bytes": peak,
            "peak_rss_after_imports_bytes": rss_imports,
            "peak_rss_after_features_bytes": rss_data, "feature_bytes": (n_real + n_fake) * DIM * 4,
            "torch_threads": torch.get_num_threads()}


def run_memory() -> dict[str, Any]:
    n_real, n_fake = (int(x) for x in os.environ.get("BENCH_PR_COCO", "40504,30000").split(","))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, __file__, "--child-memory", str(n_real), str(n_fake)], env=env,
                          capture_output=True, text=True, check=True, cwd=REPO)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    f32 = 4
    prdc_bytes = (n_real * n_real + n_fake * n_fake + n_real * n_fake) * f32 + n_real * n_real * 8
    return {
        "benchmark": "precision_recall_coco",
        "n_real": n_real, "n_fake": n_fake, "dim": DIM, "k": 3, "dtype": "float32", "device": "cpu",
        **child,
        "limit_bytes": MEMORY_LIMIT_BYTES,
        "prdc_estimated_bytes": prdc_bytes,
        "prdc_estimate_note": "its three float32 distance matrices plus the int64 index array of the argpartition "
                              "over the real x real matrix, before any temporaries",
        "machine": machine(),
    }


def run_gpu() -> dict[str, Any]:
    import torch

    from bench.metrics.knn_exact import precision_recall

    n = int(os.environ.get("BENCH_PR_GPU_N", "50000"))
    real, fake = features(n, 1, 64, "cuda"), features(n, 2, 48, "cuda")
    sync = torch.cuda.synchronize
    precision_recall(real[:2000], fake[:2000], device="cuda")  # warm-up
    torch.cuda.reset_peak_memory_stats()
    runs, floors = [], []
    out = None
    for _ in range(2):
        out, w, c = timed(lambda: precision_recall(real, fake, 3, device="cuda"), sync)
        runs.append((w, c))
        _, w, c = timed(lambda: bare_products(real, fake), sync)
        floors.append((w, c))
    return {
        "benchmark": "precision_recall_gpu",
        "n_real": n, "n_fake": n, "dim": DIM, "k": 3, "dtype": "float32",
        "device": torch.cuda.get_device_name(0),
        "values": out, "ours": summary(runs), "floor_bare_products": summary(floors),
        "ratio_to_floor": statistics.median(r[0] for r in runs) / statistics.median(f[0] for f in floors),
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(),
        "machine": machine(),
    }


def test_precision_recall_10k_speed():
    record = run_speed()
    write("precision_recall_10k.json", record)
    assert record["identical_results"], record["samples_inside"]
    assert record["ratio_to_floor"] <= TARGET_RATIO
    assert record["ours"]["median_s"] < record["torch_fidelity_full"]["median_s"]
    assert record["ours"]["median_s"] < record["prdc"]["median_s"]


def test_precision_recall_coco_memory():
    record = run_memory()
    write("precision_recall_coco.json", record)
    assert record["peak_rss_bytes"] <= MEMORY_LIMIT_BYTES


def test_precision_recall_gpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    write("precision_recall_gpu.json", run_gpu())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child-memory"]:
        print(json.dumps(child_memory(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        case = sys.argv[1] if len(sys.argv) > 1 else "speed"
        name = {"speed": "precision_recall_10k.json", "memory": "precision_recall_coco.json",
                "gpu": "precision_recall_gpu.json"}[case]
        write(name, {"speed": run_speed, "memory": run_memory, "gpu": run_gpu}[case]())
