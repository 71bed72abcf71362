"""Timing: seconds per stage of a run, and the latency of a generator stage by stage.

One stage timer serves both: :class:`StageTimer` runs a generator's three stages (text encoder, denoiser,
decoder) and marks the boundaries with CUDA events recorded on the current stream (so nothing waits, and each
stage's time includes the host work that kept the GPU waiting) or, elsewhere, with the host clock. A run
collects the marks after the outputs were used; a latency measurement collects them at once. Peak memory is
the CUDA allocator's high-water mark (or the process's peak resident size).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from bench.generator import STAGES, Generator


class Timings:
    """Seconds per stage, added from several threads.

    :meth:`time` times a block under a key. A block timed with ``own=True`` counts only its own work: its clock
    pauses while a block timed inside it (on the same thread) runs, and each of those counts under its own key.
    A metric's ``metric/<name>`` is timed that way, so the features it asks for count under ``features/...``.
    """

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's open blocks, innermost last

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds

    @contextlib.contextmanager
    def time(self, key: str, own: bool = False) -> Iterator[None]:
        stack: list[_Clock] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        outer = stack[-1] if stack else None
        if outer is not None:
            outer.pause()
        clock = _Clock(own)
        stack.append(clock)
        try:
            yield
        finally:
            stack.pop()
            self.add(key, clock.stop())
            if outer is not None:
                outer.resume()

    def get(self, key: str) -> float:
        with self._lock:
            return self._seconds.get(key, 0.0)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)

    def merge_slowest(self, other: dict[str, float]) -> None:
        """Take each of ``other``'s figures that is larger than this one's (another rank's, say)."""
        with self._lock:
            for key, value in other.items():
                if value > self._seconds.get(key, 0.0):
                    self._seconds[key] = value


class _Clock:
    """One timed block's clock, running from creation; an ``own`` clock pauses while a block inside it runs."""

    def __init__(self, own: bool) -> None:
        self.own = own
        self.seconds = 0.0
        self._since: float | None = time.perf_counter()

    def pause(self) -> None:
        if self.own and self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> float:
        """The block's seconds, once it has ended."""
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None
        return self.seconds


def _is_cuda(device: Any) -> bool:
    return getattr(device, "type", str(device).split(":")[0]) == "cuda"


class StageTimer:
    """Calls a generator and records when each of its stages started and ended.

    Generators that keep the standard ``generate`` are run stage by stage; those that override it are timed
    as a whole (``generate``), unless ``by_stage=True`` forces the stages. :meth:`collect` turns the pending
    marks into milliseconds per call (and, given ``timings``, adds the seconds under ``generation/<stage>``).
    """

    def __init__(self, generator: Generator, timings: Timings | None = None, by_stage: bool | None = None) -> None:
        self.gen = generator
        self.timings = timings
        self.by_stage = type(generator).generate is Generator.generate if by_stage is None else by_stage
        self.cuda = _is_cuda(getattr(generator, "device", None))
        self._pending: list[list[Any]] = []

    def __call__(self, noise: Any, prompts: Sequence[str]) -> Any:
        if not self.by_stage:
            return self.gen.generate(noise, prompts)
        marks = [self._mark()]
        conditioning = self.gen.encode_prompts(prompts)
        marks.append(self._mark())
        latents = self.gen.denoise(noise, conditioning)
        marks.append(self._mark())
        images = self.gen.decode(latents)
        marks.append(self._mark())
        self._pending.append(marks)
        return images

    def _mark(self) -> Any:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _ms(self, a: Any, b: Any) -> float:
        if self.cuda:
            b.synchronize()
            return float(a.elapsed_time(b))
        return (b - a) * 1e3

    def collect(self) -> list[dict[str, float]]:
        """Milliseconds per stage and in total for each call since the last collect (call it after the
        outputs were used, so CUDA events have completed)."""
        out = []
        for marks in self._pending:
            times = {stage: self._ms(a, b) for stage, a, b in zip(STAGES, marks[:-1], marks[1:], strict=True)}
            times["total"] = self._ms(marks[0], marks[-1])
            if self.timings is not None:
                for stage in STAGES:
                    self.timings.add(f"generation/{stage}", times[stage] / 1e3)
            out.append(times)
        self._pending.clear()
        return out


def time_inference(generator: Generator, noise: Any, prompts: Sequence[str]) -> dict[str, float]:
    """One inference through every stage; milliseconds per stage and in total."""
    if _is_cuda(generator.device):
        import torch

        torch.cuda.synchronize(generator.device)
    timer = StageTimer(generator, by_stage=True)
    timer(noise, prompts)
    return timer.collect()[0]


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
