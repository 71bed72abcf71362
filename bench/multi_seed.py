"""``bench run --seeds 0,1,2``: the same evaluation under several noise seeds, summarised in one file.

Each seed is an ordinary, resumable run in its own directory ``<run>-seed<k>`` (``<run>``: ``--run-name`` or
``<suite>-<method>``); reference and text features and the networks are shared through one session. The
combined record ``<run>-seeds/results_seeds.json`` (schema ``sbv2-bench/seeds/v1``) holds, per metric key,
the values of every seed, their mean and their sample standard deviation (ddof = 1; 0 for one seed), plus the
run directories; the printed table shows mean +- std.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SEEDS_SCHEMA = "sbv2-bench/seeds/v1"
SEEDS_FILE = "results_seeds.json"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; one-line error on anything else or on repeats."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--seeds {text!r}: give integers separated by commas, e.g. --seeds 0,1,2") from None
    if not seeds:
        raise BenchError("--seeds is empty; give integers separated by commas, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {text!r} repeats a seed; give each seed once")
    return seeds


def combine(results: Sequence[Any], seeds: Sequence[int]) -> dict[str, Any]:
    """The ``results_seeds.json`` object of one :class:`~bench.results.Results` per seed."""
    keys = sorted({k for r in results for k in r.metrics})
    metrics: dict[str, Any] = {}
    for k in keys:
        vals = [float(r.metrics[k]) for r in results if k in r.metrics]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        metrics[k] = {"mean": mean, "std": std, "values": vals}
    first = results[0]
    return {"schema": SEEDS_SCHEMA, "method": first.method, "suite": first.suite, "num_samples": first.num_samples,
            "seeds": list(seeds), "runs": [r.run_dir for r in results], "metrics": metrics,
            "std": "sample standard deviation over seeds (ddof = 1)",
            "comparable": all(r.comparable for r in results)}


def seeds_table(combined: dict[str, Any]) -> str:
    """Plain-text table: mean +- std over seeds per metric key."""
    m = combined["metrics"]
    width = max([len(k) for k in m] + [6])
    lines = [f"{combined['method']} on {combined['suite']}: {combined['num_samples']} samples x seeds "
             f"{', '.join(map(str, combined['seeds']))}",
             f"  {'metric':<{width}}  mean +- std over seeds", f"  {'-' * width}  ----------------------"]
    for k, v in m.items():
        lines.append(f"  {k:<{width}}  {v['mean']:.4f} +- {v['std']:.4f}")
    return "\n".join(lines)


def run_seeds(request: Any, session: Any, seeds: Sequence[int]) -> dict[str, Any] | None:
    """Run ``request`` once per seed (``<run>-seed<k>``), write and return the combined record (None on ranks
    other than the main one)."""
    from bench.run_dir import atomic_write_bytes
    from bench.runner import Run

    base = request.run_dir().name
    results = []
    for seed in seeds:
        res = Run(replace(request, seed=seed, run_name=f"{base}-seed{seed}"), session).execute()
        results.append(res)
    if any(r is None for r in results):
        return None
    combined = combine(results, seeds)
    path = Path(request.out) / f"{base}-seeds" / SEEDS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(combined, indent=2) + "\n").encode())
    combined["path"] = str(path)
    return combined
