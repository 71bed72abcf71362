"""Training step time and peak memory of SBv2 scheme A (full student, VSD) and scheme B (LoRA student + clamped
CLIP loss through TAESD), batch 16 per device, bf16 mixed precision, gradient checkpointing.

On CUDA the networks have the full SD 2.1-base architecture with seeded random weights (nothing is downloaded):
teacher + LoRA teacher (rank 64), student (full, or LoRA rank 256), OpenCLIP-H text encoder, VAE, TAESD and a
CLIP ViT-B/32 for scheme B. Without CUDA it runs the toy-size ``tiny`` networks in fp32 so the script keeps
working everywhere (the numbers then only show that it runs). Each scheme runs in its own process so peak
memory is not shared. The paper's target: both schemes fit an A100 40 GB at batch 16.

Run: ``python tests/perf/bench_training.py`` (``--help`` for options); it prints a table and writes
``results/perf/training-<device>.json`` (or into ``--out`` / ``$BENCH_PERF_OUT``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_GIB = 40.0
SCHEMES = {
    "A": ["student_mode=full", "clip_loss=false"],
    "B": ["student_mode=lora", "clip_loss=true"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schemes", default="A,B", help="comma list of A and B")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 10 on CUDA, 3 on the CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 on CUDA, 1 on the CPU)")
    p.add_argument("--size", default="auto", choices=("auto", "full", "tiny"), help="auto: full on CUDA, else tiny")
    p.add_argument("--no-checkpointing", action="store_true", help="turn gradient checkpointing off")
    p.add_argument("--out", default=None, help="output directory (default: results/perf, or $BENCH_PERF_OUT when set)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one scheme, print JSON
    return p.parse_args(argv)


def settings(scheme: str, args: argparse.Namespace, cuda: bool) -> tuple[str, list[str]]:
    """(preset, --set overrides) of one measured configuration."""
    full = args.size == "full" or (args.size == "auto" and cuda)
    common = [
        "prompts=builtin:demo", f"batch_size={args.batch_size}", "checkpoint_every=0", "sample_every=0",
        "log_every=0", "progress_bar=false", "log_with=csv", "ema=false",
    ]
    if full:
        preset = "sbv2-a" if scheme == "A" else "sbv2-b"
        extra = ["teacher=random-sd21", "mixed_precision=bf16" if cuda else "mixed_precision=no"]
        extra.append(f"gradient_checkpointing={'false' if args.no_checkpointing else 'true'}")
    else:
        preset, extra = "tiny", ["mixed_precision=bf16" if cuda else "mixed_precision=no"]
    return preset, [*common, *SCHEMES[scheme], *extra]


def measure(scheme: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build the trainer of ``scheme`` and time ``steps`` optimisation steps after ``warmup`` ones."""
    import torch

    from training.config import build_config, parse_set
    from training.trainer import Trainer

    cuda = torch.cuda.is_available()
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    steps = args.steps if args.steps is not None else (10 if cuda else 3)
    preset, overrides = settings(scheme, args, cuda)
    config = build_config(preset, overrides=parse_set(overrides), max_steps=warmup + steps)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp)
        started = time.perf_counter()
        trainer.setup()
        setup_s = time.perf_counter() - started
        for _ in range(warmup):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            trainer.train_step()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        student = trainer._student()
        result: dict[str, Any] = {
            "scheme": scheme,
            "preset": preset,
            "settings": overrides,
            "size": "full" if "teacher=random-sd21" in overrides else "tiny",
            "batch_size": config.batch_size,
            "mixed_precision": config.mixed_precision,
            "gradient_checkpointing": config.gradient_checkpointing,
            "trainable_student_params": sum(p.numel() for p in student.parameters() if p.requires_grad),
            "trainable_lora_teacher_params": sum(p.numel() for p in trainer._teacher().parameters() if p.requires_grad),
            "setup_s": setup_s,
            "warmup_steps": warmup,
            "step_s_median": statistics.median(times),
            "step_s_mean": statistics.fmean(times),
            "step_s_all": times,
            "images_per_s": config.batch_size / statistics.median(times),
        }
        if cuda:
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
            result["fits_40gb"] = result["peak_reserved_gib"] < TARGET_GIB
    return result


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    gpu_memory_gib=props.total_memory / 2**30)
    else:
        info["device"] = f"cpu ({platform.processor() or platform.machine()})"
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args)), flush=True)
        return 0
    info = device_info()
    results = {}
    for scheme in [s.strip().upper() for s in args.schemes.split(",") if s.strip()]:
        cmd = [sys.executable, __file__, "--one", scheme, "--batch-size", str(args.batch_size), "--size", args.size]
        for flag, value in (("--steps", args.steps), ("--warmup", args.warmup)):
            if value is not None:
                cmd += [flag, str(value)]
        if args.no_checkpointing:
            cmd.append("--no-checkpointing")
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            results[scheme] = {"scheme": scheme, "error": " | ".join(tail)}
        else:
            results[scheme] = json.loads(line[len("RESULT "):])
    full = any(r.get("size") == "full" for r in results.values())
    weights = ("random: seeded weights in the full SD 2.1-base architecture (nothing downloaded)" if full
               else "random: toy-size networks; the timings only show that the benchmark runs")
    report = {"benchmark": "training", "machine": info, "target_gib": TARGET_GIB, "weights": weights,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "schemes": results}
    out_dir = Path(args.out or os.environ.get("BENCH_PERF_OUT") or ROOT / "results" / "perf")
    out_dir.mkdir(parents=True, exist_ok=True)
    from bench.devices import slug

    path = out_dir / f"training-{slug(info['device'])}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"device: {info['device']}")
    print(f"{'scheme':<7}{'size':<6}{'batch':>6}{'step s':>10}{'img/s':>9}{'peak GiB':>10}{'reserved':>10}")
    for r in results.values():
        if "error" in r:
            print(f"{r['scheme']:<7}error: {r['error']}")
            continue
        peak = f"{r['peak_memory_gib']:.1f}" if "peak_memory_gib" in r else "-"
        reserved = f"{r['peak_reserved_gib']:.1f}" if "peak_reserved_gib" in r else "-"
        print(f"{r['scheme']:<7}{r['size']:<6}{r['batch_size']:>6}{r['step_s_median']:>10.3f}"
              f"{r['images_per_s']:>9.1f}{peak:>10}{reserved:>10}")
    print(f"wrote {path}")
    return 0 if all("error" not in r for r in results.values()) else 1


@pytest.mark.perf
def test_training_step_time_and_memory(tmp_path):
    out = os.environ.get("BENCH_PERF_OUT") or str(ROOT / "results" / "perf")
    assert main(["--out", out]) == 0
    import torch

    if torch.cuda.is_available():
        from bench.devices import slug

        report = json.loads((Path(out) / f"training-{slug(torch.cuda.get_device_name(0))}.json").read_text())
        for scheme in report["schemes"].values():
            assert scheme["fits_40gb"], scheme


if __name__ == "__main__":
    raise SystemExit(main())
