"""Feature files on disk, each checked before it is trusted.

Every file is an ``.npz`` holding its arrays plus ``checksum``: the SHA-256 of every array's name, dtype, shape
and bytes, and of ``inputs``, a digest of what the features were computed from. A file that is missing,
truncated, unreadable, without a checksum, or whose checksum or inputs do not match counts as missing: it is
recomputed, and a damaged file is named in one warning line. Nothing is ever unpickled.

* :class:`GeneratedFeatures`: a run's generated-image features, ``<run>/features/<key>/<first>-<count>.npz``,
  one file per chunk, with the sample indices and image hashes they came from.
* :func:`reference_path` / :func:`text_path`: reference-image and text features in the cache directory
  (``$BENCH_CACHE_DIR``), keyed by everything they depend on, so they are computed once per machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache_dir import cache_dir
from bench.run_dir import RunStore, atomic_write_bytes

_warned: set[str] = set()
_warn_lock = threading.Lock()


def digest(obj: Any) -> str:
    """A short stable digest of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def save_npz(path: Path, inputs: str = "", **arrays: Any) -> None:
    """Write ``arrays`` and their checksum (with ``inputs``, a digest of what they were computed from)
    atomically to ``path``."""
    data = {k: np.asarray(v) for k, v in arrays.items()}
    data["inputs"] = np.array(inputs)
    buf = io.BytesIO()
    np.savez(buf, checksum=np.array(_checksum(data)), **data)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _warn(path: Path, why: str) -> None:
    with _warn_lock:
        if str(path) in _warned:
            return
        _warned.add(str(path))
    print(f"bench: warning: {path} {why}; it is recomputed", file=sys.stderr)


def load_npz(path: Path, inputs: str = "") -> dict[str, np.ndarray] | None:
    """The arrays of a file :func:`save_npz` wrote for the same ``inputs``; None when it is missing, damaged,
    changed or was computed from other inputs (a damaged or changed file is named in a warning)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        _warn(path, f"is truncated or unreadable ({type(exc).__name__})")
        return None
    stored = data.pop("checksum", None)
    if stored is None or str(stored) != _checksum(data):
        _warn(path, "was changed or damaged (its checksum does not match its contents)")
        return None
    if str(data.pop("inputs", "")) != inputs:
        return None  # computed from other inputs: not this entry
    return data


class GeneratedFeatures:
    """One network's features of a run's generated images, one file per chunk."""

    def __init__(self, store: RunStore, key: str) -> None:
        self.dir = store.features_dir / key
        self.key = key

    def write_chunk(self, indices: Sequence[int], shas: Sequence[str], features: np.ndarray, spec: str) -> None:
        """Write one chunk's features; a file of an earlier, shorter chunk at the same place (a --limit run)
        is replaced."""
        path = self.dir / f"{int(indices[0]):07d}-{len(indices):05d}.npz"
        save_npz(path, inputs=self.key, indices=np.asarray(indices, np.int64), sha256=np.asarray(shas),
                 features=features, spec=np.array(spec))
        for other in self.dir.glob(f"{int(indices[0]):07d}-*.npz"):
            if other != path:
                other.unlink(missing_ok=True)

    def load(self) -> dict[tuple[int, str], np.ndarray]:
        """Feature rows by (sample index, image sha256); unreadable or changed files are left out."""
        out: dict[tuple[int, str], np.ndarray] = {}
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.npz")):
            data = load_npz(path, self.key)
            if data is None:
                continue
            try:
                for idx, sha, feat in zip(data["indices"], data["sha256"], data["features"], strict=True):
                    out[(int(idx), str(sha))] = feat
            except (KeyError, ValueError, TypeError):
                _warn(path, "does not hold features")
        return out


def reference_path(suite: str, kind: str, key: str) -> Path:
    """Where the reference features of ``suite`` from network ``kind`` live, ``key`` naming their inputs."""
    return cache_dir() / "features" / f"{suite}-{kind}-{key}.npz"


def text_path(kind: str, key: str) -> Path:
    """Where text features of network ``kind`` live, ``key`` naming the network and the texts."""
    return cache_dir() / "text-features" / f"{kind}-{key}.npz"
