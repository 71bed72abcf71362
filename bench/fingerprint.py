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


def _cache_path() -> Path:
    return cache_dir() / HASH_CACHE_FILE


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, cached by (absolute path, size, modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    with _lock:
        cache = _read_cache()
        if key in cache:
            return cache[key]
    digest = sha256_file(p)
    with _lock:
        cache = _read_cache()
        cache[key] = digest
        try:
            _cache_path().parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(_cache_path(), cache)
        except OSError:
            pass  # an unwritable cache only costs hashing again next time
    return digest


def _files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return out


def path_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"sha256": ..., "files": n}`` of a file (n = 1) or of every file in a folder."""
    p = Path(path)
    if p.is_file():
        return {"sha256": file_sha256(p), "files": 1}
    h = hashlib.sha256()
    files = _files(p)
    for f in files:
        h.update(f"{f.relative_to(p).as_posix()}\0{file_sha256(f)}\n".encode())
    return {"sha256": h.hexdigest(), "files": len(files)}
