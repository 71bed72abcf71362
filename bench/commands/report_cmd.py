"""``bench report``: the paper's tables beside your measurements, figures, image grids and an HTML page."""

from __future__ import annotations

import argparse

from bench.commands.base import function_command
from bench.errors import BenchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                   help="run directories, sweep directories, latency files or folders holding them")
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="a folder searched recursively for runs, sweeps and latency records (repeatable; "
                        "default: runs/ when no RUN_DIR is given)")
    p.add_argument("--out", default="report", help="output folder (default: report/)")
    p.add_argument("--map", action="append", default=[], metavar="MODEL=PATH",
                   help="this run directory (or latency file) is paper model MODEL, e.g. model-a=runs/coco30k-a "
                        "(repeatable; model ids: `python -m bench reproduce --list`)")
    p.add_argument("--tables", default=None, metavar="ID,ID",
                   help="only these paper tables (default: all: table1..table9, swiftbrush-v1, swiftbrush-v1-cost)")
    p.add_argument("--grid-samples", type=int, default=4, metavar="N", help="samples per method in the image grid")


def run(args: argparse.Namespace) -> int:
    from bench.report.build import write_report
    from bench.report.data import paper
    from bench.report.match import parse_map

    the_paper = paper()
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    for t in tables or []:
        the_paper.table(t)
    if args.grid_samples < 1:
        raise BenchError(f"--grid-samples must be at least 1, got {args.grid_samples}")
    paths = list(args.run_dirs) + list(args.runs) or ["runs"]
    written = write_report(paths, args.out, parse_map(args.map, the_paper), tables, args.grid_samples)
    print(written.summary())
    return 0


ReportCommand = function_command(
    "the paper's tables beside your runs: Markdown/LaTeX/CSV, plots, image grids, index.html",
    add_arguments, run,
    description="The paper's tables beside your measurements, figures, image grids and an HTML page.",
)
