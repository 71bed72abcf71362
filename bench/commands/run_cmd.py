"""``bench run``: generate a suite's images with a method and score them."""

from __future__ import annotations

import argparse
import json

from bench.commands.base import function_command
from bench.devices import DTYPES
from bench.errors import BenchError
from bench.options import parse_kv


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="generator name (see `bench list methods`)")
    p.add_argument("--suite", required=True, help="suite name (see `bench list suites`)")
    p.add_argument("--method-args", default="", metavar="K=V,...", help="options of the method, e.g. guidance=4.5")
    p.add_argument("--suite-args", default="", metavar="K=V,...", help="options of the suite")
    p.add_argument("--metric-args", default="", metavar="METRIC.K=V,...",
                   help="options of metrics, e.g. clip_score.model=ViT-B-32")
    p.add_argument("--out", default="runs", help="folder that holds run directories (default: runs/)")
    p.add_argument("--run-name", default=None, help="run directory name (default: <suite>-<method>)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N prompts")
    p.add_argument("--batch-size", type=int, default=8,
                   help="images per generator call; samples are generated in fixed chunks of this size, so keep it "
                        "when resuming for bit-identical images (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="noise seed; sample i's noise depends only on (seed, i)")
    p.add_argument("--seeds", default=None, metavar="A,B,...",
                   help="run once per seed (<run>-seed<k>) and write mean and spread to <run>-seeds/results_seeds.json")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="generator precision (default: fp32)")
    p.add_argument("--metrics", default=None, metavar="A,B", help="metrics to compute (default: the suite's; none: only generate)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where the suite's data lives (coco30k: the COCO root; default: $BENCH_COCO_ROOT)")
    p.add_argument("--prompts", default=None, metavar="PATH",
                   help="replace the suite's prompts (coco30k: a file, one caption per line or a JSON list; "
                        "hpsv2: a folder with <style>.json files)")
    p.add_argument("--no-save-images", dest="save_images", action="store_false",
                   help="keep only the metrics' features of the images, not the image files")
    p.add_argument("--overwrite", action="store_true", help="replace a run with a different config in the run dir")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads for encoding, writing and resizing images (default: the CPU count, at most 8)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="B",
                   help="jackknife groups of each metric's 95%% interval, on cached features (at least 2; 0: none; "
                        "default 200)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S", help="seed of the groups' partition")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")


def parse_metric_args(text: str) -> dict[str, dict[str, str]]:
    """``"fid.weights=random,clip_score.model=ViT-B-32"`` -> ``{"fid": {"weights": "random"}, ...}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_kv(text, "--metric-args").items():
        metric, dot, opt = key.partition(".")
        if not dot or not opt:
            raise BenchError(f"--metric-args: {key!r} must be METRIC.OPTION=VALUE, e.g. fid.weights=random")
        out.setdefault(metric, {})[opt] = value
    return out


def run(args: argparse.Namespace) -> int:
    from bench.multi_seed import parse_seeds, run_seeds
    from bench.report import results_table
    from bench.run_request import RunRequest
    from bench.runner import Run

    metrics = None
    if args.metrics is not None:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        if not metrics:
            raise BenchError("--metrics is empty; name metrics, `none` to only generate, or leave it out")
        if metrics == ["none"]:
            metrics = []
    suite_args: dict[str, str] = parse_kv(args.suite_args, "--suite-args")
    for flag, key in (("data_root", "data_root"), ("prompts", "prompts")):
        value = getattr(args, flag)
        if value is not None:
            if key in suite_args and suite_args[key] != value:
                raise BenchError(f"--{flag.replace('_', '-')} and --suite-args {key}= disagree; give one of them")
            suite_args[key] = value
    request = RunRequest(
        method=args.method,
        suite=args.suite,
        method_args=parse_kv(args.method_args),
        suite_args=suite_args,
        metric_args=parse_metric_args(args.metric_args),
        out=args.out,
        run_name=args.run_name,
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        metrics=metrics,
        overwrite=args.overwrite,
        save_images=args.save_images,
        workers=args.workers,
        bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed,
    )
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    from bench import distributed
    from bench.session import Session

    try:
        session = Session(args.device, dist=distributed.init(args.device))
        if seeds is not None:
            return _print_seeds(run_seeds(request, session, seeds), args.json)
        results = Run(request, session).execute()
    finally:
        distributed.shutdown()
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
