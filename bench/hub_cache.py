"""The Hugging Face hub cache's layout as the hub client writes it (for the offline toy hub, :mod:`bench.toy_hub`),
and the marker that tells a toy snapshot from a download."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

#: Marker file in every toy snapshot (real repositories have none): what it is and how it was made.
MARKER = "bench_toy_hub.json"


def repo_folder(cache: Path, repo: str) -> Path:
    """``<cache>/models--owner--name``: where the hub cache keeps a model repository."""
    return Path(cache) / ("models--" + repo.replace("/", "--"))


def commit_hash(files: dict[str, bytes]) -> str:
    """A 40-hex commit id that depends only on the snapshot's file names and contents."""
    h = hashlib.sha1(usedforsecurity=False)
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def write_snapshot(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """Store ``files`` (path in repo -> bytes) as the ``main`` snapshot of ``repo``; returns the snapshot folder.

    Blobs are named by their sha256 and the snapshot holds relative symbolic links to them, as the hub client
    writes them (a copy where links cannot be made). Re-writing the same files is a no-op.
    """
    root = repo_folder(cache, repo)
    commit = commit_hash(files)
    snapshot = root / "snapshots" / commit
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            tmp = blob.with_suffix(".incomplete")
            tmp.write_bytes(data)
            os.replace(tmp, blob)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            continue
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:
            shutil.copyfile(blob, target)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def any_toy(repos: Sequence[str]) -> bool:
    """True when the hub cache's snapshot of any of ``repos`` was written by :func:`bench.toy_hub.build` (its marker file is
    cached; no network is asked)."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, MARKER), str) for repo in repos)


def is_toy(snapshot: str | os.PathLike[str]) -> bool:
    """True for a snapshot folder written by :func:`bench.toy_hub.build`."""
    return (Path(snapshot) / MARKER).is_file()
