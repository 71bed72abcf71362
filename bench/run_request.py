"""What ``bench run`` is asked for (:class:`RunRequest`) and the checks on its sizes, which need no model.

Light on imports, so commands that only validate (``reproduce --dry-run``, ``sweep-merge``) do not load the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.options import parse_kv
from bench.run_options import (
    ALIAS,
    DEFAULT_BATCH_SIZE,
    RunOptions,
    flags_of,
    option,
    suite_aliases,
    suite_field,
)

#: What ``--run-name`` may be: a name, never a path (no separators, not "." or "..").
RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def check_batch_against_limit(batch_size: int, limit: int, total: int) -> None:
    """Refuse a ``--batch-size`` that would generate far more images than ``--limit`` keeps: a --limit run
    generates its last chunk whole (so it is an exact prefix of the full run), which is wasted beyond the limit.
    Batches up to the default size are always allowed."""
    generated = min(-(-limit // batch_size) * batch_size, total)
    if batch_size > DEFAULT_BATCH_SIZE and generated > limit and batch_size > limit:
        raise BenchError(f"--batch-size {batch_size} with --limit {limit} would generate {generated} images to keep "
                         f"{limit} (chunks are generated whole, so a --limit run is a prefix of the full run); use "
                         f"--batch-size {max(limit, DEFAULT_BATCH_SIZE)} or less, or a larger --limit")


@dataclass(kw_only=True)
class RunRequest(RunOptions):
    """Everything ``bench run`` takes (see ``python -m bench run --help``): the generator, the suite, the run
    directory's name and the :class:`~bench.run_options.RunOptions`."""

    method: str = option("--method", "generator name (see `bench list methods`)", required=True, api=False)
    suite: str = suite_field()
    method_args: dict[str, Any] = option(
        "--method-args", "options of the method, e.g. guidance=4.5", default_factory=dict, metavar="K=V,...",
        parse=parse_kv)
    run_name: str | None = option("--run-name", "run directory name (default: <suite>-<method>)", default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.method_args = dict(self.method_args or {})

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


#: The options ``bench reproduce`` passes on, unchanged, to each run it plans, in this order (the suites' aliases
#: after ``limit``); with ``suite_args`` (the plan adds the profile) and ``save_images``, the run options it takes.
PASSED_ON = ("device", "dtype", "batch_size", "seed", "limit", "workers", "metrics", "metric_args")


def passed_on_flags() -> dict[str, str]:
    """Attribute name (``suite.<option>`` for a suite's alias) -> flag of :data:`PASSED_ON` and the suites'
    aliases, from their declarations."""
    flags = flags_of(RunRequest)
    ordered = [(name, flags[name].flag) for name in PASSED_ON]
    aliases = [(ALIAS + name, alias["flag"]) for name, alias in suite_aliases().items()]
    at = PASSED_ON.index("limit") + 1
    return dict(ordered[:at] + aliases + ordered[at:])
