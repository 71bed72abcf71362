"""``bench score A B``: two image sets without prompts (folders, archives or .npz batches), or A against reference
statistics; the clean-fid / torch-fidelity use, run as a resumable run of the ``images`` method on the
``folders`` suite (:mod:`bench.suites.pair`), so features are streamed and cached like any run's."""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from bench.commands.base import function_command
from bench.commands.run_cmd import time_budget
from bench.errors import BenchError
from bench.run_options import parse_metric_args

#: The ``bench run`` options that ``bench score`` takes as they are.
SHARED = ("metric_args", "out", "run_name", "batch_size", "device", "workers", "bootstrap", "bootstrap_seed",
          "overwrite")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.profiles import AS_GIVEN, SCORE_PROFILES
    from bench.run_options import add_option_flags
    from bench.run_request import RunRequest

    p.add_argument("a", metavar="A", help="first image set: folder, .zip/.tar, or .npz batch (arr_0)")
    p.add_argument("b", metavar="B", help="second image set (the reference), or reference statistics .npz (mu, "
                                          "sigma: clean-fid's custom statistics or --export-stats output)")
    p.add_argument("--metrics", default=None, metavar="A,B",
                   help="fid (default), kid, precision_recall, density_coverage, fd_dinov2, cmmd, inception_score")
    p.add_argument("--profile", default=AS_GIVEN, choices=list(SCORE_PROFILES),
                   help=f"{AS_GIVEN} (default): images as given, as clean-fid's compute_fid; a protocol profile: its "
                        "crop + 256 px transform and metric options")
    p.add_argument("--export-stats", default=None, metavar="FILE.npz",
                   help="also write B's FID statistics (mu, sigma, provenance; clean-fid reads them as custom stats)")
    p.add_argument("--export-batch", default=None, metavar="FILE.npz",
                   help="also write B's images, through the profile's transform, as an ADM evaluator reference batch")
    add_option_flags(p, RunRequest, names=SHARED, help={
        "run_name": "run directory name (default: score-<A>-vs-<B>[-<profile>])",
        "batch_size": "images per feature chunk (default: 8)",
        "workers": "threads for reading and resizing images"})
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")


def is_stats_file(path: str) -> bool:
    """Whether ``path`` is an .npz of statistics (``mu`` and ``sigma``) rather than a batch of images."""
    p = Path(path).expanduser()
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"mu.npy", "sigma.npy"} <= names and not names & {"arr_0.npy", "all_images.npy"}


def _slug(path: str) -> str:
    name = Path(path).expanduser().resolve().name or "root"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:60] or "set"


def plan(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, Any]], Any, str]:
    """(metrics, metric args, the reference source or None, the reference's content fingerprint)."""
    from bench.fingerprint import path_fingerprint
    from bench.image_sources import open_source
    from bench.suites.pair import PAIR_METRICS

    metric_args: dict[str, dict[str, Any]] = parse_metric_args(args.metric_args or "")
    metrics = [m.strip() for m in (args.metrics or "").split(",") if m.strip()]
    if is_stats_file(args.b):
        if any(m not in ("fid", "fid_stats") for m in metrics):
            raise BenchError(f"{args.b} holds statistics, not images: only FID can be scored against it (--metrics fid)")
        if args.export_stats or args.export_batch:
            raise BenchError("--export-stats/--export-batch write what an image set B holds; B here is statistics")
        opts = {**metric_args.pop("fid", {}), **metric_args.get("fid_stats", {}), "stats": args.b}
        metric_args = {**metric_args, "fid_stats": opts}
        return ["fid_stats"], metric_args, None, str(path_fingerprint(args.b)["sha256"])
    metrics = metrics or ["fid"]
    odd = [m for m in metrics if m not in PAIR_METRICS or m == "fid_stats"]
    if odd:
        raise BenchError(f"metric {odd[0]!r} cannot compare two image sets without prompts; use "
                         f"{', '.join(m for m in PAIR_METRICS if m != 'fid_stats')}")
    if args.export_stats and "fid" not in metrics:
        raise BenchError("--export-stats writes FID statistics: include fid in --metrics")
    reference = open_source(args.b)
    return metrics, metric_args, reference, str(path_fingerprint(reference.path)["sha256"])


def run(args: argparse.Namespace) -> int:
    from bench import plugins
    from bench.profiles import AS_GIVEN
    from bench.report import results_table
    from bench.run_options import from_namespace
    from bench.run_request import RunRequest
    from bench.runner import Run
    from bench.session import Session
    from bench.suites.pair import FolderPairSuite

    metrics, metric_args, reference, ref_sha = plan(args)
    method_args = {"dir": args.a, "match": "index"}
    images = plugins.current().methods.get("images").build(**method_args)
    suite = FolderPairSuite(reference, count=len(images.source.names), profile=args.profile,
                            reference_sha256=ref_sha)
    name = f"score-{_slug(args.a)}-vs-{_slug(args.b)}" + ("" if args.profile == AS_GIVEN else f"-{args.profile}")
    request = from_namespace(RunRequest, args, method="images", suite=suite.name, method_args=method_args,
                             metric_args=metric_args, metrics=metrics, run_name=args.run_name or name,
                             save_images=False)
    session = Session(args.device)
    score = Run(request, session, generator=images, suite=suite)
    results = score.execute()
    assert results is not None
    if args.export_stats:
        _export(score, args.export_stats, ref_sha)
    if args.export_batch:
        from bench.reference_stats import write_batch

        count = write_batch(args.export_batch, reference, suite.preprocess(),
                            {"format": "ADM evaluator reference batch (arr_0)",
                             "source": {"path": str(reference.path), "sha256": ref_sha}})
        print(f"bench score: wrote {count} reference image(s) to {args.export_batch} (arr_0)", file=sys.stderr)
    print(json.dumps(results.to_dict(), indent=2, default=str) if args.json else results_table(results) + "\n"
          + time_budget(results.timing_s))
    return 0


def _export(score: Any, path: str, ref_sha: str) -> None:
    """Write the reference set's FID statistics (its features are already computed and cached)."""
    from bench.reference_stats import write_stats
    from bench.run_features import FeatureStore

    fid = next(m for m in score.metrics if m.name == "fid")
    spec = fid.spec()
    store = FeatureStore(score.session, score.store, score.suite, score.items, score.req.batch_size)
    feats = store.image_features(spec, "reference")
    source = {"path": str(score.suite.reference.path), "sha256": ref_sha, "images": len(feats)}
    write_stats(path, feats, spec.extractor_spec(), score.suite.preprocess(), source)
    print(f"bench score: wrote the FID statistics of {len(feats)} reference image(s) to {path}", file=sys.stderr)


ScoreCommand = function_command(
    "score two image sets without prompts (FID, KID, ...), or one against reference statistics",
    add_arguments, run,
    description=("Compare image set A with image set B (folders, .zip/.tar archives or .npz sample batches), "
                 "as clean-fid's compute_fid(A, B) does, or A with reference statistics (.npz with mu and sigma). "
                 "The work is a resumable run directory under --out."),
)
