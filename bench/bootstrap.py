"""95% intervals of every metric, computed on the run's cached features (no extra network pass): a grouped
(delete-a-group) jackknife with a Student-t interval.

What an interval covers: the mean of the metric's n-sample value over fresh draws of the generated samples (new
seeds, same prompts and method), with the reference set fixed: it is the run's own sampling noise, not an
interval for the metric's infinite-sample value (FID, FD_DINOv2 and CMMD are biased upwards at finite n; that
bias is part of what is being estimated, the same for every method at the same n). Two keys are conditional
instead: recall and coverage jackknife the reference samples' decisions with the generated k-NN manifold fixed
(they cover the mean over fresh reference draws given this generated set, and miss the generated manifold's
own variation: narrower than the spread over fresh seeds). Each result says what it covers (``covers``).

The method: the G groups of a seeded random partition of the generated samples (or of the distinct prompts, for
``bootstrap_unit = "prompt"``), G = min(B, n); replicate g computes the metric with group g left out. With
theta the point value and theta_g the replicates, se^2 = (G - 1) / G * sum_g (theta_g - mean theta_g)^2 and the
interval is theta +- t_{0.975, G-1} se: it always contains the point value. Leaving samples out, unlike
resampling with replacement, duplicates none: the bootstrap's duplicates bias FID, FD_DINOv2 and CMMD (an
interval of FID 10.5-10.9 around a value of 8.0 at 256-d features and n = 3,750). Coverage is checked by
simulation at realistic feature-dimension to sample-count ratios (``tests/test_interval_coverage.py``).

The contract: the engine computes a metric once on the run's context, through a :class:`Recording` that keeps
the text features the metric asked for; then it calls the same ``metric.compute`` on G contexts
(:class:`Resampled`) holding the generated samples, prompts and groups that are kept, reference features and
every network fixed, text features looked up from the recording.

* A metric opts out with ``bootstrap = False`` (latency: nothing to resample; KID and the Inception Score
  already report their own spread over subsets / splits).
* ``bootstrap_unit = "prompt"`` (``"group"``) leaves out all samples of whole prompts (suite groups) instead
  of samples (the diversity metrics, whose values are per-prompt means).
* A metric may compute all replicates at once instead (:meth:`bench.metrics.base.Metric.bootstrap_values`):
  FID and FD_DINOv2 (a covariance downdate and one eigenvalue problem per replicate, reference fixed), CMMD (one
  pass over its kernel matrices), precision/recall and density/coverage (from their per-sample decisions,
  computed once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Default number of jackknife groups (fewer when there are fewer samples) and seed of the partition.
DEFAULT_B = 200
DEFAULT_SEED = 0
#: What an interval covers, unless the metric says otherwise for a key (:attr:`Metric.interval_covers`).
COVERS = "mean over fresh generated samples (new seeds), reference fixed"
METHOD = "grouped jackknife, t interval"


def check_groups(b: int) -> None:
    """One line, exit 2, for a ``--bootstrap`` value that gives no interval (0 turns intervals off)."""
    if b != 0 and b < 2:
        from bench.errors import BenchError

        raise BenchError(f"--bootstrap {b}: an interval needs at least 2 jackknife groups (default {DEFAULT_B}); "
                         "use 0 for no intervals")


class Recording:
    """A metric context that passes everything through and remembers text features by (network, text)."""

    def __init__(self, ctx: Any) -> None:
        self.base = ctx
        self.texts: dict[str, dict[str, np.ndarray]] = {}
        self.images: dict[tuple[str, str], np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def image_features(self, spec: Any, which: str) -> np.ndarray:
        """The run's features, asked of the run once per (network, which): replicates reuse them."""
        key = (_spec_key(spec), which)
        if key not in self.images:
            self.images[key] = self.base.image_features(spec, which)
        return self.images[key]

    def text_features(self, spec: Any, texts: Sequence[str]) -> np.ndarray:
        feats = self.base.text_features(spec, texts)
        table = self.texts.setdefault(_spec_key(spec), {})
        for t, row in zip(texts, feats, strict=True):
            table[t] = row
        return feats


def _spec_key(spec: Any) -> str:
    """Everything a feature spec's features depend on: the network and its options, and its own transform."""
    import json

    if spec is None or not hasattr(spec, "extractor_spec"):
        return json.dumps(spec, sort_keys=True, default=str)
    transform = spec.transform.as_dict() if spec.transform is not None else None
    return json.dumps([spec.extractor_spec(), transform], sort_keys=True, default=str)


class Resampled:
    """The context of one replicate: the generated samples at ``idx`` (with their prompts and groups)."""

    def __init__(self, rec: Recording, idx: np.ndarray, groups: list[str] | None) -> None:
        self.rec = rec
        self.idx = idx
        self._groups = groups
        base = rec.base
        self.prompts = [base.prompts[i] for i in idx]
        self.generator = base.generator
        self.device = base.device

    @property
    def groups(self) -> list[str] | None:
        return self._groups

    def extractor(self, spec: Any) -> Any:
        return self.rec.base.extractor(spec)

    def image_features(self, spec: Any, which: str) -> np.ndarray:
        feats = self.rec.image_features(spec, which)
        return feats[self.idx] if which == "generated" else feats

    def text_features(self, spec: Any, texts: Sequence[str]) -> np.ndarray:
        table = self.rec.texts.get(_spec_key(spec), {})
        if all(t in table for t in texts):
            return np.stack([table[t] for t in texts])
        return self.rec.base.text_features(spec, texts)


