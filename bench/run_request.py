"""What ``bench run`` is asked for (:class:`RunRequest`) and the checks on its sizes, which need no model.

Light on imports, so commands that only validate (``reproduce --dry-run``, ``sweep-merge``) do not load the engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

#: What ``--run-name`` may be: a name, never a path (no separators, not "." or "..").
RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
#: ``--batch-size`` when none is given.
DEFAULT_BATCH_SIZE = 8


def check_batch_against_limit(batch_size: int, limit: int, total: int) -> None:
    """Refuse a ``--batch-size`` that would generate far more images than ``--limit`` keeps: a --limit run
    generates its last chunk whole (so it is an exact prefix of the full run), which is wasted beyond the limit.
    Batches up to the default size are always allowed."""
    generated = min(-(-limit // batch_size) * batch_size, total)
    if batch_size > DEFAULT_BATCH_SIZE and generated > limit and batch_size > limit:
        raise BenchError(f"--batch-size {batch_size} with --limit {limit} would generate {generated} images to keep "
                         f"{limit} (chunks are generated whole, so a --limit run is a prefix of the full run); use "
                         f"--batch-size {max(limit, DEFAULT_BATCH_SIZE)} or less, or a larger --limit")


@dataclass
class RunRequest:
    """Everything ``bench run`` takes; see ``python -m bench run --help``."""

    method: str
    suite: str
    method_args: dict[str, Any] = field(default_factory=dict)
    suite_args: dict[str, Any] = field(default_factory=dict)
    metric_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "runs"
    run_name: str | None = None
    limit: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    device: str = "auto"
    dtype: str = "fp32"
    metrics: Sequence[str] | None = None
    overwrite: bool = False
    save_images: bool = True
    workers: int | None = None
    #: Bootstrap replicates of every metric's 95% interval (0: none) and the seed of their draws.
    bootstrap: int = 200
    bootstrap_seed: int = 0

    def run_dir(self) -> Path:
        if self.run_name is not None and not RUN_NAME.fullmatch(self.run_name):
            raise BenchError(f"--run-name {self.run_name!r} is not a plain name; use letters, digits, '.', '_' and "
                             "'-' (not starting with '.'), and --out for the folder")
        name = self.run_name or re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.suite}-{self.method}").lstrip(".")
        return Path(self.out) / name


def check_run_sizes(batch_size: int | None, limit: int | None, workers: int | None) -> None:
    """One line for a batch size, limit or worker count below 1 (``bench run`` and the plans of ``reproduce``)."""
    for flag, value in (("--batch-size", batch_size), ("--limit", limit), ("--workers", workers)):
        if value is not None and value < 1:
            raise BenchError(f"{flag} must be at least 1, got {value}")
