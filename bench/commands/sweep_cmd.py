"""``bench sweep-merge``: evaluate theta = lambda * theta_A + (1 - lambda) * theta_B over a grid of lambdas."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from bench.commands.base import function_command
from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.merge_sweep import SweepRequest
    from bench.merge_sweep_record import SweepRecord


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.merge_sweep import SweepRequest
    from bench.run_options import add_option_flags, add_suite_aliases

    add_option_flags(p, SweepRequest)
    p.add_argument("--compare", default=None, metavar="SWEEP_DIR",
                   help="draw another sweep's curves on the same axes (e.g. Fig. 7a against 7b)")
    p.add_argument("--save-merged", type=float, default=None, metavar="LAMBDA",
                   help="also write the merged model at this lambda (as `python -m training merge` does) to "
                        "--merged-dir")
    p.add_argument("--merged-dir", default=None, metavar="DIR",
                   help="where --save-merged writes (default: <sweep>/merged-lambda-<x>)")
    p.add_argument("--json", action="store_true", help="print sweep.json instead of the table")
    add_suite_aliases(p)


def sweep_request(args: argparse.Namespace) -> tuple[SweepRequest, list[SweepRecord]]:
    """The :class:`bench.merge_sweep.SweepRequest` of the command line, and the records of ``--compare``."""
    from bench.merge_sweep import SweepRequest
    from bench.merge_sweep_record import load_sweep
    from bench.run_options import from_namespace

    request = from_namespace(SweepRequest, args)
    if args.save_merged is not None and not math.isfinite(args.save_merged):
        raise BenchError(f"--save-merged must be a finite number, got {args.save_merged}")
    if request.limit is not None and request.limit >= 1 and request.batch_size >= 1:  # before the sources load
        from bench.run_request import check_batch_against_limit

        check_batch_against_limit(request.batch_size, request.limit, request.limit * request.batch_size)
    compare = [load_sweep(args.compare)] if args.compare else []
    return request, compare


def merge_inputs(request: SweepRequest) -> list[str]:
    """The model directories of A and B for ``--save-merged``: both ``weights=DIR`` of one method whose class
    writes merged models (:attr:`bench.generator.Generator.writes_merged`; sbv2's student directories, read as
    ``training merge`` reads them). Checked before the sweep starts."""
    from pathlib import Path

    from bench.merged_generator import method_class, parse_source

    dirs, methods = [], []
    for label, spec in (("--a", request.a), ("--b", request.b)):
        method, margs = parse_source(spec)
        weights = margs.get("weights")
        if not method_class(method).writes_merged or not weights or not Path(weights).is_dir():
            raise BenchError(f"--save-merged needs model directories of a method that writes merged models (sbv2: "
                             f"student directories written by training); {label} {spec} is not one (use "
                             "sbv2:weights=DIR)")
        dirs.append(weights)
        methods.append(method)
    if methods[0] != methods[1]:
        raise BenchError(f"--save-merged needs A and B of one method (A is {methods[0]!r}, B is {methods[1]!r}); "
                         "leave it out, or merge two directories of the same method")
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
    with distributed.joined(args.device) as dist:
        record = run_sweep(request, Session(args.device, dist=dist), compare=compare)
        merged = None
        if record is not None and args.save_merged is not None:
            merged = save_merged(request, inputs, args.save_merged, args.merged_dir, args.overwrite)
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
