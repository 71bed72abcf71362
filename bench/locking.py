"""Advisory directory locks: one writer per output directory, released by the kernel when its process dies."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def lock_directory(path: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``path/.lock`` (``path`` is created) while the block runs.

    ``what`` names the holder's job in the error another process gets, e.g. ``"training distill"``. Raises a
    one-line :class:`BenchError` naming the PID of the process that holds the lock. Where ``fcntl`` does not
    exist (Windows) no lock is taken. A directory this call created is removed again when the block fails
    before writing anything into it (a refused start leaves no empty folder behind).
    """
    directory = Path(path)
    created = not directory.exists()
    try:
        with _locked(directory, what) as held:
            yield held
    except Exception:
        if created:
            _remove_if_untouched(directory)
        raise


def _remove_if_untouched(directory: Path) -> None:
    """Remove ``directory`` when it holds nothing but the lock file and empty folders."""
    entries = sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    if any(p.is_file() and p.name != LOCK_FILE for p in entries):
        return
    with contextlib.suppress(OSError):
        for p in entries:
            p.rmdir() if p.is_dir() else p.unlink()
        directory.rmdir()


@contextlib.contextmanager
def _locked(directory: Path, what: str) -> Iterator[Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BenchError(f"{directory} exists and is not a directory; choose another output directory") from None
    except OSError as exc:
        raise BenchError(f"cannot create {directory}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks on this platform
        yield directory
        return
    lock_path = directory / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BenchError(f"cannot write to {directory} ({exc.strerror or exc}); choose a writable directory") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise BenchError(f"{directory} is in use by another {what} (process {holder}); wait for it to end "
                             "or choose another directory") from None
        with contextlib.suppress(OSError):  # who holds it is only informative (a full disk cannot record it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield directory
    finally:
        os.close(fd)  # closing the descriptor releases the lock
