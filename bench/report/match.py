"""Match runs and latency records to the paper's rows (the experiment plan), and measure each cell.

A run is matched by what it evaluated, never by its directory name. Rules, in order (first that applies):

1. ``--map MODEL=PATH`` (repeatable): the run directory or latency file at PATH is model MODEL (a model id of
   ``bench/paper/sbv2.toml``, e.g. ``sd21-cfg4_5``, ``model-a``, ``sbv2``). A mapped run matches nothing else.
2. Public models: same method, the run's method options equal the plan's on every option the plan names
   (``sd21`` with ``guidance=4.5`` is ``sd21-cfg4_5``; options such as ``compile`` are ignored), and the weights
   are the method's own (no ``weights=`` option, the published id, or ``random``/``size=tiny``: the same model
   with random weights, which the cell then marks not comparable). A run with other weights is another model.
3. Trained models (method ``sbv2``): the student's ``bench_model.json`` records its ``recipe`` (the training
   settings that tell the paper's models apart, and for a merge the two parents' recipes and lambda); it must
   equal what the row's training commands set. When several rows share a recipe (they differ only in their
   prompt files), the weights folder named like the row decides; otherwise the run matches none of them.
   Students without a recipe (the SBv2 release's checkpoint, older exports) need ``--map``.

A latency record (timing does not depend on a model's weights) matches by method as in rule 2, or when its file
is named ``latency-MODEL.json`` (what ``bench reproduce`` writes) and its method is that model's. A model with
``timing = OTHER`` (the SBv2 students share one architecture) takes OTHER's record; OTHER being an architecture
stand-in timed with random weights (``sbv2-arch``), random weights do not make that cell not comparable (a
toy-size network still does).

When several runs match one row, the one on the table's suite wins, then a comparable one, then the one with
more samples, then the newest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.model_card import recipe_matches
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


#: Method options that name the weights a public model's run used.
_WEIGHT_OPTIONS = ("weights", "model")


def _own_weights(method_args: Mapping[str, Any], default_weights: str | None) -> bool:
    """Whether a run of a public model used that model's weights (or random ones of its architecture)."""
    weights = method_args.get("weights")
    if weights in (None, "", "random") or method_args.get("size") == "tiny":
        return True
    return default_weights is not None and str(weights).rstrip("/") == default_weights


def expected_recipe(model: Model, models: Mapping[str, Model]) -> dict[str, Any] | None:
    """The ``recipe`` a student of ``model`` records, from the row's last training command (None: unknown)."""
    import shlex

    from bench.model_card import RECIPE_FIELDS

    if not model.train:
        return None
    argv = shlex.split(model.train[-1])
    flags: dict[str, list[str]] = {}
    key = ""
    for token in argv[1:]:
        if token.startswith("--"):
            key = token
            flags.setdefault(key, [])
        elif key:
            flags[key].append(token)
    if argv[0] == "merge":
        parents = [Path((flags.get(f) or [""])[0]).name for f in ("--a", "--b")]
        if not all(p in models for p in parents) or not flags.get("--lambda"):
            return None
        a, b = (expected_recipe(models[p], models) for p in parents)
        return None if a is None or b is None else {"merge": {"lambda": float(flags["--lambda"][0]), "a": a, "b": b}}
    sets = dict(item.split("=", 1) for item in flags.get("--set", []) if "=" in item)
    preset = (flags.get("--preset") or [None])[0]
    return {"preset": preset, **{k: v for k, v in sets.items() if k in RECIPE_FIELDS}}


def _card(method_args: Mapping[str, Any]) -> dict[str, Any]:
    from bench.model_card import read_model_card

    weights = str(method_args.get("weights") or "")
    if not weights or not Path(weights).is_dir():
        return {}
    try:
        return read_model_card(weights)
    except BenchError:
        return {}


