"""Latency of a generator, stage by stage (text encoder, denoiser, decoder).

On CUDA devices the stages are timed with CUDA events recorded on the current stream after a synchronisation,
so each stage's time includes the host work that kept the GPU waiting; elsewhere with the host clock around
synchronised calls. Peak memory is the CUDA allocator's high-water mark (or the process's peak resident size).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.generator import STAGES, Generator


def _is_cuda(device: Any) -> bool:
    return getattr(device, "type", str(device).split(":")[0]) == "cuda"


def _sync(device: Any) -> None:
    import torch

    if _is_cuda(device):
        torch.cuda.synchronize(device)


def _time_inference_cuda(generator: Generator, noise: Any, prompts: Sequence[str]) -> dict[str, float]:
    import torch

    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    torch.cuda.synchronize(generator.device)
    events[0].record()
    cond = generator.encode_prompts(prompts)
    events[1].record()
    latents = generator.denoise(noise, cond)
    events[2].record()
    generator.decode(latents)
    events[3].record()
    events[3].synchronize()
    times = {stage: events[i].elapsed_time(events[i + 1]) for i, stage in enumerate(STAGES)}
    times["total"] = events[0].elapsed_time(events[3])
    return times


def time_inference(generator: Generator, noise: Any, prompts: Sequence[str]) -> dict[str, float]:
    """One inference through every stage; milliseconds per stage and in total."""
    device = generator.device
    if _is_cuda(device):
        return _time_inference_cuda(generator, noise, prompts)
    times: dict[str, float] = {}
    _sync(device)
    start = t0 = time.perf_counter()
    cond = generator.encode_prompts(prompts)
    _sync(device)
    t1 = time.perf_counter()
    times["text_encoder"] = (t1 - t0) * 1e3
    latents = generator.denoise(noise, cond)
    _sync(device)
    t2 = time.perf_counter()
    times["denoiser"] = (t2 - t1) * 1e3
    generator.decode(latents)
    _sync(device)
    t3 = time.perf_counter()
    times["decoder"] = (t3 - t2) * 1e3
    times["total"] = (t3 - start) * 1e3
    return times


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Mean, median, standard deviation, min and max of a list of milliseconds."""
    return {
        "mean": statistics.fmean(samples),
        "median": statistics.median(samples),
        "std": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def _peak_memory(device: Any) -> dict[str, Any]:
    if _is_cuda(device):
        import torch

        return {
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20,
            "memory_kind": "cuda max_memory_allocated",
        }
    try:
        import resource

        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return {"peak_memory_mib": None, "memory_kind": "unavailable"}
    return {"peak_memory_mib": rss_kib / 1024, "memory_kind": "process peak resident set (whole run)"}


def measure_latency(
    generator: Generator, noise: Any, prompts: Sequence[str], warmup: int = 5, iters: int = 50, repeats: int = 1
) -> dict[str, Any]:
    """Warm up, then time ``repeats`` x ``iters`` inferences; per-stage and total statistics in milliseconds.

    ``repeat_means_ms`` holds the mean total of each repeat (the paper reports their mean); the per-stage and
    ``total_ms`` statistics pool every timed inference.
    """
    device = generator.device
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        time_inference(generator, noise, prompts)
    runs: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}
    repeat_means: list[float] = []
    for _ in range(repeats):
        totals = []
        for _ in range(iters):
            for key, value in time_inference(generator, noise, prompts).items():
                runs[key].append(value)
            totals.append(runs["total"][-1])
        repeat_means.append(statistics.fmean(totals))
    return {
        "warmup": warmup,
        "iters": iters,
        "repeats": repeats,
        "batch_size": len(prompts),
        "timer": "cuda events" if _is_cuda(device) else "host clock (synchronised)",
        "stages_ms": {k: summarize(v) for k, v in runs.items() if k != "total"},
        "total_ms": summarize(runs["total"]),
        "repeat_means_ms": repeat_means,
        "repeats_ms": summarize(repeat_means),
        **_peak_memory(device),
    }
