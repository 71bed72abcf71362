"""Features of a run's images and of a suite's reference set, computed once and cached on disk.

Batching rule (what makes features reproducible): the run's samples are cut into chunks of ``--batch-size``
consecutive samples, the same chunks that are generated together. A chunk's features are always computed
from that chunk's images, in order, in extractor calls of at most :data:`FEATURE_BATCH` images. Features
streamed while a chunk is generated and features computed later from the saved files therefore come from
identical inputs in identical batches, and are identical.

Generated-image features live in ``<run>/features/<extractor key>/<first index>-<count>.npz`` (one file per
chunk, with the sample indices and image hashes they came from), so a resumed or re-scored run computes only
what is missing. Reference features live in the cache directory under a key made of the suite, its reference
fingerprint, the evaluation transform and the extractor, so they are computed once per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache import cache_dir
from bench.errors import BenchError
from bench.metrics.extractors import Extractor, build_extractor
from bench.metrics.preprocess import Preprocess
from bench.store import RunStore, atomic_write_bytes

#: Most images per extractor call (within one chunk).
FEATURE_BATCH = 64


def default_workers() -> int:
    """Threads for image encoding, decoding and resizing (PIL releases the GIL for these)."""
    return max(1, min(8, os.cpu_count() or 1))


class Timings:
    """Seconds per stage, added from several threads."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds

    @contextlib.contextmanager
    def time(self, key: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - start)

    def get(self, key: str) -> float:
        with self._lock:
            return self._seconds.get(key, 0.0)

    def total(self, prefix: str) -> float:
        with self._lock:
            return sum(v for k, v in self._seconds.items() if k.startswith(prefix))

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_npz(path: Path, **arrays: Any) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def features_in_batches(extractor: Extractor, images: np.ndarray, prepared: bool = False) -> np.ndarray:
    """Features of evaluation-transformed uint8 images (N, H, W, 3), in calls of at most :data:`FEATURE_BATCH`
    images. ``prepared``: the rows already went through ``extractor.prepare`` (done in a thread pool by the
    callers that care about speed); the features are the same either way."""
    call = extractor.forward if prepared else extractor.image_features
    rows = [np.asarray(call(images[s : s + FEATURE_BATCH]), dtype=np.float64)
            for s in range(0, len(images), FEATURE_BATCH)]
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive chunks of ``size`` items (the unit of generation, feature extraction and sharding)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


class GeneratedFeatures:
    """One extractor's features of a run's generated images, one file per chunk."""

    def __init__(self, store: RunStore, key: str) -> None:
        self.dir = store.features_dir / key

    def write_chunk(self, indices: Sequence[int], shas: Sequence[str], features: np.ndarray, spec: str) -> None:
        """Write one chunk's features; a file of an earlier, shorter chunk at the same place (a --limit run)
        is replaced."""
        path = self.dir / f"{int(indices[0]):07d}-{len(indices):05d}.npz"
        _save_npz(path, indices=np.asarray(indices, np.int64), sha256=np.asarray(shas), features=features,
                  spec=np.array(spec))
        for other in self.dir.glob(f"{int(indices[0]):07d}-*.npz"):
            if other != path:
                other.unlink(missing_ok=True)

    def load(self) -> dict[tuple[int, str], np.ndarray]:
        """Feature rows by (sample index, image sha256)."""
        out: dict[tuple[int, str], np.ndarray] = {}
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(path) as data:
                    for idx, sha, feat in zip(data["indices"], data["sha256"], data["features"], strict=True):
                        out[(int(idx), str(sha))] = feat
            except (OSError, ValueError, KeyError, EOFError):
                continue  # unreadable: recomputed
        return out


def _load_prepared(path: Path, preprocess: Preprocess, extractor: Extractor) -> np.ndarray:
    """A saved image, decoded, evaluation-transformed and prepared for ``extractor``."""
    from bench.suites.base import decode_image

    return extractor.prepare(preprocess(decode_image(path, str(path), "generated image")))


