"""Match runs and latency records to the paper's rows (the experiment plan), and measure each cell.

Rules, in order (first that applies):

1. ``--map MODEL=PATH`` (repeatable): the run directory or latency file at PATH is model MODEL (a model id of
   ``bench/paper/sbv2.toml``, e.g. ``sd21-cfg4_5``, ``model-a``, ``sbv2``). A mapped run matches nothing else.
2. The run directory is named ``MODEL`` or ``<suite>-MODEL`` (what ``bench reproduce`` writes); a latency file
   is named ``latency-MODEL.json``.
3. Public models: same method, and the run's method options equal the plan's on every option the plan names
   (``sd21`` with ``guidance=4.5`` is ``sd21-cfg4_5``; other options such as ``compile`` are ignored).
4. Trained models (method ``sbv2``): the last folder name of the run's ``weights=`` option is the model id
   (``weights=models/model-a`` is ``model-a``).

When several runs match one row, the one on the table's suite wins, then a comparable one, then the one with
more samples, then the newest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.report.collect import Found, Latency
from bench.report.data import Column, Model, Paper, Table
from bench.results import Results


@dataclass
class Measurement:
    """What this suite measured for one cell, and why it may not be comparable."""

    value: float | None
    comparable: bool
    reasons: list[str]
    source: str  # the run directory or latency file


@dataclass
class Matches:
    runs: dict[str, list[Results]] = field(default_factory=dict)
    latency: dict[str, list[Latency]] = field(default_factory=dict)
    unmatched: list[Results] = field(default_factory=list)


def parse_map(items: list[str] | None, paper: Paper) -> dict[str, list[Path]]:
    """``["model-a=runs/x", ...]`` -> ``{"model-a": [Path("runs/x")]}``; unknown model ids are one-line errors."""
    import difflib

    out: dict[str, list[Path]] = {}
    known = paper.model_ids()
    for item in items or []:
        model, eq, path = item.partition("=")
        model = model.strip()
        if not eq or not model or not path:
            raise BenchError(f"--map {item!r}: give MODEL=RUN_DIR, e.g. --map model-a=runs/coco30k-a")
        if model not in known:
            close = difflib.get_close_matches(model, known, n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise BenchError(f"--map: unknown model {model!r}: {hint}")
        out.setdefault(model, []).append(Path(path).resolve())
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def plan_matches(model: Model, method: str, method_args: Mapping[str, Any], name: str, suite: str = "") -> bool:
    """Whether a run (or latency record) of ``method`` with ``method_args``, named ``name``, is ``model``."""
    if name in (model.id, f"{suite}-{model.id}", f"latency-{model.id}"):
        return True
    if model.method is None or method != model.method:
        return False
    if model.trained:
        weights = str(method_args.get("weights") or "").rstrip("/\\")
        return bool(weights) and Path(weights).name == model.id
    return all(k in method_args and _same(method_args[k], v) for k, v in model.method_args.items())


def match(paper: Paper, found: Found, mapping: Mapping[str, list[Path]] | None = None) -> Matches:
    """Assign every run and latency record to the models it reproduces (see the module docstring)."""
    mapping = mapping or {}
    mapped = {p: m for m, paths in mapping.items() for p in paths}
    out = Matches()
    for run in found.runs:
        path = Path(run.run_dir).resolve()
        if path in mapped:
            out.runs.setdefault(mapped[path], []).append(run)
            continue
        ids = [m.id for m in paper.models.values() if plan_matches(m, run.method, run.method_args, path.name, run.suite)]
        for model_id in ids:
            out.runs.setdefault(model_id, []).append(run)
        if not ids:
            out.unmatched.append(run)
    for lat in found.latency:
        path = Path(lat.path).resolve()
        if path in mapped:
            out.latency.setdefault(mapped[path], []).append(lat)
            continue
        for m in paper.models.values():
            if plan_matches(m, lat.record.method, lat.record.method_args, path.stem):
                out.latency.setdefault(m.id, []).append(lat)
    missing = [str(p) for p in mapped if not any(Path(r.run_dir).resolve() == p for r in found.runs)
               and not any(Path(lt.path).resolve() == p for lt in found.latency)]
    if missing:
        raise BenchError(f"--map names {missing[0]}, which holds no readable run or latency record; give a run "
                         "directory with a results.json (or a latency-*.json file)")
    return out


# -- measuring a cell ---------------------------------------------------------------------------------------
def run_reasons(run: Results, protocol: Mapping[str, Any]) -> list[str]:
    """Why ``run`` cannot be set beside a cell measured under ``protocol`` (its own reasons first)."""
    reasons = list(run.not_comparable_because)
    if not run.comparable and not reasons:
        reasons.append("results.json marks it not comparable")
    suite = protocol.get("suite")
    if suite and run.suite != suite:
        reasons.append(f"suite {run.suite} (the paper's protocol: {suite})")
    hps_version = protocol.get("hps_version")
    metric_opts = (run.config.get("metrics") or {}).get("hps") or {}
    if hps_version and metric_opts.get("version") and metric_opts["version"] != hps_version:
        reasons.append(f"HPS {metric_opts['version']} (the paper's table: {hps_version})")
    profile = run.protocol.get("profile")
    if profile and protocol.get("profile") and profile != protocol["profile"]:
        reasons.append(f"protocol profile {profile} (the paper's numbers: {protocol['profile']})")
    return reasons


def latency_reasons(lat: Latency, protocol: Mapping[str, Any]) -> list[str]:
    data = lat.record.data
    reasons = []
    if data.get("weights") not in (None, "pretrained"):
        reasons.append(f"generator weights are {data.get('weights')}")
    hardware = protocol.get("hardware")
    if hardware and hardware.lower() not in lat.record.device.lower():
        reasons.append(f"measured on {lat.record.device} (the paper: {hardware})")
    if protocol.get("dtype") and lat.record.dtype != protocol["dtype"]:
        reasons.append(f"dtype {lat.record.dtype} (the paper: {protocol['dtype']})")
    batch = (data.get("protocol") or {}).get("batch_size")
    if protocol.get("batch_size") and batch is not None and batch != protocol["batch_size"]:
        reasons.append(f"batch size {batch} (the paper: {protocol['batch_size']})")
    return reasons


LATENCY_MEASURES = {
    "latency_s": lambda r: r.mean_ms / 1000.0,
    "latency_ms": lambda r: r.mean_ms,
    "peak_memory_gb": lambda r: None if r.peak_memory_mib is None else r.peak_memory_mib / 1024.0,
}


def _rank(run: Results, suite: str | None) -> tuple:
    return (run.suite == suite, run.comparable, run.num_samples, str(run.config.get("created_at", "")))


def measure(paper: Paper, table: Table, column: Column, model_id: str, matches: Matches) -> Measurement | None:
    """The measurement of one cell (None when nothing measured it)."""
    protocol = paper.protocol_of(table, column)
    key = column.measure
    if key is None:
        return None
    if key in LATENCY_MEASURES:
        lats = [lt for lt in matches.latency.get(model_id, []) if LATENCY_MEASURES[key](lt.record) is not None]
        if not lats:
            return None
        lat = min(lats, key=lambda lt: (len(latency_reasons(lt, protocol)), lt.path))
        reasons = latency_reasons(lat, protocol)
        return Measurement(LATENCY_MEASURES[key](lat.record), not reasons, reasons, lat.path)
    runs = [r for r in matches.runs.get(model_id, []) if key in r.metrics]
    if not runs:
        return None
    run = max(runs, key=lambda r: _rank(r, protocol.get("suite")))
    reasons = run_reasons(run, protocol)
    return Measurement(float(run.metrics[key]), not reasons, reasons, run.run_dir)
