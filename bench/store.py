"""The run directory: config.json, manifest.jsonl, images/, features/ and results.json.

Files are written atomically (a temporary file in the same folder, fsync, then rename), so an interrupted
run never leaves a partial file that looks complete. The manifest is append-only, one JSON object per line;
a torn last line from a crash is ignored on reading.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError

#: config.json keys that define what a run produces; a re-run must match them to resume.
IDENTITY_KEYS = ("method", "method_args", "suite", "suite_args", "seed", "dtype", "protocol")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
            raise BenchError(f"disk full while writing {path}; free space and re-run to resume") from exc
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunStore:
    """One run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.manifest_path = self.path / "manifest.jsonl"
        self.results_path = self.path / "results.json"
        self.images_dir = self.path / "images"
        self.features_dir = self.path / "features"

    # -- config -----------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as exc:
            raise BenchError(f"{self.config_path} is not valid JSON ({exc}); move the run directory away "
                             "or pass --overwrite") from exc

    def open(self, config: dict[str, Any], overwrite: bool = False) -> bool:
        """Create the run or check that an existing one has the same identity; True when resuming."""
        existing = self.read_config()
        if existing is not None:
            diff = [k for k in IDENTITY_KEYS if _canon(existing.get(k)) != _canon(config.get(k))]
            if diff and not overwrite:
                raise BenchError(
                    f"{self.path} holds a run with a different {', '.join(diff)}; pass --out elsewhere, "
                    "--run-name NAME, or --overwrite to replace it"
                )
            if diff:
                self.clear()
                existing = None
        self.path.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(exist_ok=True)
        atomic_write_json(self.config_path, config)
        return existing is not None

    def clear(self) -> None:
        """Remove everything a previous run wrote here (used by --overwrite)."""
        for p in (self.manifest_path, self.results_path, self.config_path):
            p.unlink(missing_ok=True)
        for d in (self.images_dir, self.features_dir):
            shutil.rmtree(d, ignore_errors=True)

    # -- manifest ---------------------------------------------------------------------------------
    def read_manifest(self) -> dict[int, dict[str, Any]]:
        """Manifest rows by sample index (later lines win; a torn final line is skipped)."""
        rows: dict[int, dict[str, Any]] = {}
        if not self.manifest_path.exists():
            return rows
        with open(self.manifest_path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "index" in row:
                    rows[int(row["index"])] = row
        return rows

    def verified_manifest(self) -> dict[int, dict[str, Any]]:
        """Manifest rows whose image file exists and still has the recorded sha256."""
        good = {}
        for idx, row in self.read_manifest().items():
            p = self.path / row["path"]
            if p.is_file() and sha256_file(p) == row.get("sha256"):
                good[idx] = row
        return good

    def save_image(self, rel_path: str, data: bytes, row: dict[str, Any]) -> dict[str, Any]:
        """Atomically write an encoded image and append its manifest row (with sha256 and path)."""
        target = self.path / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        row = {**row, "path": rel_path, "sha256": sha256_bytes(data)}
        line = json.dumps(row, default=str) + "\n"
        with open(self.manifest_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return row

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.results_path, results)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
