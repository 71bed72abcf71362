"""The run directory: config.json, manifest.jsonl, journal/, images/, features/ and results.json.

Durability rules, which make a run safe to kill at any moment and to resume with the same command:

* Every file is written atomically: a temporary file in the same folder (named ``.<name>.<random>.tmp``),
  flushed and fsynced, then renamed over the target. Readers see the old file or the complete new one,
  never a partial file under a final name. A write that fails (disk full, say) removes its temporary file.
* Progress is recorded in append-only journals, one per process (``journal/rank-<r>.jsonl``), one JSON object
  per line, appended in a single write and fsynced. A torn last line from a crash is cut off when that
  process's journal is reopened, and skipped by readers. Concurrent processes never write to the same file.
* When generation is over, the main process folds the journals into ``manifest.jsonl`` (one row per sample,
  sorted by index, written atomically) and deletes them. The manifest of a resumed run is therefore
  byte-identical to the manifest of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.errors import NO_SPACE, BenchError

#: config.json keys that define what a run produces; a re-run must match them to resume.
IDENTITY_KEYS = ("method", "method_args", "suite", "suite_args", "seed", "dtype", "protocol", "inputs")

#: Environment variable that makes the process kill itself (SIGKILL) at a named point: ``"<point>:<n>"`` kills
#: on the n-th time the point is reached. Used by the crash-safety tests; costs one dictionary lookup otherwise.
CRASH_ENV = "BENCH_CRASH_AT"

_crash_lock = threading.Lock()
_crash_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``$BENCH_CRASH_AT`` names this point and its hit count is reached."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    with _crash_lock:
        _crash_hits[name] = _crash_hits.get(name, 0) + 1
        if _crash_hits[name] >= int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def _write_fd(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to a file descriptor."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def disk_full_error(path: str | os.PathLike[str], exc: OSError) -> BenchError:
    return BenchError(f"disk full while writing {path} ({exc.strerror}); nothing finished was lost: free space "
                      "and run the same command again to resume")


_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions a new file gets under this process's umask (0o666 minus the umask)."""
    return 0o666 & ~umask()


