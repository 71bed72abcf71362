"""Find what a report reads: run directories, merge sweeps, ``bench latency`` records and ``bench interpolate``
folders, through the typed loaders (:func:`bench.results.load`, :func:`bench.results.load_latency`,
:func:`bench.merge_sweep_record.load_sweep`, :func:`load_interpolation`). A file that cannot be read is named in a
one-line warning and skipped."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.interp import RECORD_FILE as INTERPOLATION_FILE
from bench.merge_sweep_record import SWEEP_FILE, SweepRecord, load_sweep
from bench.results import RESULTS_FILE, LatencyRecord, Results, load, load_latency

#: What to run when a folder holds nothing to report.
FIRST = "python -m bench run --method tiny --suite smoke (or `python -m bench reproduce table1`)"
#: Folders inside a run directory that never hold records (skipped while walking).
_SKIP = {"images", "features", "journal"}


@dataclass
class Latency:
    """A latency record and the file it was read from."""

    path: str
    record: LatencyRecord


@dataclass
class Interpolation:
    """A ``bench interpolate`` folder: its record (``interpolate.json``) and its labelled grid."""

    folder: Path
    record: dict
    grid: Path


def load_interpolation(path: Path) -> Interpolation:
    """The interpolation whose ``interpolate.json`` is ``path``; BenchError when it is not one or its grid is gone."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"not a readable interpolation record ({exc}); rerun `python -m bench interpolate`") from exc
    if not isinstance(record, dict) or record.get("kind") != "interpolate" or not isinstance(record.get("grid"), dict):
        raise BenchError("not a `bench interpolate` record (kind, grid); rerun `python -m bench interpolate`")
    grid = path.parent / str(record["grid"].get("file", "grid.png"))
    if not grid.is_file():
        raise BenchError(f"its grid {grid} is missing; rerun `python -m bench interpolate` into that folder")
    return Interpolation(path.parent, record, grid)


@dataclass
class Found:
    runs: list[Results] = field(default_factory=list)
    sweeps: list[SweepRecord] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    interpolations: list[Interpolation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.runs or self.sweeps or self.latency or self.interpolations)


def _is_latency_file(name: str) -> bool:
    return name.startswith("latency") and name.endswith(".json")


def _walk(root: Path) -> Iterable[tuple[Path, list[str]]]:
    if root.is_file():
        yield root.parent, [root.name]
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("."))
        yield Path(dirpath), sorted(filenames)


def collect(paths: Iterable[str | Path], warn: bool = True) -> Found:
    """Every run, sweep, latency record and interpolation under ``paths`` (folders are searched recursively),
    each once."""
    found = Found()
    seen: set[Path] = set()

    def skip(path: Path, exc: BenchError) -> None:
        found.warnings.append(f"skipped {path}: {exc}")
        if warn:
            print(f"bench report: warning: skipped {path}: {exc}", file=sys.stderr)

    for root in paths:
        root = Path(root)
        if not root.exists():
            raise BenchError(f"{root} does not exist; give run directories or a folder of runs (--runs DIR), or run "
                             f"one first: {FIRST}")
        for folder, names in _walk(root):
            for name in names:
                path = (folder / name).resolve()
                if path in seen:
                    continue
                seen.add(path)
                try:
                    if name == RESULTS_FILE:
                        results = load(path)
                        results.run_dir = str(path.parent)
                        found.runs.append(results)
                    elif name == SWEEP_FILE:
                        found.sweeps.append(load_sweep(path))
                    elif _is_latency_file(name):
                        found.latency.append(Latency(str(path), load_latency(path)))
                    elif name == INTERPOLATION_FILE:
                        found.interpolations.append(load_interpolation(path))
                except BenchError as exc:
                    skip(path, exc)
    return found
