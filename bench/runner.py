"""A run: resolve method, suite and metrics, generate what is missing, score, write results.json.

What :meth:`Run.execute` does, in order:

1. The main process checks that the run directory holds nothing or a run with the same identity (else it
   refuses, unless ``--overwrite``) and writes config.json; every process waits for that verdict.
2. The generator is loaded. The suite's samples are cut into chunks of ``--batch-size`` consecutive samples;
   chunk ``c`` belongs to rank ``c % world_size`` (see :mod:`bench.distributed`). Each rank checks its chunks'
   finished images against the sha256 in the manifest and journals.
3. Each rank generates its chunks that miss anything, in order, each chunk as one batch (so a chunk's images
   never depend on what else ran). A background thread takes each finished batch: encodes the images
   (PNG, or JPEG for suites that ask for it) in a thread pool, writes them atomically, streams them through the
   metrics' feature networks (the same pixels that the files decode to), and then appends the chunk's rows to
   the rank's journal. A chunk counts as finished only once its row is in a journal, so a crash at any point
   costs at most the chunks in flight, and leaves no partial file under a final name.
4. All ranks report; the main process folds the journals into manifest.jsonl, computes every metric once
   (features that were streamed are read from their cache; anything missing is computed from the files) and
   writes results.json with a time budget of the stages.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import queue
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import plugins
from bench.errors import BenchError
from bench.features import (
    FeatureStore,
    GeneratedFeatures,
    Timings,
    chunks,
    default_workers,
    features_in_batches,
)
from bench.store import RunStore, crash_point, sha256_bytes

RESULTS_SCHEMA = "sbv2-bench/results/v1"
#: Flag names of broken images, in report order.
FLAGS = ("nan", "black", "constant")
#: Chunks that may wait between the generator and the background writer (bounds memory).
PENDING_CHUNKS = 2


@dataclass
class RunRequest:
    """Everything ``bench run`` takes; see ``python -m bench run --help``."""

    method: str
    suite: str
    method_args: dict[str, Any] = field(default_factory=dict)
    suite_args: dict[str, Any] = field(default_factory=dict)
    metric_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "runs"
    run_name: str | None = None
    limit: int | None = None
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    dtype: str = "fp32"
    metrics: Sequence[str] | None = None
    overwrite: bool = False
    save_images: bool = True
    workers: int | None = None

    def run_dir(self) -> Any:
        from pathlib import Path

        name = self.run_name or f"{self.suite}-{self.method}"
        return Path(self.out) / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def image_flag(image: np.ndarray) -> str | None:
    """``"nan"``, ``"black"`` or ``"constant"`` for a broken float image (3, H, W) in [0, 1], else None."""
    if not np.isfinite(image).all():
        return "nan"
    if image.max() <= 1.0 / 255.0:
        return "black"
    if float(np.ptp(image)) == 0.0:
        return "constant"
    return None


def to_uint8_and_flags(images: Any) -> tuple[np.ndarray, list[str | None]]:
    """Float images in [0, 1] (B, 3, H, W), on any device -> uint8 (B, H, W, 3) on the host, and each image's
    :func:`image_flag`. The conversion runs on the images' device and matches
    :func:`bench.metrics.preprocess.to_uint8` (NaN -> 0, clip, x 255, + 0.5, truncate)."""
    import torch

    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x.detach().float()
    finite = torch.isfinite(x).flatten(1).all(1)
    clean = torch.nan_to_num(x, nan=0.0)
    flat = clean.flatten(1)
    stats = torch.stack([finite.float(), flat.amax(1), flat.amin(1)], 1).cpu().numpy()
    u8 = (clean.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    flags: list[str | None] = []
    for ok, hi, lo in stats:
        flags.append("nan" if not ok else "black" if hi <= 1.0 / 255.0 else "constant" if hi == lo else None)
    return u8, flags


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image_uint8: np.ndarray, level: int = 1) -> bytes:
    """uint8 (H, W, 3) -> a standard 8-bit RGB PNG: every row with the "Sub" filter, zlib at ``level``.

    Several times faster than PIL's encoder at a similar size, and zlib releases the GIL, so a thread pool
    encodes in parallel. PNG is lossless: any reader gets exactly these pixels back.
    """
    img = np.ascontiguousarray(image_uint8, dtype=np.uint8)
    h, w, c = img.shape
    if c != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
    rows = img.reshape(h, w * c)
    filtered = np.empty((h, 1 + w * c), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type "Sub": each byte minus the byte one pixel to the left (mod 256)
    filtered[:, 1 : 1 + c] = rows[:, :c]
    np.subtract(rows[:, c:], rows[:, :-c], out=filtered[:, 1 + c :])
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, filtering 0, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)) + _png_chunk(b"IEND", b""))


def encode_image(image_uint8: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """uint8 (H, W, 3) -> PNG (:func:`encode_png`) or JPEG (PIL, ``quality``) bytes."""
    if fmt == "png":
        return encode_png(image_uint8)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def decode_pixels(data: bytes, name: str) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3), exactly as a reader of the file gets them."""
    from bench.suites.base import decode_image

    return np.asarray(decode_image(data, name, "image"), dtype=np.uint8)


