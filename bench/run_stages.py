"""The stages of a :class:`~bench.runner.Run`, in order, each a function from what the stage before produced:

1. :func:`plan` -> :class:`RunPlan`: the main process checks that the run directory holds nothing or a run with
   the same identity (else it refuses, unless ``--overwrite``); every process waits for that verdict. The
   generator is loaded (once per session), then config.json is written. The suite's samples are cut into chunks
   of ``--batch-size`` consecutive samples; chunk ``c`` belongs to rank ``c % world_size`` (see
   :mod:`bench.distributed`). Each rank checks its chunks' finished images against the sha256 in the manifest
   and journals.
2. :func:`generate` -> :class:`Generated`: each rank generates (or reads) its chunks that miss anything, in
   order, each chunk as one batch (so a chunk's images never depend on what else ran), and hands them to a
   :class:`~bench.sink.Sink`, which writes the images, streams them through the metrics' feature networks,
   writes their features and journals the chunk. The main process keeps the features it streamed.
3. :func:`gather` -> :class:`Gathered`: all ranks report; the main process folds the journals into
   manifest.jsonl.
4. :func:`bench.run_score.score`: the main process computes every metric once (with the features it streamed
   as they are; the others are read from their files, or computed from the saved images), and
   :func:`bench.run_score.build_results` makes results.json of it all.

The run times each stage under ``stage/<name>``; within the stages each step has its own key (see the README's
``timing_s``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.external import ExternalImages, read_chunks
from bench.feature_files import GeneratedFeatures
from bench.images import to_uint8_and_flags
from bench.registry import check_description
from bench.run_features import chunks, default_workers
from bench.sink import Sink
from bench.timing import StageTimer, Timings

if TYPE_CHECKING:
    from bench.runner import Run

#: A chunk to make: the full chunk (generated as one batch) and the part of it the run wants.
Chunk = tuple[Sequence[Any], list[Any]]


@dataclass
class RunPlan:
    """What this process does: the run's config (written to config.json), whether the directory held an earlier
    attempt, this rank's chunks that miss anything, and the rows of its samples already finished."""

    config: dict[str, Any]
    resumed: bool
    todo: list[Chunk]
    done: dict[int, dict[str, Any]]
    workers: int


@dataclass
class Generated:
    """What :func:`generate` made in this process: the number of new images, the features it streamed (by
    network key, then (sample index, image sha256); kept by the main process only) and the error that stopped
    it, if one did (shared with every rank by :func:`gather`)."""

    count: int
    features: dict[str, dict[tuple[int, str], np.ndarray]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Gathered:
    """Every rank's work, on the main process: the manifest rows by index and the images made by all ranks."""

    rows: dict[int, dict[str, Any]]
    generated: int


# -- 1. plan ---------------------------------------------------------------------------------------------------
def plan(run: Run, timings: Timings) -> RunPlan:
    config, resumed = open_run(run, timings)
    workers = run.req.workers or default_workers()
    mine = my_chunks(run)
    with timings.time("orchestration/verify"):
        done = verified(run, [it for _, part in mine for it in part], workers)
    todo = [(full, part) for full, part in mine if any(it.index not in done for it in part)]
    if run.dist.is_main and done and todo:
        print(f"bench: resuming: {len(done)} finished image(s) verified, "
              f"{sum(1 for _, p in todo for it in p if it.index not in done)} to generate", file=sys.stderr)
    return RunPlan(config=config, resumed=resumed, todo=todo, done=done, workers=workers)


def open_run(run: Run, timings: Timings) -> tuple[dict[str, Any], bool]:
    """Check the directory, load the generator, write config.json; (config, whether the directory resumes)."""
    from bench.devices import hardware_summary

    dist = run.dist
    with timings.time("orchestration/open"):
        config = run.config()
        config["hardware"] = hardware_summary(run.session.device)
        error = None
        if dist.is_main:
            try:
                run.store.check(config, overwrite=run.req.overwrite)
            except BenchError as exc:
                typos = run.generator.unresolved_paths()
                error = str(exc) + (f" (note: {', '.join(typos)} names nothing here)" if typos else "")
        dist.agree(error)

    # The directory becomes this run's only once the generator has loaded: a run that fails to load (no
    # weights, a typo in a path) leaves nothing that would refuse the corrected command.
    with timings.time("load"):
        run.session.load(run.generator, run.session.dtype(run.req.dtype))
    # checked here too: a generator handed straight to the Python API was not built by the registry
    config["generator"] = check_description(f"generator {type(run.generator).__name__}", run.generator.describe())
    config["prompts_truncated"] = run.truncated()
    with timings.time("orchestration/open"):
        error, resumed = None, False
        if dist.is_main:
            try:
                resumed = run.store.open(config, overwrite=run.req.overwrite)
            except BenchError as exc:
                error = str(exc)
        resumed = bool(dist.agree(error, resumed)[0])
    return config, resumed


def my_chunks(run: Run) -> list[Chunk]:
    """This rank's chunks with the part of each that the run wants.

    Chunks are cut from the suite's full prompt list, so a chunk that --limit cuts short is still generated as
    its full batch (only the wanted part is kept): a --limit run is an exact prefix of the full run."""
    wanted = {it.index for it in run.items}
    dist = run.dist
    return [(full, part) for k, full in enumerate(chunks(run.all_items, run.req.batch_size))
            if k % dist.world_size == dist.rank and (part := [it for it in full if it.index in wanted])]


def verified(run: Run, items: Sequence[Any], workers: int) -> dict[int, dict[str, Any]]:
    """Rows of ``items`` that are finished: the image file has the recorded sha256 (or, for runs made with
    --no-save-images, the features of every streamed network are kept)."""
    if not items:
        return {}
    store = run.store
    candidates = store.read_candidates()
    kept: list[set[tuple[int, str]]] = []
    if not run.req.save_images:
        for net in run.networks:
            kept.append(set(GeneratedFeatures(store, net.key).load()))

    def check(it: Any) -> dict[str, Any] | None:
        for row in reversed(candidates.get(it.index, [])):
            if row.get("prompt") != it.prompt:
                continue
            if store.file_ok(row):
                return row
            if kept and all((it.index, row.get("sha256")) in k for k in kept):
                return row
        return None

    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(check, items))
    return {it.index: row for it, row in zip(items, found, strict=True) if row is not None}


