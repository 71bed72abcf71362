"""``bench reproduce TABLE``: run what a paper table needs (in one session, resumable), then write its report."""

from __future__ import annotations

import argparse
from typing import Any

from bench.commands.base import function_command
from bench.errors import BenchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.run_options import add_option_flags, add_suite_aliases
    from bench.run_request import PASSED_ON, RunRequest

    p.add_argument("table", nargs="?", help="table1 ... table9, swiftbrush-v1, swiftbrush-v1-cost, field (see --list)")
    p.add_argument("--list", action="store_true", help="list the tables and the model ids that --map accepts")
    p.add_argument("--dry-run", action="store_true", help="print the exact commands, run nothing")
    p.add_argument("--out", default="runs", help="folder of the run directories (default: runs/)")
    p.add_argument("--report", default="report", help="report folder written at the end (default: report/)")
    p.add_argument("--models", default="models", help="folder of models trained here (default: models/)")
    p.add_argument("--jdb", default=None, metavar="FILE", help="JourneyDB prompts for training commands")
    p.add_argument("--laion", default=None, metavar="FILE", help="LAION prompts for training commands")
    p.add_argument("--pairs", default=None, metavar="FILE", help="real image-text pairs (image regularisation)")
    add_option_flags(p, RunRequest, names=(*PASSED_ON, "suite_args"), passthrough=True)
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="protocol profile of every run (default: the one the table's numbers were measured under; "
                        "another one makes the runs not comparable to the table)")
    add_option_flags(p, RunRequest, names=("save_images",), passthrough=True)
    add_suite_aliases(p)


def _list() -> int:
    from bench.report.data import paper

    the_paper = paper()
    for t in the_paper.tables:
        print(f"{t.id:<20} {t.title}")
    print("models (--map MODEL=RUN_DIR): " + ", ".join(the_paper.model_ids()))
    return 0


def _evaluate(session: Any, argv: list[str]) -> None:
    """One ``bench run`` step in the shared session, its arguments parsed by the CLI's own parser."""
    from bench.cli import build_parser
    from bench.run_options import evaluate_kwargs, from_namespace
    from bench.run_request import RunRequest

    request = from_namespace(RunRequest, build_parser().parse_args(argv))
    session.evaluate(request.method, request.suite, **evaluate_kwargs(request))


def _finished(step: Any, limit: int | None) -> bool:
    from pathlib import Path

    from bench.results import load, load_latency

    try:
        if step.kind == "latency":
            load_latency(step.fields["out"])
            return True
        done = load(Path(step.fields["out"]) / step.fields["run_name"])
        return done.limit == limit and done.method == step.fields["method"]
    except BenchError:
        return False


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not args.table:
        raise BenchError("name a table, e.g. `python -m bench reproduce table1 --dry-run` (--list shows them)")
    from bench.report.data import paper
    from bench.report.reproduce import missing_models, plan
    from bench.run_request import check_run_sizes

    check_run_sizes(args.batch_size, args.limit, args.workers)  # a plan never prints a command that cannot run
    if args.seed is not None and args.seed < 0:
        raise BenchError(f"--seed must be 0 or more, got {args.seed}")
    the_plan = plan(paper(), args.table, vars(args))
    if args.dry_run:
        print("\n".join(the_plan.lines()))
        return 0
    missing = missing_models(the_plan)
    if missing:
        raise BenchError(f"{args.table} needs models trained here; {missing[0]} is missing: run the training "
                         f"commands of `python -m bench reproduce {args.table} --dry-run` first")
    from bench.cli import build_parser
    from bench.session import Session

    session = Session(args.device or "auto")
    for step in the_plan.steps:
        if step.kind == "train":
            continue
        if _finished(step, args.limit):
            print(f"reproduce: done already, skipped: {step.command()}")
            continue
        print(f"reproduce: {step.command()}", flush=True)
        if step.kind == "run":
            _evaluate(session, step.argv)
        else:
            parsed = build_parser().parse_args(step.argv)
            parsed._command.run(parsed)
    from bench.report.build import write_report

    written = write_report([args.out], args.report, tables=[args.table])
    print(written.summary())
    return 0


ReproduceCommand = function_command(
    "run what a paper table needs (or print the commands: --dry-run), then write its report",
    add_arguments, run,
    description=("Run what a paper table needs (in one session, resumable; --dry-run prints the "
                 "commands), then write its report."),
)