class Run:
    """One evaluation run; :meth:`execute` does the work and returns the results dictionary (None on ranks
    other than the main one)."""

    def __init__(self, request: RunRequest) -> None:
        self.req = request
        if request.batch_size < 1:
            raise BenchError(f"--batch-size must be at least 1, got {request.batch_size}")
        if request.limit is not None and request.limit < 1:
            raise BenchError(f"--limit must be at least 1, got {request.limit}")
        if request.workers is not None and request.workers < 1:
            raise BenchError(f"--workers must be at least 1, got {request.workers}")
        reg = plugins.current()
        # Resolve every name first, so a typo fails before anything heavy happens.
        self.method_entry = reg.methods.get(request.method)
        self.suite_entry = reg.suites.get(request.suite)
        self.suite = self.suite_entry.build(**request.suite_args)
        names = list(request.metrics) if request.metrics is not None else list(self.suite.default_metrics)
        metric_entries = [reg.metrics.get(n) for n in names]
        unknown_args = set(request.metric_args) - set(names)
        if unknown_args:
            raise BenchError(f"--metric-args names metric {sorted(unknown_args)[0]!r}, which this run does not use "
                             f"(metrics: {', '.join(names)})")
        self.metrics = []
        for entry in metric_entries:
            opts = {**self.suite.metric_options().get(entry.name, {}), **request.metric_args.get(entry.name, {})}
            self.metrics.append(entry.build(**opts))
        self.generator = self.method_entry.build(**request.method_args)
        items = self.suite.prompts()
        if not items:
            raise BenchError(f"suite {request.suite!r} has no prompts")
        self.all_items = items
        if request.limit is not None:
            if request.limit > len(items):
                raise BenchError(f"--limit {request.limit} is larger than the {len(items)} prompts of suite "
                                 f"{request.suite!r}; use at most {len(items)}")
            items = items[: request.limit]
        self.items = items
        self.suite.check_data(names)
        self.store = RunStore(request.run_dir())
        from bench import distributed

        self.dist = distributed.init(request.device)

    def config(self) -> dict[str, Any]:
        from bench.provenance import provenance

        req = self.req
        return {
            "method": req.method,
            "method_args": self.generator.args,
            "suite": req.suite,
            "suite_args": self.suite.identity_args(),
            "data": self.suite.location_args(),
            "protocol": self.suite.protocol(),
            "metrics": {m.name: m.args for m in self.metrics},
            "seed": req.seed,
            "noise": "sample i: torch.randn(float32, CPU generator seeded with blake2b('<seed>:<i>')[:8])",
            "chunking": "chunks of batch_size consecutive samples; chunk c generated as one batch on rank "
                        "c % world_size; a shorter last chunk is padded to batch_size when the generator runs "
                        "at a fixed batch shape (compile, CUDA graphs)",
            "dtype": req.dtype,
            "device": req.device,
            "batch_size": req.batch_size,
            "limit": req.limit,
            "save_images": req.save_images,
            "world_size": self.dist.world_size,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **provenance(),
        }

    # -- the run ----------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any] | None:
        from bench.devices import hardware_summary, resolve_device, resolve_dtype

        timings = Timings()
        t0 = time.perf_counter()
        dist = self.dist
        device = dist.device(resolve_device(self.req.device))
        dtype = resolve_dtype(self.req.dtype)
        with timings.time("orchestration/open"):
            config = self.config()
            config["hardware"] = hardware_summary(device)
            error, resumed = None, False
            if dist.is_main:
                try:
                    resumed = self.store.open(config, overwrite=self.req.overwrite)
                except BenchError as exc:
                    error = str(exc)
            resumed = bool(dist.agree(error, resumed)[0])

        with timings.time("load"):
            self.generator.load(device, dtype)
        config["generator"] = self.generator.describe()
        if dist.is_main:
            with timings.time("orchestration/open"):
                self.store.write_config(config)

        # Chunks are cut from the suite's full prompt list, so a chunk that --limit cuts short is still generated
        # as its full batch (only the wanted part is kept): a --limit run is an exact prefix of the full run.
        n = len(self.items)
        mine = [(full, [it for it in full if it.index < n])
                for k, full in enumerate(chunks(self.all_items, self.req.batch_size))
                if k % dist.world_size == dist.rank and full[0].index < n]
        workers = self.req.workers or default_workers()
        with timings.time("orchestration/verify"):
            done = self._verified([it for _, part in mine for it in part], workers)
        todo = [(full, part) for full, part in mine if any(it.index not in done for it in part)]
        if dist.is_main and done and todo:
            print(f"bench: resuming: {len(done)} finished image(s) verified, "
                  f"{sum(1 for _, p in todo for it in p if it.index not in done)} to generate", file=sys.stderr)

        sink = _Sink(self, dist.rank, device, timings, workers)
        error = None
        try:
            if todo:
                sink.start(sum(len(part) for _, part in todo))
                self._generate(todo, done, sink, timings)
            sink.close()
        except BenchError as exc:
            sink.abort()
            error = str(exc)
        except BaseException:
            sink.abort()
            raise
        with timings.time("orchestration/sync"):
            reports = dist.agree(error, {"generated": sink.generated, "timings": timings.as_dict()})
        if not dist.is_main:
            return None
        for report in reports[1:]:  # the slowest rank sets the generation-phase figures
            for key, value in report["timings"].items():
                if value > timings.get(key):
                    timings.add(key, value - timings.get(key))
        generated = sum(r["generated"] for r in reports)

        with timings.time("orchestration/compact"):
            rows = self.store.compact()
        flags = [rows[it.index].get("flag") for it in self.items]
        values, info = self._score(rows, sink.extractors, device, timings, workers)
        results = self._results(config, values, info, flags, generated, resumed, timings, time.perf_counter() - t0)
        self.store.write_results(results)
        return results

    def _verified(self, items: Sequence[Any], workers: int) -> dict[int, dict[str, Any]]:
        """Rows of ``items`` that are finished: the image file has the recorded sha256 (or, for runs made with
        --no-save-images, the features of every streamed network are kept)."""
        if not items:
            return {}
        candidates = self.store.read_candidates()
        kept: list[set[tuple[int, str]]] = []
        if not self.req.save_images:
            for key in self._stream_keys():
                kept.append(set(GeneratedFeatures(self.store, key).load()))

        def check(it: Any) -> dict[str, Any] | None:
            for row in reversed(candidates.get(it.index, [])):
                if row.get("prompt") != it.prompt:
                    continue
                if self.store.file_ok(row):
                    return row
                if kept and all((it.index, row.get("sha256")) in k for k in kept):
                    return row
            return None

        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(check, items))
        return {it.index: row for it, row in zip(items, found, strict=True) if row is not None}

    def _stream_keys(self) -> list[str]:
        from bench.metrics.extractors import build_extractor

        keys = []
        for metric in self.metrics:
            fn = getattr(metric, "extractor", None)
            if callable(fn):
                key = build_extractor(fn()).key()
                if key not in keys:
                    keys.append(key)
        return keys

    def _generate(self, todo: Sequence[tuple[Sequence[Any], list[Any]]], done: dict[int, dict[str, Any]],
                  sink: _Sink, timings: Timings) -> None:
        """Generate each (full chunk, wanted part) as one batch and hand the wanted part to the sink."""
        import torch
        from tqdm.auto import tqdm

        from bench.seeding import batch_noise

        gen = self.generator
        dist = self.dist
        staged = _StageTimer(gen, timings)
        desc = f"generate {self.req.method}" + (f" [rank 0 of {dist.world_size}]" if dist.active else "")
        total = sum(len(part) for _, part in todo)
        with tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=not dist.is_main) as bar:
            for full, part in todo:
                sink.check()
                idx = [it.index for it in full]
                prompts = [it.prompt for it in full]
                pad = self.req.batch_size - len(full) if gen.fixed_batch else 0
                if pad > 0:  # the last chunk, at the compiled batch shape; the padding's images are dropped
                    idx += range(idx[-1] + 1, idx[-1] + 1 + pad)
                    prompts += prompts[-1:] * pad
                with sink.compute_lock, torch.no_grad():
                    start = time.perf_counter()
                    noise = batch_noise(self.req.seed, idx, gen.noise_shape, device=gen.device, dtype=gen.dtype)
                    images = staged(noise, prompts)
                    images8, flags = to_uint8_and_flags(images[: len(part)])
                    timings.add("generation", time.perf_counter() - start)
                    staged.collect()
                sink.submit(part, images8, flags, {it.index: done[it.index] for it in part if it.index in done})
                bar.update(len(part))

    # -- scoring ----------------------------------------------------------------------------------
    def _score(self, rows: dict[int, dict[str, Any]], extractors: dict[str, Any], device: Any, timings: Timings,
               workers: int) -> tuple[dict[str, float], dict[str, Any]]:
        fs = FeatureStore(self.store, self.suite, self.items, self.req.batch_size, device, extractors=extractors,
                          timings=timings, workers=workers, rows=rows)
        ctx = _Context(fs, self.items, self.generator)
        values: dict[str, float] = {}
        info: dict[str, Any] = {}
        for metric in self.metrics:
            before = timings.total("features/") + timings.total("reference_features/") + timings.total("text_")
            start = time.perf_counter()
            result = metric.compute(ctx)
            elapsed = time.perf_counter() - start
            features = (timings.total("features/") + timings.total("reference_features/")
                        + timings.total("text_")) - before
            timings.add(f"metric/{metric.name}", max(0.0, elapsed - features))
            values.update(result.values)
            info[metric.name] = {**result.info, "comparable": result.comparable, "seconds": round(elapsed, 3)}
        if fs.reference_info:
            info["_reference_features"] = fs.reference_info
        return values, info

    def _results(self, config: dict[str, Any], values: dict[str, float], info: dict[str, Any],
                 flags: list[str | None], generated: int, resumed: bool, timings: Timings,
                 total: float) -> dict[str, Any]:
        reference_info = info.pop("_reference_features", None)
        gen_weights = config["generator"].get("weights", "pretrained")
        metric_weights = {i.get("weights", "pretrained") for i in info.values() if "weights" in i}
        all_weights = {gen_weights} | metric_weights
        weights = all_weights.pop() if len(all_weights) == 1 else "mixed"
        reasons = []
        if gen_weights != "pretrained":
            reasons.append(f"generator weights are {gen_weights}")
        random_metrics = [n for n, i in info.items() if i.get("weights") == "random"]
        if random_metrics:
            reasons.append(f"metric networks with random weights: {', '.join(random_metrics)}")
        if not self.suite.comparable:
            reasons.append(f"suite {self.suite.name!r} is not a published protocol")
        if self.req.limit is not None:
            reasons.append(f"--limit {self.req.limit} evaluates a subset")
        if self.suite.comparable and self.req.limit is None:
            reasons.extend(self.suite.comparability_issues(self.req.metric_args))
        counts = {k: sum(1 for f in flags if f == k) for k in FLAGS}
        flagged_indices = {k: [it.index for it, f in zip(self.items, flags, strict=True) if f == k][:100]
                           for k in FLAGS if counts[k]}
        if sum(counts.values()):
            detail = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            print(f"bench: warning: {sum(counts.values())} broken image(s) ({detail}) are included in the scores; "
                  "see images.flagged_indices in results.json", file=sys.stderr)
        timing = timings.as_dict()
        timing["orchestration"] = sum(v for k, v in timing.items() if k.startswith("orchestration/"))
        timing["total"] = total
        order = ["load", "generation", "generation/text_encoder", "generation/denoiser", "generation/decoder",
                 "encode_save"]
        ordered = {k: timing[k] for k in order if k in timing}
        ordered.update({k: timing[k] for k in sorted(timing) if k not in ordered})
        images = {"total": len(flags), "generated_this_run": generated, "resumed": resumed, "flagged": counts,
                  "flagged_total": sum(counts.values()), "flagged_indices": flagged_indices,
                  "saved": self.req.save_images}
        out = {
            "schema": RESULTS_SCHEMA,
            "run_dir": str(self.store.path),
            "method": self.req.method,
            "suite": self.req.suite,
            "num_samples": len(self.items),
            "metrics": values,
            "metric_info": info,
            "weights": weights,
            "comparable": not reasons,
            "not_comparable_because": reasons,
            "images": images,
            "timing_s": {k: round(v, 3) for k, v in ordered.items()},
            "config": config,
        }
        if reference_info:
            out["reference_features"] = reference_info
        return out