def partition(n: int, b: int, seed: int) -> list[np.ndarray]:
    """A seeded random partition of ``range(n)`` into min(b, n) groups of sizes differing by at most one."""
    perm = np.random.default_rng([seed, n]).permutation(n)
    return [np.sort(g) for g in np.array_split(perm, min(b, n))]


def draws(n: int, groups: list[str] | None, unit: str, b: int, seed: int,
          prompts: list[str] | None = None) -> list[tuple[np.ndarray, list[str] | None]]:
    """The jackknife's replicates: (indices of the samples kept, their group labels), one per left-out group
    of :func:`partition`; ``unit="group"`` (``"prompt"``) partitions the distinct group labels (``prompts``)
    and leaves out all samples of each part."""
    units = groups if unit == "group" else prompts if unit == "prompt" else None
    if units:
        labels = sorted(set(units))
        arr = np.asarray(units)
        out: list[tuple[np.ndarray, list[str] | None]] = []
        for left in partition(len(labels), b, seed):
            idx = np.flatnonzero(~np.isin(arr, [labels[i] for i in left]))
            out.append((idx, [groups[i] for i in idx] if groups else None))
        return out
    keep = np.ones(n, bool)
    out = []
    for left in partition(n, b, seed):
        keep[:] = True
        keep[left] = False
        idx = np.flatnonzero(keep)
        out.append((idx, [groups[i] for i in idx] if groups else None))
    return out


def jackknife_interval(point: float, replicates: Sequence[float], level: float = 0.95) -> tuple[list[float], float]:
    """([lo, hi], se): ``point`` +- t_{(1 + level) / 2, G - 1} se, with the grouped jackknife's
    se^2 = (G - 1) / G * sum (r_g - mean r)^2 over the G leave-one-group-out replicates ``r``."""
    from scipy.stats import t

    r = np.asarray(replicates, np.float64)
    g = len(r)
    se = float(np.sqrt((g - 1) / g * ((r - r.mean()) ** 2).sum()))
    half = float(t.ppf((1 + level) / 2, g - 1)) * se
    return [float(point) - half, float(point) + half], se


def intervals(metric: Any, rec: Recording, values: dict[str, float], b: int = DEFAULT_B,
              seed: int = DEFAULT_SEED) -> dict[str, Any] | None:
    """``{"ci95": {key: [lo, hi]}, "bootstrap": {...}}`` for a metric computed on ``rec`` with point ``values``;
    None when the metric opts out, ``b`` is 0, there are fewer than 2 groups, or a replicate would keep fewer
    than 2 generated samples or fewer than the metric needs (:meth:`Metric.min_samples`)."""
    check_groups(b)
    n = len(rec.base.prompts)
    if b == 0 or n < 2 or not metric.bootstrap:
        return None
    unit = metric.bootstrap_unit
    drawn = draws(n, rec.base.groups, unit, b, seed, list(rec.base.prompts))
    if len(drawn) < 2 or min(len(idx) for idx, _ in drawn) < max(2, metric.min_samples().generated):
        return None
    start = time.perf_counter()
    reps: dict[str, list[float]] = {k: [] for k in values}
    batch = metric.bootstrap_values(rec, drawn)
    results = batch if batch is not None else (
        metric.compute(Resampled(rec, idx, groups)).values for idx, groups in drawn)
    for got in results:
        for k in reps:
            if k in got and np.isfinite(got[k]):
                reps[k].append(float(got[k]))
    ci, se = {}, {}
    for k, v in reps.items():
        if len(v) >= 2 and np.isfinite(values[k]):
            ci[k], se[k] = jackknife_interval(values[k], v)
    covers = {k: metric.interval_covers.get(k, COVERS) for k in ci}
    return {"ci95": ci, "bootstrap": {"B": b, "groups": len(drawn), "seed": seed, "unit": unit, "method": METHOD,
                                      "se": se, "covers": covers, "seconds": round(time.perf_counter() - start, 3)}}


def attach_interval(info: dict[str, Any], metric: Any, rec: Recording, values: dict[str, float],
                    keys: dict[str, str], b: int, seed: int) -> None:
    """Add ``ci95`` (under the results keys ``keys[k]``) and ``bootstrap`` to a metric's ``metric_info`` entry."""
    got = intervals(metric, rec, values, b, seed)
    if got is not None:
        info["ci95"] = {keys.get(k, k): v for k, v in got["ci95"].items()}
        boot = got["bootstrap"]
        info["bootstrap"] = {**boot, **{part: {keys.get(k, k): v for k, v in boot[part].items()}
                                        for part in ("se", "covers")}}