# -- 2. generate -----------------------------------------------------------------------------------------------
def generate(run: Run, plan: RunPlan, timings: Timings) -> Generated:
    """Make this rank's missing chunks through a :class:`~bench.sink.Sink`. A :class:`BenchError` is returned
    in :attr:`Generated.error` (every rank must hear of it); anything else propagates."""
    dist = run.dist
    sink = Sink(run.store, run.suite, run.req.seed, dist.rank, run.session.device, timings, plan.workers,
                run.networks, run.req.save_images, show_progress=dist.is_main, keep_features=dist.is_main)
    error = None
    try:
        if plan.todo:
            sink.start(sum(len(part) for _, part in plan.todo))
            if isinstance(run.generator, ExternalImages):
                read_chunks(run.generator, plan.todo, plan.done, sink, timings, plan.workers, dist.is_main)
            else:
                generate_chunks(run, plan, sink, timings)
        sink.close()
    except BenchError as exc:
        sink.abort()
        error = str(exc)
    except BaseException:
        sink.abort()
        raise
    return Generated(count=sink.generated, features=sink.features, error=error)


def generate_chunks(run: Run, plan: RunPlan, sink: Sink, timings: Timings) -> None:
    """Generate each (full chunk, wanted part) as one batch and hand the wanted part to the sink."""
    import torch
    from tqdm.auto import tqdm

    from bench.sample_noise import batch_noise

    gen, dist, req = run.generator, run.dist, run.req
    staged = StageTimer(gen, timings)
    desc = f"generate {req.method}" + (f" [rank 0 of {dist.world_size}]" if dist.active else "")
    total = sum(len(part) for _, part in plan.todo)
    with tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=not dist.is_main) as bar:
        for full, part in plan.todo:
            sink.check()
            idx = [it.index for it in full]
            prompts = [it.prompt for it in full]
            pad = req.batch_size - len(full) if gen.fixed_batch else 0
            if pad > 0:  # the last chunk, at the compiled batch shape; the padding's images are dropped
                idx += range(idx[-1] + 1, idx[-1] + 1 + pad)
                prompts += prompts[-1:] * pad
            with sink.compute_lock, torch.no_grad():
                start = time.perf_counter()
                noise = batch_noise(req.seed, idx, gen.noise_shape, device=gen.device, dtype=gen.dtype)
                images = staged(noise, prompts)
                images8, flags = to_uint8_and_flags(images[: len(part)])
                timings.add("generation", time.perf_counter() - start)
                staged.collect()
            sink.submit(part, images8, flags, {it.index: plan.done[it.index] for it in part if it.index in plan.done})
            bar.update(len(part))


# -- 3. gather -------------------------------------------------------------------------------------------------
def gather(run: Run, generated: Generated, timings: Timings) -> Gathered | None:
    """Wait for every rank (raising any rank's error on all); on the main process, take the slowest rank's
    figures for each step and fold the journals into the manifest. None on the other ranks."""
    dist = run.dist
    with timings.time("orchestration/sync"):
        reports = dist.agree(generated.error, {"generated": generated.count, "timings": timings.as_dict()})
    if not dist.is_main:
        return None
    for report in reports[1:]:  # the slowest rank sets the generation-phase figures
        timings.merge_slowest(report["timings"])
    with timings.time("orchestration/compact"):
        rows = run.store.compact()
    return Gathered(rows=rows, generated=sum(r["generated"] for r in reports))
