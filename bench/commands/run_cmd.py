"""``bench run``: generate a suite's images with a method and score them."""

from __future__ import annotations

import argparse
import json

from bench.commands.base import function_command


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.run_options import add_option_flags, add_suite_aliases
    from bench.run_request import RunRequest

    add_option_flags(p, RunRequest)
    p.add_argument("--seeds", default=None, metavar="A,B,...",
                   help="run once per seed (<run>-seed<k>) and write mean and spread to <run>-seeds/results_seeds.json")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")
    add_suite_aliases(p)


def run(args: argparse.Namespace) -> int:
    from bench.multi_seed import parse_seeds, run_seeds
    from bench.report import results_table
    from bench.run_options import from_namespace
    from bench.run_request import RunRequest
    from bench.runner import Run

    request = from_namespace(RunRequest, args)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    from bench import distributed
    from bench.session import Session

    with distributed.joined(args.device) as dist:
        session = Session(args.device, dist=dist)
        if seeds is not None:
            return _print_seeds(run_seeds(request, session, seeds), args.json)
        results = Run(request, session).execute()
    if results is None:  # a rank other than the main one: the main one reports
        return 0
    print(json.dumps(results.to_dict(), indent=2, default=str) if args.json else results_table(results) + "\n"
          + time_budget(results.timing_s))
    return 0


def _print_seeds(combined: dict | None, as_json: bool) -> int:
    from bench.multi_seed import seeds_table

    if combined is not None:
        print(json.dumps(combined, indent=2) if as_json else seeds_table(combined) + f"\n  written: {combined['path']}")
    return 0


def time_budget(t: dict[str, float]) -> str:
    """One line: where the run's time went (from results.json's timing_s; stages may overlap)."""
    parts = []
    if "load" in t:
        parts.append(f"load {t['load']:.1f}s")
    if "generation" in t:
        stages = [f"{k.split('/', 1)[1]} {t[k]:.1f}s" for k in t if k.startswith("generation/")]
        parts.append(f"generation {t['generation']:.1f}s" + (f" ({', '.join(stages)})" if stages else ""))
    if "read" in t:
        parts.append(f"read {t['read']:.1f}s")
    if "encode_save" in t:
        parts.append(f"encode+save {t['encode_save']:.1f}s")
    for prefix, label in (("features/", "features"), ("reference_features/", "reference features"),
                          ("text_features/", "text features"), ("metric/", "metric")):
        parts += [f"{label} {k.split('/', 1)[1]} {v:.1f}s" for k, v in t.items() if k.startswith(prefix)]
    if "orchestration" in t:
        parts.append(f"orchestration {t['orchestration']:.1f}s")
    return f"  time: {', '.join(parts)}; total {t.get('total', 0.0):.1f}s"


RunCommand = function_command(
    "generate and evaluate (resumes when run again)",
    add_arguments, run,
    description=("Generate the suite's images with a method and compute its metrics. Running the same "
                 "command again resumes in the same run directory."),
)
