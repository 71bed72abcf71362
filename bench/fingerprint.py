"""Content fingerprints of the local files a run reads, so that a run's identity is what it read, not where.

A file's SHA-256 comes from a cache in the cache directory, so that a resumed run over a 5 GB student hashes
nothing again. A cached hash is reused only while everything that a replaced file changes still matches: its
device, inode, size, modification time and change time (``ctime``, which no user can set back: ``cp`` then
``touch -r`` changes it), and a digest of a content sample (the first, middle and last 4 KiB). A file no larger
than the sample is hashed every time (the sample is the whole file). A folder's fingerprint is the SHA-256 of
the sorted (relative path, file SHA-256) pairs of every file in it; hidden files and folders (names starting
with ".") and folders that hold this project's outputs (a run, a sweep or a training run: they hold the ``.lock``
that :func:`bench.locking.lock_directory` leaves) are left out, so what a run writes never counts as its input.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.cache_dir import cache_dir
from bench.locking import LOCK_FILE
from bench.run_dir import atomic_write_json

HASH_CACHE_FILE = "file-hashes.json"
#: Bytes read at each of the three places of a file's content sample.
SAMPLE_BYTES = 4 * 1024
_READ = 1 << 20
_lock = threading.Lock()


def _sample(fd: int, size: int) -> bytes:
    """The first, middle and last :data:`SAMPLE_BYTES` of an open file (the whole file when it is small)."""
    if size <= 3 * SAMPLE_BYTES:
        return os.pread(fd, size, 0)
    return b"".join(os.pread(fd, SAMPLE_BYTES, at) for at in (0, (size - SAMPLE_BYTES) // 2, size - SAMPLE_BYTES))


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    at = 0
    while chunk := os.pread(fd, _READ, at):
        h.update(chunk)
        at += len(chunk)
    return h.hexdigest()


class _HashCache:
    """The file-hash cache (path -> stat, sample digest and SHA-256), read once and written once (if it
    changed) per fingerprint. Entries of an older layout are dropped."""

    def __init__(self) -> None:
        self.path = cache_dir() / HASH_CACHE_FILE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.entries: dict[str, dict[str, str]] = {
            str(k): v for k, v in (data.items() if isinstance(data, dict) else ())
            if isinstance(v, dict) and all(isinstance(v.get(f), str) for f in ("stat", "sample", "sha256"))}
        self.changed = False

    def sha256(self, path: Path) -> str:
        p = path.resolve()
        fd = os.open(p, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            sample = _sample(fd, st.st_size)
            if st.st_size <= 3 * SAMPLE_BYTES:
                return hashlib.sha256(sample).hexdigest()
            stat = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
            sample_digest = hashlib.sha256(sample).hexdigest()
            entry = self.entries.get(str(p))
            if entry is not None and entry["stat"] == stat and entry["sample"] == sample_digest:
                return entry["sha256"]
            sha = _sha256_fd(fd)
        finally:
            os.close(fd)
        self.entries[str(p)] = {"stat": stat, "sample": sample_digest, "sha256": sha}
        self.changed = True
        return sha

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries)
        except OSError:
            pass  # an unwritable cache only costs hashing again next time


def is_output_dir(folder: Path) -> bool:
    """Whether ``folder`` holds one of this project's outputs (it was written under a directory lock)."""
    return (folder / LOCK_FILE).is_file()


def _files(folder: Path, exclude: set[Path]) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in exclude
                         and not is_output_dir(here / d))
        out += [here / n for n in sorted(names) if not n.startswith(".")]
    return out


def path_fingerprint(path: str | os.PathLike[str], exclude: Iterable[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """``{"sha256": ..., "files": n}`` of a file (n = 1; the file's own SHA-256) or of every file in a folder,
    leaving out the folders in ``exclude`` (say, the run directory that reads it) and other output folders."""
    p = Path(path)
    with _lock:
        cache = _HashCache()
        try:
            if p.is_file():
                return {"sha256": cache.sha256(p), "files": 1}
            h = hashlib.sha256()
            files = _files(p, {Path(e).resolve() for e in exclude})
            for f in files:
                h.update(f"{f.relative_to(p).as_posix()}\0{cache.sha256(f)}\n".encode())
            return {"sha256": h.hexdigest(), "files": len(files)}
        finally:
            cache.save()


def files_digest(paths: Sequence[Path], names: Sequence[str] | None = None) -> str:
    """SHA-256 of the (name, content SHA-256) pairs of ``paths`` in order (names default to the file names):
    the identity of a set of files, such as a suite's reference images."""
    h = hashlib.sha256()
    with _lock:
        cache = _HashCache()
        try:
            for i, p in enumerate(paths):
                h.update(f"{names[i] if names is not None else p.name}\0{cache.sha256(p)}\n".encode())
        finally:
            cache.save()
    return h.hexdigest()
