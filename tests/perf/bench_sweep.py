"""Cost of a merge sweep against K independent runs: ``bench sweep-merge`` over K lambdas in one process, against
``python -m training merge`` + ``bench run`` of each merged model in its own process (the merging not timed).

A sweep of K points should cost about K generation passes and nothing more: one process, the sources loaded once,
feature networks and reference features shared. The ratio (sweep time / sum of the K runs) is written to
``results/perf/sweep-<device>.json`` with the hardware. Tiny students (the toy SD architecture) on the CPU, the
smoke suite with FID and precision/recall (random-weight Inception), reference features cached before timing both.
Run: ``pytest -q -s -o python_files=bench_*.py tests/perf/bench_sweep.py`` or ``python tests/perf/bench_sweep.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = (0.0, 0.5, 1.0)
LIMIT, BATCH = 16, 8
#: Deterministic metrics (``latency`` is a measurement and differs between any two runs).
METRICS = "fid,precision_recall"
#: The sweep must not cost more than the independent runs (it saves K - 1 process starts and loads).
TARGET_RATIO = 1.0


def students(root: Path) -> tuple[Path, Path]:
    """Two toy students (seeded perturbations of the tiny UNet) on the tiny base networks."""
    import torch

    from methods.components import build_tiny_components
    from methods.sbv2 import write_model_card

    out = []
    for name, seed in (("a", 1), ("b", 2)):
        unet = build_tiny_components(0).unet
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in unet.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g) * p.std().nan_to_num(0.0))
        unet.save_pretrained(str(root / name))
        write_model_card(root / name, base="tiny")
        out.append(root / name)
    return out[0], out[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True, env=env, cwd=REPO)
    return time.perf_counter() - start


def measure(root: Path) -> dict:
    a, b = students(root)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "BENCH_OFFLINE": "1",
           "BENCH_CACHE_DIR": str(root / "cache")}
    common = ["--suite", "smoke", "--limit", str(LIMIT), "--batch-size", str(BATCH), "--metrics", METRICS,
              "--device", "cpu"]
    # warm the disk caches (reference features, the tokenizer files) so that neither side pays for them
    timed(["-m", "bench", "run", "--method", "sbv2", "--method-args", f"weights={a}", "--out", str(root / "warm"),
           *common], env)
    merged = []
    for lam in LAMBDAS:
        target = root / f"merged-{lam}"
        timed(["-m", "training", "merge", "--a", str(a), "--b", str(b), "--lambda", str(lam), "--output-dir",
               str(target)], env)
        merged.append(target)
    runs = [timed(["-m", "bench", "run", "--method", "sbv2", "--method-args", f"weights={m}", "--out",
                   str(root / "runs"), "--run-name", m.name, *common], env) for m in merged]
    sweep = timed(["-m", "bench", "sweep-merge", "--a", f"sbv2:weights={a}", "--b", f"sbv2:weights={b}",
                   "--lambdas", ",".join(map(str, LAMBDAS)), "--out", str(root / "sweeps"), *common], env)
    sweep_dir = next((root / "sweeps").iterdir())
    record = json.loads((sweep_dir / "sweep.json").read_text())
    for point, run_name in zip(record["points"], [m.name for m in merged], strict=True):
        independent = json.loads((root / "runs" / run_name / "results.json").read_text())["metrics"]
        assert point["metrics"] == independent, "a sweep point must score exactly like its independent run"
    return {"sweep_s": sweep, "independent_runs_s": runs, "ratio": sweep / sum(runs),
            "point_seconds_in_sweep": [p["seconds"] for p in record["points"]]}


def hardware() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "gpu": gpu, "torch_threads": torch.get_num_threads()}


def run_benchmark(out_dir: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    hw = hardware()
    record = {"benchmark": "sweep_merge", "what": "bench sweep-merge over K lambdas vs K independent bench runs "
              "(separate processes) of the same merged models", "lambdas": list(LAMBDAS), "limit": LIMIT,
              "batch_size": BATCH, "suite": "smoke", "metrics": METRICS + " (random-weight networks)",
              "models": "tiny students (toy SD 2.1 architecture) on the CPU", **result, "target_ratio": TARGET_RATIO,
              "hardware": hw,
              "note": "measured without a GPU (none was available in the session that wrote this file); on a GPU "
                      "the per-run start-up and loading that a sweep saves are a smaller share of full-size runs"
              if hw["gpu"] is None else "measured on the GPU named in hardware"}
    device = (hw["gpu"] or "cpu").lower().replace(" ", "-")
    out = (out_dir or Path(os.environ.get("BENCH_PERF_OUT", REPO / "results" / "perf"))) / f"sweep-{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


def test_sweep_costs_no_more_than_independent_runs():
    record = run_benchmark()
    assert record["ratio"] <= TARGET_RATIO


if __name__ == "__main__":
    run_benchmark()
