"""Features of a run's images and of a suite's reference set: computed once, streamed while generating, cached.

Batching rule (what makes features reproducible): the run's samples are cut into chunks of ``--batch-size``
consecutive samples, the same chunks that are generated together. A chunk's features are always computed
from that chunk's images, in order, in extractor calls of at most :data:`FEATURE_BATCH` images. Features
streamed while a chunk is generated (:class:`StreamedFeatures`) and features computed later from the saved
files (:class:`FeatureStore`) therefore come from identical inputs in identical batches, and are identical.

Each metric names its networks with a :class:`~bench.metrics.base.FeatureSpec`; a spec's images go through
its own evaluation transform, or the suite's when it names none. Built networks, reference features and text
features are held by the :class:`~bench.session.Session`, so runs in one process share them; on disk they
live where :mod:`bench.feature_files` puts them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.feature_files import GeneratedFeatures, digest, load_npz, reference_path, save_npz, text_path
from bench.metrics.base import FeatureSpec
from bench.metrics.extractors import Extractor
from bench.metrics.preprocess import Preprocess
from bench.run_dir import RunStore
from bench.timing import Timings

if TYPE_CHECKING:
    from bench.session import Session

#: Most images per extractor call (within one chunk).
FEATURE_BATCH = 64


def default_workers() -> int:
    """Threads for image encoding, decoding and resizing (PIL releases the GIL for these)."""
    return max(1, min(8, os.cpu_count() or 1))


def features_in_batches(extractor: Extractor, images: np.ndarray, prepared: bool = False,
                        texts: Sequence[str] | None = None) -> np.ndarray:
    """Features of evaluation-transformed uint8 images (N, H, W, 3), in calls of at most :data:`FEATURE_BATCH`
    images. ``prepared``: the rows already went through ``extractor.prepare`` (done in a thread pool by the
    callers that care about speed); the features are the same either way. ``texts``: each image's prompt, for
    a text-conditioned network (:attr:`~bench.metrics.extractors.Extractor.text_conditioned`)."""
    if extractor.text_conditioned:
        if texts is None or len(texts) != len(images):
            raise BenchError(f"feature network {extractor.kind} scores images with their prompts; it has no "
                             "prompts here (reference images have none: use it in a reference-free metric)")
        if not prepared:
            extractor.model  # noqa: B018 - prepare may need what building sets up
            images = np.stack([extractor.prepare(img) for img in images])

        def call(lo: int, hi: int) -> np.ndarray:
            return extractor.forward_with_texts(images[lo:hi], list(texts[lo:hi]))
    else:
        forward = extractor.forward if prepared else extractor.image_features

        def call(lo: int, hi: int) -> np.ndarray:
            return forward(images[lo:hi])
    rows = [np.asarray(call(s, s + FEATURE_BATCH), dtype=np.float64) for s in range(0, len(images), FEATURE_BATCH)]
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive chunks of ``size`` items (the unit of generation, feature extraction and sharding)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


class Network:
    """A built feature network with the transform its images get and the key its features are stored under."""

    def __init__(self, spec: FeatureSpec, extractor: Extractor, suite_transform: Preprocess) -> None:
        self.spec = spec
        self.extractor = extractor
        self.transform = spec.transform or suite_transform
        self.key = spec.key(extractor.key())

    def describe(self) -> str:
        """What the features depend on (stored next to them)."""
        return json.dumps({**self.extractor.spec(), "transform": self.transform.as_dict()}, sort_keys=True)


class StreamedFeatures:
    """The networks fed with each chunk of images while the run generates the next one.

    :meth:`prepare` does the per-image CPU work (each distinct transform once, then each network's own step)
    and may run in a thread pool; :meth:`extract` runs the networks on a chunk's prepared images and writes
    the chunk's feature files.
    """

    def __init__(self, networks: Sequence[Network], timings: Timings) -> None:
        self.networks = {n.key: n for n in networks}
        self.timings = timings

    def prepare(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        transformed: dict[Preprocess, np.ndarray] = {}
        out = {}
        for key, net in self.networks.items():
            if net.transform not in transformed:
                with self.timings.time("prepare/eval_transform"):
                    transformed[net.transform] = net.transform(pixels)
            with self.timings.time(f"prepare/{key}"):
                out[key] = net.extractor.prepare(transformed[net.transform])
        return out

    def extract(self, key: str, prepared: Sequence[dict[str, np.ndarray]], lock: Any,
                texts: Sequence[str]) -> np.ndarray:
        """A chunk's features from its prepared images (``texts``: their prompts)."""
        net = self.networks[key]
        with lock, self.timings.time(f"features/{key}"):
            return features_in_batches(net.extractor, np.stack([p[key] for p in prepared]), prepared=True,
                                       texts=texts)


class FeatureStore:
    """Hands out features for one run: the :class:`~bench.metrics.base.MetricContext` feature methods.

    ``items`` are the run's samples in order and ``chunk_size`` the run's batch size (see the batching rule
    above); ``rows`` the run's manifest rows by index; ``streamed`` the features this process streamed while
    generating (by network key, then (sample index, image sha256)): used as they are, so the feature files
    are read only for samples this process did not stream (a resumed run's earlier chunks, other ranks').
    """

    def __init__(self, session: Session, store: RunStore, suite: Any, items: Sequence[Any], chunk_size: int,
                 timings: Timings | None = None, workers: int | None = None,
                 rows: dict[int, dict[str, Any]] | None = None,
                 streamed: Mapping[str, Mapping[tuple[int, str], np.ndarray]] | None = None) -> None:
        self.session = session
        self.store = store
        self.suite = suite
        self.items = list(items)
        self.chunk_size = max(1, int(chunk_size))
        self.preprocess: Preprocess = suite.preprocess()
        self.timings = timings or Timings()
        self.workers = workers or default_workers()
        self._rows = rows
        self._streamed = streamed or {}
        self._generated: dict[str, np.ndarray] = {}
        self.reference_info: dict[str, Any] = {}

    def network(self, spec: FeatureSpec) -> Network:
        return Network(spec, self.session.extractor(spec), self.preprocess)

    def extractor(self, spec: FeatureSpec) -> Extractor:
        return self.session.extractor(spec)

    def image_features(self, spec: FeatureSpec, which: str) -> np.ndarray:
        net = self.network(spec)
        if which == "generated":
            if net.key not in self._generated:
                with self.timings.time(f"features/{net.key}"):
                    self._generated[net.key] = self._from_files(net)
            return self._generated[net.key]
        if which == "reference":
            with self.timings.time(f"reference_features/{net.key}"):
                return self._reference(net)
        raise ValueError(f"which must be 'generated' or 'reference', not {which!r}")

    def text_features(self, spec: FeatureSpec, texts: Sequence[str]) -> np.ndarray:
        ext = self.extractor(spec)
        key = digest([ext.key(), list(texts)])
        cached = self.session.memory.get(("text", key))
        if cached is not None:
            return cached
        with self.timings.time(f"text_features/{ext.key()}"):
            path = text_path(ext.kind, key)
            data = load_npz(path, key)
            if data is not None and len(data.get("features", ())) == len(texts):
                feats = data["features"]
            else:
                feats = np.concatenate([ext.text_features(texts[s : s + FEATURE_BATCH])
                                        for s in range(0, len(texts), FEATURE_BATCH)])
                save_npz(path, inputs=key, features=feats, spec=np.array(json.dumps(ext.spec())))
        self.session.memory[("text", key)] = feats
        return feats

    # -- generated images -------------------------------------------------------------------------
    def _from_files(self, net: Network) -> np.ndarray:
        manifest = self._rows if self._rows is not None else self.store.read_manifest()
        missing_rows = [it.index for it in self.items if it.index not in manifest]
        if missing_rows:
            raise BenchError(f"sample {missing_rows[0]} has no finished image; run the same command again to "
                             "generate it")
        cache = GeneratedFeatures(self.store, net.key)
        known = dict(self._streamed.get(net.key, {}))
        if any((it.index, manifest[it.index]["sha256"]) not in known for it in self.items):
            known = {**cache.load(), **known}
        todo_chunks = [c for c in chunks(self.items, self.chunk_size)
                       if any((it.index, manifest[it.index]["sha256"]) not in known for it in c)]
        if todo_chunks:
            ext = net.extractor
            ext.model  # noqa: B018 - build (or fail to download) before any progress is shown
            total = sum(len(c) for c in todo_chunks)
            with ThreadPoolExecutor(self.workers) as pool, \
                    progress(total, f"features {ext.kind} (generated, from files)") as bar:
                for chunk in todo_chunks:
                    rows = [manifest[it.index] for it in chunk]
                    unsaved = [r for r in rows if not r.get("path")]
                    if unsaved:
                        raise BenchError(
                            f"features {ext.kind} of sample {unsaved[0]['index']} were not kept and its image was "
                            "not saved (--no-save-images); re-run with --overwrite to generate them again")
                    paths = [self.store.path / r["path"] for r in rows]
                    batch = np.stack(list(pool.map(lambda p: _load_prepared(p, net), paths)))
                    feats = features_in_batches(ext, batch, prepared=True, texts=[r["prompt"] for r in rows])
                    cache.write_chunk([r["index"] for r in rows], [r["sha256"] for r in rows], feats,
                                      net.describe())
                    for r, f in zip(rows, feats, strict=True):
                        known[(int(r["index"]), r["sha256"])] = f
                    bar(len(chunk))
        return np.stack([known[(it.index, manifest[it.index]["sha256"])] for it in self.items])

    # -- reference images -------------------------------------------------------------------------
    def _reference(self, net: Network) -> np.ndarray:
        refs = self.suite.reference_set()
        if len(refs) == 0:
            raise BenchError(f"suite {self.suite.name!r} has no reference images; drop the metrics that need them")
        ext = net.extractor
        key = digest([self.suite.name, refs.fingerprint, net.transform.as_dict(), ext.key()])
        path = reference_path(self.suite.name, ext.kind, key)
        info = self.reference_info[net.key] = {"count": len(refs), "cache": str(path)}
        feats = self.session.memory.get(("reference", key))
        if feats is None:
            data = load_npz(path, key)
            if data is not None and len(data.get("features", ())) == len(refs):
                feats = data["features"]
        if feats is not None:
            info["cached"] = True
            self.session.memory[("reference", key)] = feats
            return feats
        info["cached"] = False
        feats = self._compute_reference(net, refs)
        save_npz(path, inputs=key, features=feats, spec=np.array(net.describe()))
        self.session.memory[("reference", key)] = feats
        return feats

    def _compute_reference(self, net: Network, refs: Any) -> np.ndarray:
        ext = net.extractor
        ext.model  # noqa: B018
        rows: list[np.ndarray] = []

        def load(i: int) -> np.ndarray:
            return ext.prepare(net.transform(refs.load(i)))

        with ThreadPoolExecutor(self.workers) as pool, progress(len(refs), f"features {ext.kind} (reference)") as bar:
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
        return np.concatenate(rows)


def _load_prepared(path: Any, net: Network) -> np.ndarray:
    """A saved image, decoded, evaluation-transformed and prepared for the network."""
    from bench.suites.base import decode_image

    return net.extractor.prepare(net.transform(decode_image(path, str(path), "generated image")))


@contextlib.contextmanager
def progress(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A progress bar (rate and time left) that is cleared when done or when an error interrupts it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


@dataclass
class RunContext:
    """The :class:`bench.metrics.base.MetricContext` of a run: its samples, its generator and its features."""

    features: FeatureStore
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

    def extractor(self, spec: Any) -> Any:
        return self.features.extractor(spec)

    def image_features(self, spec: Any, which: str) -> Any:
        return self.features.image_features(spec, which)

    def text_features(self, spec: Any, texts: Sequence[str]) -> Any:
        return self.features.text_features(spec, texts)
