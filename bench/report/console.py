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
    lines = [f"{results.method} on {results.suite}: {results.num_samples} samples  ({results.run_dir})"]
    lines.append(f"  {'metric':<{width}}  value")
    lines.append(f"  {'-' * width}  ----------")
    for k in keys:
        lines.append(f"  {k:<{width}}  {_fmt(metrics[k])}")
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