class _Sink:
    """The background half of generation: encode and write images, stream features, journal finished chunks.

    Chunks are handled strictly in the order they are submitted. Per-image work (encoding, hashing, writing,
    decoding, resizing) runs in a thread pool; feature networks run in this sink's own thread, one chunk at a
    time, while the caller's thread generates the next chunk.
    """

    def __init__(self, run: Run, rank: int, device: Any, timings: Timings, workers: int) -> None:
        self.run = run
        self.store = run.store
        self.suite = run.suite
        self.rank = rank
        self.device = device
        self.timings = timings
        self.save = run.req.save_images
        self.workers = workers
        self.extractors: dict[str, Any] = {}
        self.deferred: dict[str, str] = {}
        self.generated = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=PENDING_CHUNKS)
        self._pool: ThreadPoolExecutor | None = None
        self._feature_pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._journal = None
        self._bar: Any = None
        self._total = 0
        self._ready = threading.Event()  # set once the streamed networks are built (or failed to build)
        self.preprocess = run.suite.preprocess()
        # On a CPU, the generator and the feature networks share the same cores (and OpenMP pools): running
        # them at once only makes both wait on each other, so they take turns. On a GPU they overlap.
        self.compute_lock: Any = (threading.Lock() if getattr(device, "type", str(device)) == "cpu"
                                  else contextlib.nullcontext())

    # -- called from the generating thread --------------------------------------------------------
    def start(self, total: int = 0) -> None:
        self._total = total
        self._journal = self.store.journal(self.rank)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bench-io")
        self._thread = threading.Thread(target=self._main, name="bench-sink", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise the background thread's error, if it failed."""
        if self.error is not None:
            raise self.error

    def submit(self, chunk: Sequence[Any], images8: np.ndarray, flags: list[str | None],
               done: dict[int, dict[str, Any]]) -> None:
        assert self._pool is not None
        futures = [self._pool.submit(self._prepare, it, img, flag, done.get(it.index))
                   for it, img, flag in zip(chunk, images8, flags, strict=True)]
        while True:
            self.check()
            try:
                self._queue.put((chunk, futures), timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every submitted chunk; raise the background error if there was one."""
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    self.check()
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._bar is not None:
            self._bar.close()
        self.check()

    def abort(self) -> None:
        """Stop without waiting for pending chunks (after an error in the generating thread). A chunk whose
        features are being computed is still finished and journaled; queued ones are dropped."""
        self._ready.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._thread is not None:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._bar is not None:
            self._bar.close()

    # -- pool workers -----------------------------------------------------------------------------
    def _prepare(self, it: Any, image8: np.ndarray, flag: str | None, done_row: dict[str, Any] | None) -> Any:
        """(new manifest row or None, sha256, {network key: prepared input}), all the per-image CPU work."""
        if done_row is not None:  # finished earlier: keep the file; its pixels feed the chunk's features
            path = self.store.path / done_row["path"] if done_row.get("path") else None
            if path is not None and path.is_file():
                return None, done_row["sha256"], self._network_inputs(lambda: decode_pixels(path.read_bytes(),
                                                                                             str(path)))
            return None, done_row["sha256"], self._network_inputs(lambda: self._as_saved(image8, None,
                                                                                          str(it.index)))
        start = time.perf_counter()
        fmt = self.suite.image_format
        data = encode_image(image8, fmt, self.suite.jpeg_quality)
        hashed = time.perf_counter()
        sha = sha256_bytes(data)
        written = time.perf_counter()
        rel = self.suite.image_path(it.index)
        if self.save:
            self.store.save_image(rel, data)
        self.timings.add("encode_save", (hashed - start) + (time.perf_counter() - written))
        self.timings.add("orchestration/hash", written - hashed)
        row = {"index": it.index, "prompt": it.prompt, "group": it.group, "seed": self.run.req.seed,
               "sample_seed": _sample_seed(self.run.req.seed, it.index), "flag": flag,
               "path": rel if self.save else None, "sha256": sha}
        return row, sha, self._network_inputs(lambda: self._as_saved(image8, data, "generated image"))

    def _as_saved(self, image8: np.ndarray, data: bytes | None, name: str) -> np.ndarray:
        """The pixels a reader of the saved file gets (PNG is lossless; JPEG is decoded)."""
        if self.suite.image_format == "png":
            return image8
        if data is None:
            data = encode_image(image8, self.suite.image_format, self.suite.jpeg_quality)
        return decode_pixels(data, name)

    def _network_inputs(self, pixels: Callable[[], np.ndarray]) -> dict[str, np.ndarray]:
        """Each streamed network's prepared input for one image: evaluation transform, then the network's own
        per-image step (waits until the sink thread has built the networks)."""
        self._ready.wait()
        if not self.extractors:
            return {}
        start = time.perf_counter()
        x = self.preprocess(pixels())
        self.timings.add("prepare/eval_transform", time.perf_counter() - start)
        out = {}
        for key, ext in self.extractors.items():
            start = time.perf_counter()
            out[key] = ext.prepare(x)
            self.timings.add(f"prepare/{key}", time.perf_counter() - start)
        return out

    # -- the sink thread --------------------------------------------------------------------------
    def _build_extractors(self) -> None:
        from bench.metrics.extractors import build_extractor

        for metric in self.run.metrics:
            fn = getattr(metric, "extractor", None)
            if not callable(fn):
                continue
            try:
                ext = build_extractor(fn())
                if ext.key() in self.extractors:
                    continue
                ext.to(self.device)
                with self.compute_lock:
                    ext.model  # noqa: B018 - build now, off the generating thread
                self.extractors[ext.key()] = ext
            except BenchError as exc:
                if not self.save:
                    raise
                # scored later from the saved files, where the same error is raised again if it persists
                self.deferred[metric.name] = str(exc)

    def _use_device(self) -> None:
        """Make this thread's current CUDA device the run's (threads start on device 0)."""
        if getattr(self.device, "type", "") == "cuda":
            import torch

            if self.device.index is not None:  # a bare "cuda" already means the current device
                torch.cuda.set_device(self.device)

    def _main(self) -> None:
        try:
            self._use_device()
            try:
                self._build_extractors()
            finally:
                self._ready.set()
            if len(self.extractors) > 1 and isinstance(self.compute_lock, contextlib.nullcontext):
                self._feature_pool = ThreadPoolExecutor(len(self.extractors), thread_name_prefix="bench-features",
                                                        initializer=self._use_device)
            if self.extractors and self.run.dist.is_main:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self._total or None, desc="features (streamed)", unit="img", leave=False,
                                 dynamic_ncols=True)
            while True:
                job = self._queue.get()
                if job is None:
                    break
                chunk, futures = job
                self._finish_chunk(chunk, futures)
        except BaseException as exc:  # handed to the generating thread
            self.error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            if self._feature_pool is not None:
                self._feature_pool.shutdown(wait=True)

    def _finish_chunk(self, chunk: Sequence[Any], futures: list[Future[Any]]) -> None:
        import json

        results = [f.result() for f in futures]
        rows = [r[0] for r in results if r[0] is not None]
        if self.extractors:
            indices = [it.index for it in chunk]
            shas = [r[1] for r in results]

            def extract(item: tuple[str, Any]) -> np.ndarray:
                key, ext = item
                batch = np.stack([r[2][key] for r in results])
                with self.compute_lock, self.timings.time(f"features/{key}"):
                    return features_in_batches(ext, batch, prepared=True)

            jobs = list(self.extractors.items())
            if self._feature_pool is not None:  # GPU: the networks run at once
                outputs = list(self._feature_pool.map(extract, jobs))
            else:
                outputs = [extract(job) for job in jobs]
            for (key, ext), feats in zip(jobs, outputs, strict=True):
                GeneratedFeatures(self.store, key).write_chunk(indices, shas, feats, json.dumps(ext.spec()))
                crash_point("features")
            if self._bar is not None:
                self._bar.update(len(chunk))
        with self.timings.time("orchestration/journal"):
            assert self._journal is not None
            self._journal.append(rows)
        self.generated += len(rows)


class _StageTimer:
    """Calls a generator and adds the seconds of its stages (text encoder, denoiser, decoder) to the timings.

    Generators that keep the standard ``generate`` are run stage by stage (CUDA events on a GPU, so nothing
    waits); those that override ``generate`` are timed as a whole.
    """

    def __init__(self, generator: Any, timings: Timings) -> None:
        from bench.generator import Generator

        self.gen = generator
        self.timings = timings
        self.by_stage = type(generator).generate is Generator.generate
        self.cuda = getattr(getattr(generator, "device", None), "type", "") == "cuda"
        self._pending: list[tuple[str, Any, Any]] = []

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
        for name, a, b in zip(("text_encoder", "denoiser", "decoder"), marks, marks[1:], strict=False):
            self._pending.append((name, a, b))
        return images

    def _mark(self) -> Any:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def collect(self) -> None:
        """Add the pending stage times (call after the outputs were used, so CUDA events have completed)."""
        for name, a, b in self._pending:
            seconds = a.elapsed_time(b) / 1000.0 if self.cuda else b - a
            self.timings.add(f"generation/{name}", seconds)
        self._pending.clear()


def _sample_seed(seed: int, index: int) -> int:
    from bench.seeding import sample_seed

    return sample_seed(seed, index)


@dataclass
class _Context:
    """The :class:`bench.metrics.base.MetricContext` of a run."""

    features: Any
    items: Sequence[Any]
    generator: Any

    @property
    def prompts(self) -> list[str]:
        return [it.prompt for it in self.items]

    @property
    def groups(self) -> list[str] | None:
        groups = [it.group for it in self.items]
        return groups if any(g is not None for g in groups) else None

    @property
    def device(self) -> Any:
        return self.generator.device

    def image_features(self, extractor: dict[str, Any], which: str) -> np.ndarray:
        return self.features.image_features(extractor, which)

    def text_features(self, extractor: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        return self.features.text_features(extractor, texts)
