"""The results table printed at the end of a run (``from bench.report import results_table``)."""

from __future__ import annotations

from typing import Any

from bench.metrics.base import STANDARD_KEYS
from bench.results import Results


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def results_table(results: Results | dict[str, Any]) -> str:
    """A plain-text table of a run's results (or results.json's object), with its comparability verdict."""
    if not isinstance(results, Results):
        results = Results.from_dict(results)
    metrics = results.metrics
    keys = [k for k in STANDARD_KEYS if k in metrics] + sorted(k for k in metrics if k not in STANDARD_KEYS)
    width = max([len(k) for k in keys] + [6])
    made = "  [images made elsewhere: external]" if results.produced_by == "external" else ""
    lines = [f"{results.method} on {results.suite}: {results.num_samples} samples{made}  ({results.run_dir})"]
    ci = {k: v for info in results.metric_info.values() for k, v in (info.get("ci95") or {}).items()}
    trained = {k for info in results.metric_info.values() if info.get("trained_on")
               for k in (info.get("higher_is_better") or {})}
    conditional = {k for info in results.metric_info.values()
                   for k, covers in ((info.get("bootstrap") or {}).get("covers") or {}).items()
                   if str(covers).startswith("conditional")}
    lines.append(f"  {'metric':<{width}}  value       95% CI (jackknife)")
    lines.append(f"  {'-' * width}  ----------  ------------------")
    for k in keys:
        interval = f"  [{_fmt(ci[k][0])}, {_fmt(ci[k][1])}]" if k in ci else ""
        flag = "  (network used in training)" if k in trained or k.split("/", 1)[0] in trained else ""
        flag += "  (interval conditional on the generated set)" if k in conditional else ""
        lines.append(f"  {k:<{width}}  {_fmt(metrics[k]):<10}{interval}{flag}".rstrip())
    img = results.images
    if img["flagged_total"]:
        detail = ", ".join(f"{n} {k}" for k, n in img["flagged"].items() if n)
        lines.append(f"  WARNING: {img['flagged_total']} broken image(s) were scored: {detail}")
    if results.comparable:
        lines.append("  comparable to published numbers")
    else:
        lines.append(f"  NOT comparable to published numbers (weights: {results.weights}): "
                     + "; ".join(results.not_comparable_because))
    return "\n".join(lines)
