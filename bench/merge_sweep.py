"""A merge sweep: one ordinary run directory per lambda, in one session, and the sweep's record.

``<sweep>/lambda-0.50/`` is a run directory like ``bench run`` writes (resumable after a kill, identical numbers
to an uninterrupted run); ``<sweep>/sweep.json`` (:mod:`bench.merge_sweep_record`) says which sources, suite and grid it
holds, and ``sweep.csv`` has one row per lambda. Running the same sweep again resumes it: finished points are
verified and re-scored from their cached features without generating anything, a half-done point continues.
A sweep directory that holds another sweep is refused unless ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.merge_sweep_record import CONVENTION, SWEEP_FILE, SweepPoint, SweepRecord, load_sweep
from bench.run_options import RunOptions, evaluate_kwargs, option, suite_field

if TYPE_CHECKING:
    from bench.merged_generator import Source
    from bench.results import Results
    from bench.session import Session

DEFAULT_LAMBDAS = "0:1:0.1"
#: Most grid points a sweep takes (each is a whole evaluation run).
MAX_POINTS = 1001
CSV_FILE = "sweep.csv"
#: sweep.json keys that say which sweep a directory holds.
IDENTITY = ("a", "b", "suite", "suite_args", "seed", "limit", "components", "convention")


def parse_lambdas(text: str | None) -> list[float]:
    """``start:stop:step`` (stop included within float tolerance) or ``a,b,c``; sorted, without duplicates; at
    most :data:`MAX_POINTS` points (checked before the grid is built)."""
    text = (text or DEFAULT_LAMBDAS).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError("start:stop:step has three parts")
            start, stop, step = parts
            if not all(math.isfinite(v) for v in parts):
                raise BenchError(f"--lambdas {text!r} has a value that is not a finite number")
            if step <= 0:
                raise BenchError(f"--lambdas {text!r}: the step must be positive")
            count = (stop - start) / step + 1e-6
            if count >= MAX_POINTS:
                raise BenchError(f"--lambdas {text!r} has {count:.3g} points, more than {MAX_POINTS}; take a larger "
                                 "step (each point is a whole evaluation run)")
            values = [round(start + i * step, 10) for i in range(max(0, math.floor(count) + 1))]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise BenchError(f"--lambdas {text!r} is not start:stop:step or a comma list of numbers ({exc})") from None
    if not values:
        raise BenchError(f"--lambdas {text!r} gives no lambda; e.g. 0:1:0.1 or 0,0.5,1")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise BenchError(f"--lambdas {text!r} has a value that is not a finite number ({bad[0]})")
    values = sorted({v + 0.0 for v in values})  # + 0.0: -0.0 is 0.0
    if len(values) > MAX_POINTS:
        raise BenchError(f"--lambdas lists {len(values)} lambdas, more than {MAX_POINTS}")
    return values


def point_name(lam: float) -> str:
    """Run directory of a lambda: ``lambda-0.50``; more digits when two decimals would not say it exactly, and
    always enough to give the exact float back, so two lambdas never share a directory."""
    lam = float(lam) + 0.0
    if abs(lam - round(lam, 2)) < 1e-12:
        text = f"{lam:.2f}"
        if float(text) != lam:  # within 1e-12 of two decimals but not equal: not the same point
            text = repr(lam)
    else:
        text = f"{lam:.6g}" if float(f"{lam:.6g}") == lam else repr(lam)
    return f"lambda-{text}"


def safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "sweep"
    return "sweep" if set(name) <= {"."} else name


def parse_sweep_metrics(text: str) -> list[str]:
    """``--metrics`` of a sweep: at least one metric (``none`` is refused: a sweep compares scores)."""
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    if not metrics or metrics == ["none"]:
        raise BenchError("--metrics must name at least one metric: a sweep compares scores")
    return metrics


@dataclass(kw_only=True)
class SweepRequest(RunOptions):
    """What ``python -m bench sweep-merge`` takes: the two sources, the suite, the grid and how A and B's other
    components are treated, the sweep directory, and the :class:`~bench.run_options.RunOptions` of every point."""

    a: str = option("--a", "model A (lambda = 1): a method with its method args, e.g. sbv2:weights=runs/a, or a "
                    "student directory (an export or its lora/ adapter)", required=True, metavar="NAME[:K=V,...]")
    b: str = option("--b", "model B (lambda = 0), like --a", required=True, metavar="NAME[:K=V,...]")
    suite: str = suite_field()
    lambdas: list[float] = option(
        "--lambdas", f"weights of A: start:stop:step (stop included) or a comma list (default: {DEFAULT_LAMBDAS})",
        default_factory=lambda: parse_lambdas(None), metavar="START:STOP:STEP|A,B,...", parse=parse_lambdas)
    components: str = option(
        "--components", "text encoder, VAE, tokenizer and scheduler: check they are equal in A and B (default), "
        "take A's or B's, or merge (interpolate text encoder and VAE too)", default="check",
        choices=("check", "a", "b", "merge"))
    sweep_name: str | None = option("--sweep-name", "sweep directory name (default: <suite>-<a>-vs-<b>)",
                                    default=None)
    metrics: Sequence[str] | None = option("--metrics", "metrics to compute (default: the suite's)", default=None,
                                           metavar="A,B", parse=parse_sweep_metrics)
    out: str = option("--out", "folder that holds sweep directories (default: sweeps/)", default="sweeps")
    overwrite: bool = option("--overwrite", "replace a different sweep in the sweep directory, or an existing "
                             "--merged-dir", default=False, action="store_true")

    def point_options(self, lam: float, path: Path) -> dict[str, Any]:
        """The :meth:`~bench.session.Session.evaluate` keywords of the point at ``lam`` (in sweep dir ``path``)."""
        return {**evaluate_kwargs(self, RunOptions), "out": str(path), "run_name": point_name(lam)}

    def sweep_dir(self) -> Path:
        return Path(self.out) / safe_name(self.sweep_name or f"{self.suite}-{self.a}-vs-{self.b}")


def _by_content(source: Any) -> Any:
    """A source record without what only names where its weights live (the spec and the ``weights`` path), when
    it carries the fingerprint of those weights: a renamed folder with the same weights is the same source."""
    if not isinstance(source, dict) or not source.get("fingerprint"):
        return source
    args = {k: v for k, v in (source.get("method_args") or {}).items() if k != "weights"}
    return {**{k: v for k, v in source.items() if k not in ("source", "method_args")}, "method_args": args}


def _differs(existing: Mapping[str, Any], identity: Mapping[str, Any]) -> list[str]:
    import json

    canon = lambda v: json.dumps(v, sort_keys=True, default=str)  # noqa: E731
    out = []
    for key in IDENTITY:
        old, new = _by_content(existing.get(key)), _by_content(identity.get(key))
        if canon(old) == canon(new):
            continue
        if isinstance(old, dict) and isinstance(new, dict):  # name the part of a source that changed
            out += [f"{key}.{k}" for k in sorted(set(old) | set(new)) if canon(old.get(k)) != canon(new.get(k))]
        else:
            out.append(key)
    return out


def _visible(path: Path) -> list[Path]:
    """The entries of a folder that are not hidden (a ``.lock`` alone is an empty folder)."""
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def open_sweep(path: Path, identity: Mapping[str, Any], overwrite: bool, inputs: Sequence[str | Path] = (),
               clear: bool = True) -> None:
    """Check that ``path`` holds nothing or this sweep, else refuse. ``overwrite`` replaces only another sweep
    (a folder with a readable ``sweep.json``), never one that holds an input of this sweep (``inputs``), and
    never a point that another process is writing; anything else is refused, with or without it. ``clear``:
    remove the other sweep now (call it with the sweep directory locked), else only check."""
    if path.exists() and not path.is_dir():
        raise BenchError(f"sweep directory {path} is a file; choose another --sweep-name or --out")
    if not path.is_dir() or not _visible(path):
        return
    if not (path / SWEEP_FILE).is_file():
        raise BenchError(f"{path} is not empty and holds no {SWEEP_FILE}: it is not a sweep, so it is never replaced; "
                         "choose another --sweep-name or --out")
    try:
        diff = _differs(load_sweep(path).to_dict(), identity)
    except BenchError:
        raise BenchError(f"{path / SWEEP_FILE} is unreadable, so {path} is not recognisably a sweep and is not "
                         "replaced; move it away or choose another --sweep-name or --out") from None
    if not diff:
        return
    reason = f"{path} holds a different sweep ({', '.join(diff)} differ)"
    if not overwrite:
        raise BenchError(f"{reason}; choose another --sweep-name, or pass --overwrite to replace it")
    target = path.resolve()
    for item in inputs:
        inp = Path(item).resolve()
        if inp == target or target in inp.parents:
            raise BenchError(f"{reason}, and it holds {item}, an input of this sweep; --overwrite never deletes an "
                             "input: choose another --sweep-name or --out")
    if clear:
        _clear(path)


def _clear(path: Path) -> None:
    """Remove what a sweep wrote in ``path`` (the sweep's own lock stays); a point that another process holds
    stops it with one line before anything is removed."""
    from contextlib import ExitStack

    from bench.locking import LOCK_FILE, lock_directory

    with ExitStack() as held:
        for child in _visible(path):
            if child.is_dir() and (child / LOCK_FILE).is_file():
                held.enter_context(lock_directory(child, "bench run"))
        for child in _visible(path):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def build_record(identity: Mapping[str, Any], lambdas: Sequence[float],
                 results: Mapping[float, Results | None]) -> SweepRecord:
    """The sweep record; points without results yet have no metrics."""
    points, directions = [], {}
    for lam in lambdas:
        res = results.get(lam)
        if res is None:
            points.append(SweepPoint(lam, point_name(lam), {}))
            continue
        points.append(SweepPoint(lam, point_name(lam), dict(res.metrics), bool(res.comparable),
                                 res.timing_s.get("total")))
        for key in res.metrics:
            direction = res.higher_is_better(key)
            if direction is not None:
                directions.setdefault(key, direction)
    record = SweepRecord(a=dict(identity["a"]), b=dict(identity["b"]), suite=str(identity["suite"]), points=points,
                         directions=directions, components=str(identity["components"]),
                         suite_args=dict(identity["suite_args"]), seed=int(identity["seed"]),
                         limit=identity["limit"], convention=CONVENTION)
    record.best = best_point(record)
    return record


def best_key(keys: Sequence[str]) -> str | None:
    """The metric that picks the best lambda: ``fid`` (the paper's choice), else the first ``*fid*`` key."""
    if "fid" in keys:
        return "fid"
    return next((k for k in sorted(keys) if "fid" in k), None)


def best_point(record: SweepRecord) -> dict[str, Any] | None:
    keys = sorted({k for p in record.points for k in p.metrics})
    key = best_key(keys)
    if key is None:
        return None
    xs, ys = record.curve(key)
    if not xs:
        return None
    higher = record.directions.get(key, False)
    i = max(range(len(ys)), key=lambda j: ys[j]) if higher else min(range(len(ys)), key=lambda j: ys[j])
    return {"by": key, "lambda": xs[i], "value": ys[i]}


def csv_text(record: SweepRecord) -> str:
    """``sweep.csv``: one row per lambda with every metric, the run directory and its seconds."""
    keys = sorted({k for p in record.points for k in p.metrics})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["lambda", *keys, "run_dir", "seconds"])
    for p in record.points:
        writer.writerow([p.lam, *[p.metrics.get(k, "") for k in keys], p.run_dir,
                         "" if p.seconds is None else p.seconds])
    return buf.getvalue()


def table(record: SweepRecord) -> str:
    """The printed table: the convention, one row per lambda, the best lambda marked."""
    keys = sorted({k for p in record.points for k in p.metrics})
    arrows = {k: (" (+)" if record.directions[k] else " (-)") if k in record.directions else "" for k in keys}
    header = ["lambda", *[k + arrows[k] for k in keys], "seconds"]
    best = (record.best or {}).get("lambda")
    rows = [[f"{p.lam:g}" + (" *" if p.lam == best else ""), *[f"{p.metrics[k]:.4g}" if k in p.metrics else "-"
                                                             for k in keys],
             "-" if p.seconds is None else f"{p.seconds:.1f}"] for p in record.points]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{CONVENTION}; A = {record.a['source']}, B = {record.b['source']}; components {record.components}",
             "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if record.best:
        lines.append(f"* best by {record.best['by']}: lambda = {record.best['lambda']:g} "
                     f"({record.best['value']:.4g}); (+) higher is better, (-) lower is better")
    return "\n".join(lines)


def write_outputs(path: Path, record: SweepRecord, plots: bool = True,
                  compare: Sequence[SweepRecord] = (), caveat: bool = False) -> dict[str, Any]:
    """sweep.json, sweep.csv and (``plots``) the curves, written atomically; returns what was plotted.
    ``caveat``: some point ran with random weights (the figure says so)."""
    from bench.run_dir import atomic_write_bytes, atomic_write_json

    atomic_write_json(path / SWEEP_FILE, record.to_dict())
    atomic_write_bytes(path / CSV_FILE, csv_text(record).encode())
    if not plots:
        return {}
    from bench.plots.merge_curves import plot_merge_curves

    record.path = str(path / SWEEP_FILE)
    return plot_merge_curves([record, *compare], path / "curves", caveat=caveat)


def run_sweep(req: SweepRequest, session: Session, compare: Sequence[SweepRecord] = ()) -> SweepRecord | None:
    """Evaluate every lambda of ``req`` in ``session``; the record (None on ranks other than the main one)."""
    from bench.locking import lock_directory
    from bench.merged_generator import check_same_architecture, load_source, resolve_components

    dist = session.dist
    sources: list[Source] = []
    for label, spec in (("--a", req.a), ("--b", req.b)):
        try:
            sources.append(load_source(label, spec, session.device))
        except BenchError as exc:
            raise BenchError(f"{label} {spec}: {exc}") from None
    a, b = sources
    check_same_architecture(a, b)
    components = resolve_components(a, b, req.components)
    identity = {"a": a.record(), "b": b.record(), "suite": req.suite, "suite_args": req.suite_args,
                "seed": req.seed, "limit": req.limit, "components": components, "convention": CONVENTION}
    path = req.sweep_dir()
    inputs = [*(s.directory for s in sources if s.directory), *(r.path for r in compare if r.path),
              *(w for s in sources if isinstance(w := s.method_args.get("weights"), str) and Path(w).exists())]
    with ExitStack() as held:
        error = None
        if dist.is_main:
            try:
                open_sweep(path, identity, req.overwrite, inputs, clear=False)  # refused before anything is written
                held.enter_context(lock_directory(path, "bench sweep-merge"))
                open_sweep(path, identity, req.overwrite, inputs)
                write_outputs(path, build_record(identity, req.lambdas, {}), plots=False)
            except BenchError as exc:
                error = str(exc)
        dist.agree(error)
        return _evaluate_points(req, session, path, identity, a, b, components, compare)


def _evaluate_points(req: SweepRequest, session: Session, path: Path, identity: Mapping[str, Any], a: Source,
                     b: Source, components: str, compare: Sequence[SweepRecord]) -> SweepRecord | None:
    from bench.merged_generator import MergedGenerator

    dist = session.dist
    done: dict[float, Results | None] = {}
    for lam in req.lambdas:
        merged = MergedGenerator(a, b, lam, components)
        # resumes: finished images are kept
        done[lam] = session.evaluate(merged, req.suite, **req.point_options(lam, path))
        if dist.is_main:
            write_outputs(path, build_record(identity, req.lambdas, done), plots=False)
    if not dist.is_main:
        return None
    record = build_record(identity, req.lambdas, done)
    write_outputs(path, record, compare=compare, caveat=any(r.weights != "pretrained" for r in done.values()))
    return record