class FeatureStore:
    """Hands out (and caches) features for one run; implements the metrics' context methods.

    ``items`` are the run's samples in order and ``chunk_size`` the run's batch size (see the batching rule
    above); ``extractors`` may hold networks already built (by key) so they are not built twice.
    """

    def __init__(self, store: RunStore, suite: Any, items: Sequence[Any], chunk_size: int, device: Any,
                 extractors: dict[str, Extractor] | None = None, timings: Timings | None = None,
                 workers: int | None = None, rows: dict[int, dict[str, Any]] | None = None) -> None:
        self.store = store
        self.suite = suite
        self.items = list(items)
        self.chunk_size = max(1, int(chunk_size))
        self.device = device
        self.preprocess: Preprocess = suite.preprocess()
        self._extractors: dict[str, Extractor] = extractors if extractors is not None else {}
        self._memory: dict[tuple[str, str], np.ndarray] = {}
        self.timings = timings or Timings()
        self.workers = workers or default_workers()
        self._rows = rows
        self.reference_info: dict[str, Any] = {}

    def extractor(self, spec: dict[str, Any]) -> Extractor:
        ext = build_extractor(spec)
        if ext.key() not in self._extractors:
            self._extractors[ext.key()] = ext.to(self.device)
        return self._extractors[ext.key()]

    def image_features(self, spec: dict[str, Any], which: str) -> np.ndarray:
        ext = self.extractor(spec)
        memo = (ext.key(), which)
        if memo not in self._memory:
            if which == "generated":
                with self.timings.time(f"features/{ext.key()}"):
                    self._memory[memo] = self._generated(ext)
            elif which == "reference":
                with self.timings.time(f"reference_features/{ext.key()}"):
                    self._memory[memo] = self._reference(ext)
            else:
                raise ValueError(f"which must be 'generated' or 'reference', not {which!r}")
        return self._memory[memo]

    def text_features(self, spec: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        ext = self.extractor(spec)
        memo = (ext.key(), "text-" + _digest(list(texts)))
        if memo not in self._memory:
            with self.timings.time(f"text_features/{ext.key()}"):
                path = self.store.features_dir / f"{ext.key()}-text.npz"
                if path.exists():
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        with np.load(path) as cached:
                            if str(cached["digest"]) == memo[1]:
                                self._memory[memo] = cached["features"]
                                return self._memory[memo]
                feats = np.concatenate([ext.text_features(texts[s : s + FEATURE_BATCH])
                                        for s in range(0, len(texts), FEATURE_BATCH)])
                _save_npz(path, features=feats, digest=np.array(memo[1]), spec=np.array(json.dumps(ext.spec())))
                self._memory[memo] = feats
        return self._memory[memo]

    # -- generated images -------------------------------------------------------------------------
    def _generated(self, ext: Extractor) -> np.ndarray:
        manifest = self._rows if self._rows is not None else self.store.read_manifest()
        missing_rows = [it.index for it in self.items if it.index not in manifest]
        if missing_rows:
            raise BenchError(f"sample {missing_rows[0]} has no finished image; run the same command again to "
                             "generate it")
        cache = GeneratedFeatures(self.store, ext.key())
        known = cache.load()
        todo_chunks = [c for c in chunks(self.items, self.chunk_size)
                       if any((it.index, manifest[it.index]["sha256"]) not in known for it in c)]
        if todo_chunks:
            ext.model  # noqa: B018 - build (or fail to download) before any progress is shown
            total = sum(len(c) for c in todo_chunks)
            with ThreadPoolExecutor(self.workers) as pool, \
                    _progress(total, f"features {ext.kind} (generated, from files)") as bar:
                for chunk in todo_chunks:
                    rows = [manifest[it.index] for it in chunk]
                    unsaved = [r for r in rows if not r.get("path")]
                    if unsaved:
                        raise BenchError(
                            f"features {ext.kind} of sample {unsaved[0]['index']} were not kept and its image was "
                            "not saved (--no-save-images); re-run with --overwrite to generate them again")
                    paths = [self.store.path / r["path"] for r in rows]
                    batch = np.stack(list(pool.map(lambda p: _load_prepared(p, self.preprocess, ext), paths)))
                    feats = features_in_batches(ext, batch, prepared=True)
                    cache.write_chunk([r["index"] for r in rows], [r["sha256"] for r in rows], feats,
                                      json.dumps(ext.spec()))
                    for r, f in zip(rows, feats, strict=True):
                        known[(int(r["index"]), r["sha256"])] = f
                    bar(len(chunk))
        return np.stack([known[(it.index, manifest[it.index]["sha256"])] for it in self.items])

    # -- reference images -------------------------------------------------------------------------
    def _reference(self, ext: Extractor) -> np.ndarray:
        refs = self.suite.reference_set()
        if len(refs) == 0:
            raise BenchError(f"suite {self.suite.name!r} has no reference images; drop the metrics that need them")
        key = _digest([self.suite.name, refs.fingerprint, self.preprocess.as_dict(), ext.key()])
        path = cache_dir() / "features" / f"{self.suite.name}-{ext.kind}-{key}.npz"
        self.reference_info[ext.key()] = {"count": len(refs), "cache": str(path)}
        if path.exists():
            with contextlib.suppress(OSError, ValueError, KeyError), np.load(path) as cached:
                feats = cached["features"]
                if len(feats) == len(refs):
                    self.reference_info[ext.key()]["cached"] = True
                    return feats
        self.reference_info[ext.key()]["cached"] = False
        ext.model  # noqa: B018
        rows: list[np.ndarray] = []

        def load(i: int) -> np.ndarray:
            return ext.prepare(self.preprocess(refs.load(i)))

        with ThreadPoolExecutor(self.workers) as pool, _progress(len(refs), f"features {ext.kind} (reference)") as bar:
            batches = [range(s, min(s + FEATURE_BATCH, len(refs))) for s in range(0, len(refs), FEATURE_BATCH)]
            pending: list[list[Future[np.ndarray]]] = []
            for b in batches[:2]:
                pending.append([pool.submit(load, i) for i in b])
            for n, _b in enumerate(batches):
                futures = pending.pop(0)
                if n + 2 < len(batches):
                    pending.append([pool.submit(load, i) for i in batches[n + 2]])
                try:
                    images = np.stack([f.result() for f in futures])
                except BaseException:
                    for group in pending:
                        for f in group:
                            f.cancel()
                    raise
                rows.append(features_in_batches(ext, images, prepared=True))
                bar(len(images))
        feats = np.concatenate(rows)
        _save_npz(path, features=feats, spec=np.array(json.dumps(ext.spec())))
        return feats


@contextlib.contextmanager
def _progress(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A progress bar (rate and time left) that is cleared when done or when an error interrupts it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()
