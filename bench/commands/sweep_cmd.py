"""``bench sweep-merge``: evaluate theta = lambda * theta_A + (1 - lambda) * theta_B over a grid of lambdas."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from bench.commands.base import function_command
from bench.devices import DTYPES
from bench.errors import BenchError
from bench.options import parse_kv

if TYPE_CHECKING:
    from bench.merge_sweep import SweepRequest
    from bench.merge_sweep_record import SweepRecord


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", required=True, metavar="NAME[:K=V,...]",
                   help="model A (lambda = 1): a method with its method args, e.g. sbv2:weights=runs/a, or a "
                        "student directory (an export or its lora/ adapter)")
    p.add_argument("--b", required=True, metavar="NAME[:K=V,...]", help="model B (lambda = 0), like --a")
    p.add_argument("--suite", required=True, help="suite name (see `bench list suites`)")
    p.add_argument("--lambdas", default=None, metavar="START:STOP:STEP|A,B,...",
                   help="weights of A: start:stop:step (stop included) or a comma list (default: 0:1:0.1)")
    p.add_argument("--components", default="check", choices=("check", "a", "b", "merge"),
                   help="text encoder, VAE, tokenizer and scheduler: check they are equal in A and B (default), "
                        "take A's or B's, or merge (interpolate text encoder and VAE too)")
    p.add_argument("--suite-args", default="", metavar="K=V,...", help="options of the suite")
    p.add_argument("--metric-args", default="", metavar="METRIC.K=V,...", help="options of metrics")
    p.add_argument("--metrics", default=None, metavar="A,B", help="metrics to compute (default: the suite's)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where the suite's data lives")
    p.add_argument("--prompts", default=None, metavar="PATH", help="replace the suite's prompts")
    p.add_argument("--out", default="sweeps", help="folder that holds sweep directories (default: sweeps/)")
    p.add_argument("--sweep-name", default=None, help="sweep directory name (default: <suite>-<a>-vs-<b>)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N prompts")
    p.add_argument("--batch-size", type=int, default=8, help="images per generator call (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (the same noise at every lambda)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="generator precision (default: fp32)")
    p.add_argument("--no-save-images", dest="save_images", action="store_false",
                   help="keep only the metrics' features of the images")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="threads for encoding and resizing")
    p.add_argument("--compare", default=None, metavar="SWEEP_DIR",
                   help="draw another sweep's curves on the same axes (e.g. Fig. 7a against 7b)")
    p.add_argument("--save-merged", type=float, default=None, metavar="LAMBDA",
                   help="also write the merged model at this lambda (as `python -m training merge` does) to "
                        "--merged-dir")
    p.add_argument("--merged-dir", default=None, metavar="DIR",
                   help="where --save-merged writes (default: <sweep>/merged-lambda-<x>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different sweep in the sweep directory, or an existing --merged-dir")
    p.add_argument("--json", action="store_true", help="print sweep.json instead of the table")


def sweep_request(args: argparse.Namespace) -> tuple[SweepRequest, list[SweepRecord]]:
    """The :class:`bench.merge_sweep.SweepRequest` of the command line, and the records of ``--compare``."""
    from bench.commands.run_cmd import parse_metric_args
    from bench.merge_sweep import SweepRequest, parse_lambdas
    from bench.merge_sweep_record import load_sweep

    metrics = None
    if args.metrics is not None:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        if not metrics or metrics == ["none"]:
            raise BenchError("--metrics must name at least one metric: a sweep compares scores")
    suite_args: dict[str, str] = parse_kv(args.suite_args, "--suite-args")
    for flag in ("data_root", "prompts"):
        value = getattr(args, flag)
        if value is not None:
            if flag in suite_args and suite_args[flag] != value:
                raise BenchError(f"--{flag.replace('_', '-')} and --suite-args {flag}= disagree; give one of them")
            suite_args[flag] = value
    if args.save_merged is not None and not math.isfinite(args.save_merged):
        raise BenchError(f"--save-merged must be a finite number, got {args.save_merged}")
    if args.limit is not None and args.limit >= 1 and args.batch_size >= 1:  # before the sources load
        from bench.run_request import check_batch_against_limit

        check_batch_against_limit(args.batch_size, args.limit, args.limit * args.batch_size)
    compare = [load_sweep(args.compare)] if args.compare else []
    request = SweepRequest(a=args.a, b=args.b, suite=args.suite, lambdas=parse_lambdas(args.lambdas),
                           components=args.components, suite_args=suite_args,
                           metric_args=parse_metric_args(args.metric_args), metrics=metrics, out=args.out,
                           sweep_name=args.sweep_name, limit=args.limit, batch_size=args.batch_size, seed=args.seed,
                           dtype=args.dtype, overwrite=args.overwrite, save_images=args.save_images,
                           workers=args.workers)
    return request, compare


def merge_inputs(request: SweepRequest) -> list[str]:
    """The student directories of A and B, for ``--save-merged`` (which reads them as ``training merge`` does)."""
    from pathlib import Path

    from bench.merged_generator import parse_source

    dirs = []
    for label, spec in (("--a", request.a), ("--b", request.b)):
        method, margs = parse_source(spec)
        weights = margs.get("weights")
        if method != "sbv2" or not weights or not Path(weights).is_dir():
            raise BenchError(f"--save-merged needs student directories written by training; {label} {spec} is not "
                             "one (use sbv2:weights=DIR)")
        dirs.append(weights)
    return dirs


def save_merged(request: SweepRequest, dirs: list[str], lam: float, target: str | None, overwrite: bool) -> str:
    """Write the merged model with the method's writer (:meth:`bench.generator.Generator.write_merged`; for sbv2
    equal to ``python -m training merge`` on the same inputs): the output may not overlap an input, and an
    existing non-empty one is replaced only with ``overwrite``."""
    from bench.merge_sweep import point_name
    from bench.merged_generator import method_class, parse_source

    out = target or str(request.sweep_dir() / f"merged-{point_name(lam)}")
    cls = method_class(parse_source(request.a)[0])
    return str(cls.write_merged(dirs[0], dirs[1], lam, out, overwrite=overwrite))


def run(args: argparse.Namespace) -> int:
    import json

    from bench import distributed
    from bench.merge_sweep import run_sweep, table
    from bench.session import Session

    request, compare = sweep_request(args)
    inputs = merge_inputs(request) if args.save_merged is not None else []
    try:
        dist = distributed.init(args.device)
        record = run_sweep(request, Session(args.device, dist=dist), compare=compare)
        merged = None
        if record is not None and args.save_merged is not None:
            merged = save_merged(request, inputs, args.save_merged, args.merged_dir, args.overwrite)
    finally:
        distributed.shutdown()
    if record is None:  # a rank other than the main one
        return 0
    print(json.dumps(record.to_dict(), indent=2) if args.json else table(record))
    if not args.json:
        print(f"sweep: {request.sweep_dir()} (sweep.json, sweep.csv, curves.png, curves.pdf)")
        if merged:
            print(f"merged model (lambda = {args.save_merged:g}): {merged}")
    return 0


SweepMergeCommand = function_command(
    "evaluate the weight merge of two models over a grid of lambdas (paper Figs. 3 and 7)",
    add_arguments, run,
    description=("theta = lambda * theta_A + (1 - lambda) * theta_B (lambda = 1 is A): one run "
                 "directory per lambda in one session, sweep.json, sweep.csv and the curves. Re-"
                 "running resumes the sweep."),
)
