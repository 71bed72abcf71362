"""Methods that read images made elsewhere instead of generating them (``--method images``).

An :class:`ExternalImages` method takes the place of a generator in a run: the run asks it which of the suite's
samples it has (:meth:`~ExternalImages.select`, which refuses gaps unless allowed) and reads each chunk of them
(:func:`read_chunks`) instead of generating it. Everything after that is the run's ordinary path: the images go
to the sink (kept byte for byte, features streamed and cached, the chunk journaled), so a run over a finished
run's images gives exactly that run's metrics. What produced the images is recorded as ``"external"``
(``config.json``'s ``generator.weights``); such a run is comparable when the suite's protocol holds and no
sample is missing.
"""

from __future__ import annotations

import sys
import time
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.generator import Generator
from bench.images import flag_from_stats
from bench.metrics.base import check_sample_count
from bench.results import EXTERNAL

if TYPE_CHECKING:
    from bench.image_sources import ReadImage
    from bench.metrics.base import Metric
    from bench.sink import Sink
    from bench.suites.base import PromptItem
    from bench.timing import Timings

class ExternalImages(Generator):
    """Base of methods whose images already exist; see the module docstring. The generation stages are not
    available: nothing can be generated or timed."""

    def load(self, device: Any, dtype: Any) -> None:
        self.device, self.dtype = device, dtype

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (0,)

    @property
    def num_function_evaluations(self) -> int:
        return 0

    def _cannot(self, *args: Any) -> Any:
        raise BenchError(f"method {self.name!r} reads images made elsewhere: it cannot generate or be timed "
                         "(drop the latency metric; time the model that made them with `bench latency`)")

    encode_prompts = denoise = decode = _cannot

    @abstractmethod
    def select(self, items: Sequence[PromptItem], all_items: Sequence[PromptItem]) -> list[PromptItem]:
        """The samples of ``items`` (the run's, in order) that have an image; ``all_items`` are the suite's. Raises
        :class:`BenchError` (one line naming the gaps and their count) unless gaps are allowed."""

    @abstractmethod
    def read(self, item: PromptItem) -> ReadImage:
        """Sample ``item``'s image as read (pixels, and the file's bytes where there is a file)."""

    @abstractmethod
    def coverage(self) -> dict[str, Any]:
        """Counts of missing and extra images (recorded under ``images`` in results.json)."""

    def plan_run(self, metrics: list[Metric], items: Sequence[PromptItem], all_items: Sequence[PromptItem],
                 metrics_named: bool, run_dir: Path) -> tuple[list[Metric], list[PromptItem]]:
        """The run's metrics without those that time the generator (refused when named, ``metrics_named``) and
        its samples that have an image (:meth:`select`); a run directory overlapping the images is refused."""
        timed = [m.name for m in metrics if m.needs_generator]
        if timed and metrics_named:
            raise BenchError(f"metric {timed[0]!r} times the generator; method {self.name!r} reads images made "
                             "elsewhere: drop it from --metrics")
        run_dir = run_dir.resolve()
        for path in self.input_paths():
            if path == run_dir or run_dir in path.parents or path in run_dir.parents:
                raise BenchError(f"the run directory {run_dir} and the images read from {path} overlap (a run may "
                                 "replace what is in its directory); give --out or --run-name elsewhere")
        kept = [m for m in metrics if not m.needs_generator]
        wanted = self.select(items, all_items)
        for metric in kept:
            check_sample_count(metric.name, "generated", len(wanted), metric.min_samples())
        return kept, wanted

    def comparability_issues(self) -> list[str]:
        """Why the images cannot be set beside published numbers (beyond the suite's protocol): gaps."""
        cov = self.coverage()
        return [f"{cov['missing']} of the suite's samples have no image (allow_missing)"] if cov.get("missing") else []

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": EXTERNAL}


def pixel_flag(pixels: np.ndarray) -> str | None:
    """The broken-image flag of uint8 pixels, by the rule generated images get (:mod:`bench.images`)."""
    return flag_from_stats(True, float(pixels.max()) / 255.0, float(pixels.min()) / 255.0)


def read_chunks(gen: ExternalImages, todo: Sequence[tuple[Sequence[Any], list[Any]]],
                done: dict[int, dict[str, Any]], sink: Sink, timings: Timings, workers: int,
                show_progress: bool) -> None:
    """Read each chunk's wanted part (decoding in ``workers`` threads) and hand it to the sink, as the run hands
    it generated chunks. Images that cannot be decoded stop the run with one line naming them; the chunks
    before are kept, so the same command resumes once they are replaced."""
    from tqdm.auto import tqdm

    def attempt(item: Any) -> Any:
        try:
            return gen.read(item)
        except BenchError as exc:
            return exc

    total = sum(len(part) for _, part in todo)
    with ThreadPoolExecutor(workers, thread_name_prefix="bench-read") as pool, \
            tqdm(total=total, desc=f"read {gen.name}", unit="img", dynamic_ncols=True, disable=not show_progress) as bar:
        for _full, part in todo:
            sink.check()
            start = time.perf_counter()
            got = list(pool.map(attempt, part))
            failed = [str(r) for r in got if isinstance(r, BenchError)]
            if failed:
                more = f" ({len(failed)} unreadable image(s) in this chunk)" if len(failed) > 1 else ""
                raise BenchError(failed[0] + more)
            timings.add("read", time.perf_counter() - start)
            pixels = [r.pixels for r in got]
            flags = [pixel_flag(p) for p in pixels]
            sink.submit(part, pixels, flags, {it.index: done[it.index] for it in part if it.index in done},
                        sources=got)
            bar.update(len(part))


def warn(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr)
