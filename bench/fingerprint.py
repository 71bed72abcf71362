"""Content fingerprints of the local files a run reads, so that a run's identity is what it read, not where.

A file's SHA-256 is cached in the cache directory by (absolute path, size, modification time): a resumed run
over a 5 GB student hashes nothing again, while a replaced file (new size or time) is hashed anew. A folder's
fingerprint is the SHA-256 of the sorted (relative path, file SHA-256) pairs of every file in it, hidden files
and folders (names starting with ".") left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from bench.cache import cache_dir
from bench.store import atomic_write_json, sha256_file

HASH_CACHE_FILE = "file-hashes.json"
_lock = threading.Lock()


class _HashCache:
    """The file-hash cache, read once and written once (if it changed) per fingerprint."""

    def __init__(self) -> None:
        self.path = cache_dir() / HASH_CACHE_FILE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.entries: dict[str, str] = ({str(k): str(v) for k, v in data.items()} if isinstance(data, dict)
                                        else {})
        self.changed = False

    def sha256(self, path: Path) -> str:
        p = path.resolve()
        st = p.stat()
        key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        if key not in self.entries:
            self.entries[key] = sha256_file(p)
            self.changed = True
        return self.entries[key]

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.entries)
        except OSError:
            pass  # an unwritable cache only costs hashing again next time


def _files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return out


def path_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"sha256": ..., "files": n}`` of a file (n = 1; the file's own SHA-256) or of every file in a folder."""
    p = Path(path)
    with _lock:
        cache = _HashCache()
        try:
            if p.is_file():
                return {"sha256": cache.sha256(p), "files": 1}
            h = hashlib.sha256()
            files = _files(p)
            for f in files:
                h.update(f"{f.relative_to(p).as_posix()}\0{cache.sha256(f)}\n".encode())
            return {"sha256": h.hexdigest(), "files": len(files)}
        finally:
            cache.save()
