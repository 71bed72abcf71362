"""The background half of generation: encode and write images, stream features, journal finished chunks.

Chunks are handled strictly in the order they are submitted. Per-image work (encoding, hashing, writing,
decoding, resizing) runs in a thread pool; feature networks run in the sink's own thread, one chunk at a
time, while the caller's thread generates the next chunk. A chunk counts as finished only once its rows are
in the rank's journal, so a crash at any point costs at most the chunks in flight.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.feature_files import GeneratedFeatures
from bench.image_sources import ReadImage, image_bytes
from bench.images import decode_pixels, encode_image
from bench.run_dir import RunStore, crash_point, sha256_bytes
from bench.run_features import Network, StreamedFeatures
from bench.sample_noise import sample_seed
from bench.timing import Timings

#: Chunks that may wait between the generator and the background writer (bounds memory).
PENDING_CHUNKS = 2


class Sink:
    """Takes finished chunks of images from the generating thread; see the module docstring.

    ``networks`` are the run's feature networks, built in the sink's thread. When images are saved, a network
    that cannot be built (say, weights missing) is left to the scoring step, which computes its features from
    the files and raises the same error there if it persists.

    Streamed features are always written (a resumed run reads them); with ``keep_features`` they are also kept
    in :attr:`features`, by network key and (sample index, image sha256), for this process to score with.
    """

    def __init__(self, store: RunStore, suite: Any, seed: int, rank: int, device: Any, timings: Timings,
                 workers: int, networks: Sequence[Network], save_images: bool, show_progress: bool,
                 keep_features: bool = False) -> None:
        self.store = store
        self.suite = suite
        self.seed = seed
        self.rank = rank
        self.device = device
        self.timings = timings
        self.save = save_images
        self.workers = workers
        self.show_progress = show_progress
        self._networks = list(networks)
        self.streamed = StreamedFeatures([], timings)
        self.keep_features = keep_features
        self.features: dict[str, dict[tuple[int, str], np.ndarray]] = {}
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

    def submit(self, chunk: Sequence[Any], images8: Sequence[np.ndarray], flags: list[str | None],
               done: dict[int, dict[str, Any]], sources: Sequence[ReadImage] | None = None) -> None:
        """Hand over a chunk. ``sources``: the images were read, not generated (:mod:`bench.external`): their
        files are kept byte for byte and their pixels, as read, feed the features."""
        assert self._pool is not None
        read = sources if sources is not None else [None] * len(chunk)
        futures = [self._pool.submit(self._prepare, it, img, flag, done.get(it.index), src)
                   for it, img, flag, src in zip(chunk, images8, flags, read, strict=True)]
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
    def _prepare(self, it: Any, image8: np.ndarray, flag: str | None, done_row: dict[str, Any] | None,
                 source: ReadImage | None = None) -> Any:
        """(new manifest row or None, sha256, {network key: prepared input}), all the per-image CPU work."""
        if done_row is not None:  # finished earlier: keep the file; its pixels feed the chunk's features
            path = self.store.path / done_row["path"] if done_row.get("path") else None
            if path is not None and path.is_file():
                return None, done_row["sha256"], self._network_inputs(lambda: decode_pixels(path.read_bytes(),
                                                                                             str(path)))
            if source is not None:
                return None, done_row["sha256"], self._network_inputs(lambda: image8)
            return None, done_row["sha256"], self._network_inputs(lambda: self._as_saved(image8, None,
                                                                                          str(it.index)))
        start = time.perf_counter()
        rel = self.suite.image_path(it.index)
        if source is None:
            data = encode_image(image8, self.suite.image_format, self.suite.jpeg_quality)
        else:  # read, not generated: kept as it is, under the suite's name with the file's own extension
            data, ext = image_bytes(source)
            rel = str(PurePosixPath(rel).with_suffix("." + ext))
        hashed = time.perf_counter()
        sha = sha256_bytes(data)
        written = time.perf_counter()
        if self.save:
            self.store.save_image(rel, data)
        self.timings.add("encode_save", (hashed - start) + (time.perf_counter() - written))
        self.timings.add("orchestration/hash", written - hashed)
        row = {"index": it.index, "prompt": it.prompt, "group": it.group, "seed": self.seed,
               "sample_seed": sample_seed(self.seed, it.index), "flag": flag,
               "path": rel if self.save else None, "sha256": sha}
        if source is not None:
            row["source"] = source.name
            return row, sha, self._network_inputs(lambda: image8)
        return row, sha, self._network_inputs(lambda: self._as_saved(image8, data, "generated image"))

    def _as_saved(self, image8: np.ndarray, data: bytes | None, name: str) -> np.ndarray:
        """The pixels a reader of the saved file gets (PNG is lossless; JPEG is decoded)."""
        if self.suite.image_format == "png":
            return image8
        if data is None:
            data = encode_image(image8, self.suite.image_format, self.suite.jpeg_quality)
        return decode_pixels(data, name)

    def _network_inputs(self, pixels: Callable[[], np.ndarray]) -> dict[str, np.ndarray]:
        """Each streamed network's prepared input for one image (waits until the networks are built)."""
        self._ready.wait()
        if not self.streamed.networks:
            return {}
        return self.streamed.prepare(pixels())

    # -- the sink thread --------------------------------------------------------------------------
    def _build_networks(self) -> None:
        built = []
        for net in self._networks:
            try:
                net.extractor.to(self.device)
                with self.compute_lock:
                    net.extractor.model  # noqa: B018 - build now, off the generating thread
                built.append(net)
            except BenchError:
                if not self.save:
                    raise
                # scored later from the saved files, where the same error is raised again if it persists
        self.streamed = StreamedFeatures(built, self.timings)

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
                self._build_networks()
            finally:
                self._ready.set()
            networks = self.streamed.networks
            if len(networks) > 1 and isinstance(self.compute_lock, contextlib.nullcontext):
                self._feature_pool = ThreadPoolExecutor(len(networks), thread_name_prefix="bench-features",
                                                        initializer=self._use_device)
            if networks and self.show_progress:
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
        results = [f.result() for f in futures]
        rows = [r[0] for r in results if r[0] is not None]
        networks = self.streamed.networks
        if networks:
            indices = [it.index for it in chunk]
            shas = [r[1] for r in results]
            prepared = [r[2] for r in results]
            keys = list(networks)

            texts = [it.prompt for it in chunk]

            def extract(key: str) -> np.ndarray:
                return self.streamed.extract(key, prepared, self.compute_lock, texts)

            if self._feature_pool is not None:  # GPU: the networks run at once
                outputs = list(self._feature_pool.map(extract, keys))
            else:
                outputs = [extract(k) for k in keys]
            for key, feats in zip(keys, outputs, strict=True):
                GeneratedFeatures(self.store, key).write_chunk(indices, shas, feats, networks[key].describe())
                crash_point("features")
                if self.keep_features:
                    self.features.setdefault(key, {}).update(zip(zip(indices, shas, strict=True), feats, strict=True))
            if self._bar is not None:
                self._bar.update(len(chunk))
        with self.timings.time("orchestration/journal"):
            assert self._journal is not None
            self._journal.append(rows)
        self.generated += len(rows)