def follow_umask(path: str | Path) -> None:
    """Give ``path`` (and everything under it) the modes a plain ``open`` would: some writers force 0600."""
    mask = umask()
    root = Path(path)
    for item in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if not item.is_symlink():
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one. The file gets
    the permissions the umask gives a new file (a temporary file alone would be private to its owner)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, file_mode())
            if os.environ.get(CRASH_ENV, "").startswith("image-partial:") and path.suffix in (".png", ".jpg"):
                _write_fd(fd, data[: len(data) // 2])
                os.fsync(fd)
                crash_point("image-partial")
            _write_fd(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise disk_full_error(path, exc) from exc
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


def _row_line(row: dict[str, Any]) -> str:
    return json.dumps(row, default=str, ensure_ascii=False) + "\n"


def _well_formed(row: Any) -> bool:
    """Whether a parsed journal or manifest row has the fields readers use, of their types (others are
    skipped like torn lines: their samples are generated again)."""
    return (isinstance(row, dict) and isinstance(row.get("index"), int) and not isinstance(row["index"], bool)
            and row["index"] >= 0 and all(isinstance(row.get(k), str | None) for k in ("sha256", "path", "prompt"))
            and isinstance(row.get("sample_seed"), int | None))


def _parse_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rows
    for line in text.split("\n"):  # rows end in "\n" only: a prompt may hold U+2028 or other line breaks
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line left by a crash
        if _well_formed(row):
            rows.append(row)
    return rows


class Journal:
    """One process's append-only record of finished samples."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Cut a torn last line (a crash in the middle of an append) so the next append starts cleanly."""
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            pass

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows in one write, then fsync; on failure the file is restored to its previous length."""
        data = "".join(_row_line(r) for r in rows).encode("utf-8")
        if not data:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
        try:
            before = os.fstat(fd).st_size
            try:
                if os.environ.get(CRASH_ENV, "").startswith("journal-torn:"):
                    _write_fd(fd, data[: max(1, len(data) // 2)])
                    os.fsync(fd)
                    crash_point("journal-torn")
                    os.ftruncate(fd, before)
                _write_fd(fd, data)
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                if exc.errno in NO_SPACE:
                    raise disk_full_error(self.path, exc) from exc
                raise
        finally:
            os.close(fd)
        crash_point("journal")


class RunStore:
    """One run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.manifest_path = self.path / "manifest.jsonl"
        self.journal_dir = self.path / "journal"
        self.results_path = self.path / "results.json"
        self.images_dir = self.path / "images"
        self.features_dir = self.path / "features"

    # -- config -----------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchError(f"{self.config_path} is not valid JSON ({exc}); it is not recognisably a run, so "
                             "nothing is replaced: move the directory away or choose another --out/--run-name") \
                from exc

    def check_kind(self, existing: Any = None) -> None:
        """Refuse a directory whose config.json is not a bench run's (a model folder, say), with or without
        --overwrite: only a run is ever replaced."""
        existing = self.read_config() if existing is None else existing
        if existing is not None and not is_run_config(existing):
            raise BenchError(f"{self.config_path} is not the config of a bench run (is {self.path} a model or "
                             "another tool's folder?); nothing was changed: choose another --out or --run-name")
        if existing is None and self.path.is_dir() and any(not p.name.startswith(".") for p in self.path.iterdir()):
            raise BenchError(f"{self.path} is not empty and holds no config.json, so it is not a run directory and "
                             "nothing is written into it; choose another --out or --run-name")

    def check(self, config: dict[str, Any], overwrite: bool = False) -> list[str]:
        """Identity keys on which an existing run differs from ``config``; refuses unless ``overwrite``."""
        existing = self.read_config()
        if existing is None:
            return []
        self.check_kind(existing)
        old, new = identity(existing), identity(config)
        diff = [k for k in IDENTITY_KEYS if _canon(old.get(k)) != _canon(new.get(k))]
        if diff and not overwrite:
            raise BenchError(
                f"{self.path} holds a run with a different {', '.join(diff)}; pass --out elsewhere, "
                "--run-name NAME, or --overwrite to replace it"
            )
        return diff

    def open(self, config: dict[str, Any], overwrite: bool = False) -> bool:
        """Create the run or check that an existing one has the same identity; True when resuming.

        Also removes temporary files that a killed run left behind. Call it from one process only, before
        any process writes.
        """
        existing = self.read_config()
        diff = self.check(config, overwrite)
        if diff:
            self.clear()
            existing = None
        self.path.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(exist_ok=True)
        self.remove_temporary_files()
        atomic_write_json(self.config_path, config)
        return existing is not None

    def clear(self) -> None:
        """Remove everything a previous run wrote here (used by --overwrite)."""
        for p in (self.manifest_path, self.results_path, self.config_path):
            p.unlink(missing_ok=True)
        for d in (self.images_dir, self.features_dir, self.journal_dir):
            shutil.rmtree(d, ignore_errors=True)

    def remove_temporary_files(self) -> int:
        """Delete ``.*.tmp`` files (writes cut short by a crash); returns how many."""
        count = 0
        for folder in (self.path, self.images_dir, self.features_dir):
            if not folder.is_dir():
                continue
            for root, _dirs, files in os.walk(folder):
                for name in files:
                    if name.startswith(".") and name.endswith(".tmp"):
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(root, name))
                            count += 1
                if Path(root) == self.path:
                    _dirs[:] = []  # only the top level of the run folder itself
        return count

    # -- manifest and journals --------------------------------------------------------------------
    def journal(self, rank: int = 0) -> Journal:
        return Journal(self.journal_dir / f"rank-{rank}.jsonl")

    def journal_paths(self) -> list[Path]:
        if not self.journal_dir.is_dir():
            return []
        return sorted(self.journal_dir.glob("rank-*.jsonl"))

    def read_candidates(self) -> dict[int, list[dict[str, Any]]]:
        """Every recorded row per sample index, oldest first: the manifest, then the journals."""
        out: dict[int, list[dict[str, Any]]] = {}
        for path in (self.manifest_path, *self.journal_paths()):
            for row in _parse_lines(path):
                out.setdefault(int(row["index"]), []).append(row)
        return out

    def read_manifest(self) -> dict[int, dict[str, Any]]:
        """The latest recorded row of each sample (the manifest, overlaid with the journals)."""
        return {i: rows[-1] for i, rows in self.read_candidates().items()}

    def file_ok(self, row: dict[str, Any]) -> bool:
        """Whether the row's image file exists with the recorded sha256."""
        rel = row.get("path")
        if not rel:
            return False
        p = self.path / rel
        try:
            return p.is_file() and sha256_file(p) == row.get("sha256")
        except OSError:
            return False

    def compact(self) -> dict[int, dict[str, Any]]:
        """Fold the journals into manifest.jsonl (one row per index, sorted) and delete them.

        Where a sample has rows with different hashes (regenerated differently), the row that matches the
        file on disk wins. Returns the rows written.
        """
        final: dict[int, dict[str, Any]] = {}
        for idx, rows in self.read_candidates().items():
            if len({r.get("sha256") for r in rows}) > 1:
                matching = [r for r in rows if self.file_ok(r)]
                rows = matching or rows
            final[idx] = rows[-1]
        journals = self.journal_paths()
        text = "".join(_row_line(final[i]) for i in sorted(final))
        if journals or not self.manifest_path.exists() or self.manifest_path.read_text(encoding="utf-8") != text:
            atomic_write_bytes(self.manifest_path, text.encode("utf-8"))
        crash_point("compact")
        for p in journals:
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.journal_dir.rmdir()  # only when empty
        return final

    # -- images and results -----------------------------------------------------------------------
    def save_image(self, rel_path: str, data: bytes) -> None:
        """Atomically write an encoded image under the run directory."""
        target = self.path / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        crash_point("image")

    def write_results(self, results: dict[str, Any]) -> None:
        atomic_write_json(self.results_path, results)


def is_run_config(config: Any) -> bool:
    """Whether a parsed config.json is a bench run's (a model's config.json, say, is not)."""
    return isinstance(config, dict) and all(k in config for k in ("method", "suite", "seed"))


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The identity keys of a run config, with local inputs by content: an option that names an input file or
    folder (``inputs.args``) stands for that input's SHA-256, and ``inputs.files`` for the list of their
    fingerprints, whatever their paths."""
    out = {k: config.get(k) for k in IDENTITY_KEYS}
    inputs = config.get("inputs")
    if not isinstance(inputs, dict):
        return out
    by_arg = inputs.get("args") if isinstance(inputs.get("args"), dict) else {}
    method_args = out.get("method_args")
    if isinstance(method_args, dict):
        out["method_args"] = {k: {"content_sha256": by_arg[k]} if k in by_arg else v for k, v in method_args.items()}
    files = inputs.get("files") if isinstance(inputs.get("files"), dict) else {}
    out["inputs"] = {**{k: v for k, v in inputs.items() if k not in ("files", "args")},
                     "files": sorted(_canon(v) for v in files.values())}
    return out


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
