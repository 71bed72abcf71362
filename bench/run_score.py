"""The last stages of a :class:`~bench.runner.Run` (after :mod:`bench.run_stages`), on the main process only:
:func:`score` computes every metric once, :func:`build_results` assembles results.json (:mod:`bench.results`).

Each metric's own work is timed by its own clock, ``metric/<name>``, which pauses while the features it asks
for are computed or read (those count under ``features/``, ``reference_features/`` and ``text_features/``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.bootstrap import Recording, attach_interval
from bench.external import ExternalImages
from bench.metrics.base import Metric, check_sample_count, result_key
from bench.results import Results, comparability, flag_summary, ordered_timings, weights_verdict
from bench.run_features import FeatureStore, RunContext
from bench.run_stages import Gathered, RunPlan
from bench.timing import Timings
from bench.trained_on import flag as flag_trained_on

if TYPE_CHECKING:
    from bench.runner import Run


@dataclass
class Scores:
    """Every metric's values (by result key), its ``metric_info`` entry, and the reference features used."""

    values: dict[str, float]
    info: dict[str, Any]
    reference: dict[str, Any]


def score(run: Run, gathered: Gathered, streamed: Mapping[str, Mapping[tuple[int, str], np.ndarray]],
          timings: Timings, workers: int) -> Scores:
    """Compute each metric in turn. ``streamed``: the features this process streamed while generating, used
    instead of reading their files back."""
    fs = FeatureStore(run.session, run.store, run.suite, run.items, run.req.batch_size, timings=timings,
                      workers=workers, rows=gathered.rows, streamed=streamed)
    ctx = Recording(RunContext(fs, run.items, run.generator))
    values: dict[str, float] = {}
    info: dict[str, Any] = {}
    for metric in run.metrics:
        start = time.perf_counter()
        with timings.time(f"metric/{metric.name}", own=True):
            check_reference_count(metric, ctx)
            result = metric.compute(ctx)
        elapsed = time.perf_counter() - start
        default = type(metric).name
        keys = {k: result_key(metric.name, default, k) for k in result.values}
        values.update({keys[k]: v for k, v in result.values.items()})
        directions = {keys[k]: d for k in result.values if (d := metric.direction(k)) is not None}
        info[metric.name] = {**result.info, "comparable": result.comparable, "seconds": round(elapsed, 3),
                             "higher_is_better": directions}
        attach_interval(info[metric.name], metric, ctx, result.values, keys, run.req.bootstrap,
                        run.req.bootstrap_seed)
    return Scores(values=values, info=info, reference=fs.reference_info)


def check_reference_count(metric: Metric, ctx: Any) -> None:
    """Refuse a reference set too small for ``metric`` (known only once its features are in hand)."""
    needs = metric.min_samples()
    if metric.needs_reference and needs.reference > 1:
        for spec in metric.feature_specs():
            check_sample_count(metric.name, "reference", len(ctx.image_features(spec, "reference")), needs)


def build_results(run: Run, plan: RunPlan, gathered: Gathered, scores: Scores, timings: Timings,
                  total: float) -> Results:
    """results.json of the run, ``total`` being its seconds so far."""
    config = plan.config
    flag_trained_on(scores.info, run.metrics, config["generator"])
    flags = [gathered.rows[it.index].get("flag") for it in run.items]
    gen_weights = config["generator"]["weights"]
    reasons = comparability(gen_weights, scores.info, run.suite, run.req.limit, run.req.metric_args)
    images = {"total": len(flags), "generated_this_run": gathered.generated, "resumed": plan.resumed,
              **flag_summary([it.index for it in run.items], flags), "saved": run.req.save_images}
    if isinstance(run.generator, ExternalImages):
        reasons += run.generator.comparability_issues()
        images.update(run.generator.coverage())
    return Results(run_dir=str(run.store.path), method=run.req.method, suite=run.req.suite,
                   num_samples=len(run.items), metrics=scores.values, metric_info=scores.info,
                   weights=weights_verdict(gen_weights, scores.info), comparable=not reasons,
                   not_comparable_because=reasons, images=images,
                   timing_s=ordered_timings(timings.as_dict(), total), config=config,
                   reference_features=scores.reference or None)
