"""Features of a run's images and of a suite's reference set, computed once and cached on disk.

Generated-image features live in ``<run>/features/<extractor key>.npz`` with the sample indices and image
hashes they came from, so a re-run recomputes only what changed. Reference features live in the cache
directory under a key made of the suite, its reference fingerprint, the evaluation transform and the
extractor, so they are computed once per machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache import cache_dir
from bench.metrics.extractors import Extractor, build_extractor
from bench.metrics.preprocess import Preprocess
from bench.store import RunStore, atomic_write_bytes

FEATURE_BATCH = 32


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_npz(path: Path, **arrays: Any) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _load_image(path: Path) -> Any:
    from PIL import Image

    from bench.errors import BenchError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read image {path} ({exc}); replace or delete it and re-run") from exc


def extract_from_files(
    extractor: Extractor, paths: Sequence[Path], preprocess: Preprocess, desc: str | None = None
) -> np.ndarray:
    """Load, transform and embed images in batches; one feature row per path (with a progress bar if ``desc``)."""
    rows: list[np.ndarray] = []
    extractor.model  # noqa: B018 - build (or fail to download) before any progress is shown
    progress = _progress(len(paths), desc) if desc else None
    for start in range(0, len(paths), FEATURE_BATCH):
        chunk = paths[start : start + FEATURE_BATCH]
        batch = np.stack([preprocess(_load_image(p)) for p in chunk])
        rows.append(np.asarray(extractor.image_features(batch)))
        if progress:
            progress(len(chunk))
    return np.concatenate(rows) if rows else np.zeros((0, 0))


class FeatureStore:
    """Hands out (and caches) features for one run; implements the metrics' context methods."""

    def __init__(self, store: RunStore, suite: Any, indices: Sequence[int], device: Any) -> None:
        self.store = store
        self.suite = suite
        self.indices = list(indices)
        self.device = device
        self.preprocess: Preprocess = suite.preprocess()
        self._extractors: dict[str, Extractor] = {}
        self._memory: dict[tuple[str, str], np.ndarray] = {}

    def extractor(self, spec: dict[str, Any]) -> Extractor:
        ext = build_extractor(spec)
        return self._extractors.setdefault(ext.key(), ext.to(self.device))

    def image_features(self, spec: dict[str, Any], which: str) -> np.ndarray:
        ext = self.extractor(spec)
        memo = (ext.key(), which)
        if memo not in self._memory:
            if which == "generated":
                self._memory[memo] = self._generated(ext)
            elif which == "reference":
                self._memory[memo] = self._reference(ext)
            else:
                raise ValueError(f"which must be 'generated' or 'reference', not {which!r}")
        return self._memory[memo]

    def text_features(self, spec: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        ext = self.extractor(spec)
        memo = (ext.key(), "text-" + _digest(list(texts)))
        if memo not in self._memory:
            path = self.store.features_dir / f"{ext.key()}-text.npz"
            if path.exists():
                cached = np.load(path)
                if str(cached["digest"]) == memo[1]:
                    self._memory[memo] = cached["features"]
                    return self._memory[memo]
            feats = np.concatenate(
                [ext.text_features(texts[s : s + FEATURE_BATCH]) for s in range(0, len(texts), FEATURE_BATCH)]
            )
            _save_npz(path, features=feats, digest=np.array(memo[1]), spec=np.array(json.dumps(ext.spec())))
            self._memory[memo] = feats
        return self._memory[memo]

    def _generated(self, ext: Extractor) -> np.ndarray:
        manifest = self.store.read_manifest()
        rows = [manifest[i] for i in self.indices]
        path = self.store.features_dir / f"{ext.key()}.npz"
        known: dict[tuple[int, str], np.ndarray] = {}
        if path.exists():
            cached = np.load(path)
            for idx, sha, feat in zip(cached["indices"], cached["sha256"], cached["features"], strict=True):
                known[(int(idx), str(sha))] = feat
        todo = [r for r in rows if (int(r["index"]), r["sha256"]) not in known]
        if todo:
            fresh = extract_from_files(ext, [self.store.path / r["path"] for r in todo], self.preprocess,
                                       f"features {ext.kind} (generated)")
            for r, f in zip(todo, fresh, strict=True):
                known[(int(r["index"]), r["sha256"])] = f
        feats = np.stack([known[(int(r["index"]), r["sha256"])] for r in rows])
        if todo:
            _save_npz(path, indices=np.array([r["index"] for r in rows]), sha256=np.array([r["sha256"] for r in rows]),
                      features=feats, spec=np.array(json.dumps(ext.spec())))
        return feats

    def _reference(self, ext: Extractor) -> np.ndarray:
        paths = self.suite.reference_images()
        key = _digest([self.suite.name, self.suite.reference_fingerprint(), self.preprocess.as_dict(), ext.key()])
        path = cache_dir() / "features" / f"{self.suite.name}-{ext.kind}-{key}.npz"
        if path.exists():
            return np.load(path)["features"]
        feats = extract_from_files(ext, paths, self.preprocess, f"features {ext.kind} (reference)")
        _save_npz(path, features=feats, spec=np.array(json.dumps(ext.spec())))
        return feats


def _progress(total: int, desc: str) -> Callable[[int], None]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)

    def update(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return update