def models_of_run(paper: Paper, method: str, method_args: Mapping[str, Any]) -> list[str]:
    """The model ids a run (or latency record) of ``method`` with ``method_args`` evaluated (rules 2 and 3)."""
    from bench import plugins
    from bench.generator import Generator

    try:
        target = plugins.current().methods.get(method).resolve()
    except BenchError:  # a method no longer registered: only its plan's own options can say what it ran
        target = None
    default = target.default_weights if isinstance(target, type) and issubclass(target, Generator) else None
    out = []
    for model in paper.models.values():
        if model.method is None or method != model.method or model.trained:
            continue
        if not all(k in method_args and _same(method_args[k], v) for k, v in model.method_args.items()):
            continue
        if any(k in method_args for k in _WEIGHT_OPTIONS if k in model.method_args):
            out.append(model.id)  # the plan names the weights itself (``diffusers model=...``) and they agree
            continue
        if _own_weights(method_args, default):
            out.append(model.id)
    if method != "sbv2":
        return out
    recipe = _card(method_args).get("recipe")
    same = [m.id for m in paper.models.values()
            if m.trained and m.method == method and recipe_matches(recipe, expected_recipe(m, paper.models))]
    if len(same) > 1:
        folder = Path(str(method_args.get("weights") or "")).name
        same = [m for m in same if m == folder]
    return out + same


def plan_matches(model: Model, method: str, method_args: Mapping[str, Any], paper: Paper) -> bool:
    """Whether a run of ``method`` with ``method_args`` evaluated ``model`` (see the module docstring)."""
    return model.id in models_of_run(paper, method, method_args)


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
        ids = models_of_run(paper, run.method, run.method_args)
        for model_id in ids:
            out.runs.setdefault(model_id, []).append(run)
        if not ids:
            out.unmatched.append(run)
    for lat in found.latency:
        path = Path(lat.path).resolve()
        if path in mapped:
            out.latency.setdefault(mapped[path], []).append(lat)
            continue
        ids = models_of_run(paper, lat.record.method, lat.record.method_args)
        named = path.stem.removeprefix("latency-")
        if named in paper.models and paper.models[named].method == lat.record.method and named not in ids:
            ids.append(named)
        for model_id in ids:
            out.latency.setdefault(model_id, []).append(lat)
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
    if isinstance(profile, Mapping):  # results record the profile's name, settings and quirks
        profile = profile.get("name")
    if profile and protocol.get("profile") and profile != protocol["profile"]:
        reasons.append(f"protocol profile {profile} (the paper's numbers: {protocol['profile']})")
    return reasons


def latency_reasons(lat: Latency, protocol: Mapping[str, Any], architecture: bool = False) -> list[str]:
    """Why a latency record cannot be set beside a cell measured under ``protocol``. ``architecture``: the record
    times an architecture stand-in, for which random weights (at full size) are the plan."""
    data = lat.record.data
    reasons = []
    stand_in = architecture and data.get("weights") == "random" and lat.record.method_args.get("size") != "tiny"
    if data.get("weights") not in (None, "pretrained") and not stand_in:
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
        model = paper.models.get(model_id)
        timed = paper.models.get(model.timing) if model is not None and model.timing else model
        timed_id = timed.id if timed is not None else model_id
        arch = timed is not None and timed.architecture
        lats = [lt for lt in matches.latency.get(timed_id, []) if LATENCY_MEASURES[key](lt.record) is not None]
        if not lats:
            return None
        lat = min(lats, key=lambda lt: (len(latency_reasons(lt, protocol, arch)), lt.path))
        reasons = latency_reasons(lat, protocol, arch)
        return Measurement(LATENCY_MEASURES[key](lat.record), not reasons, reasons, lat.path)
    runs = [r for r in matches.runs.get(model_id, []) if key in r.metrics]
    if not runs:
        return None
    run = max(runs, key=lambda r: _rank(r, protocol.get("suite")))
    reasons = run_reasons(run, protocol)
    return Measurement(float(run.metrics[key]), not reasons, reasons, run.run_dir)
