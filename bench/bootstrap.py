"""95% bootstrap intervals of every metric, computed on the run's cached features (no extra network pass).

The contract: the engine computes a metric once on the run's context, through a :class:`Recording` that keeps
the text features the metric asked for; then it calls the same ``metric.compute`` on ``B`` resampled contexts
(:class:`Resampled`): generated-image features, prompts and groups at indices drawn with replacement (seeded),
reference features and every network fixed, text features looked up from the recording. The interval of each
output key is the 2.5 and 97.5 percentiles of its ``B`` replicate values (percentile bootstrap).

* A metric opts out with ``bootstrap = False`` (latency: nothing to resample; KID and the Inception Score
  already report their own spread over subsets / splits).
* ``bootstrap_unit = "group"`` resamples whole groups (prompts) instead of samples, each drawn group relabelled
  so that a group drawn twice counts twice (the diversity metrics, whose values are per-prompt means).
* A metric may compute all replicates at once instead (:meth:`bench.metrics.base.Metric.bootstrap_values`):
  CMMD does, with one pass over its kernel matrices; precision/recall and density/coverage do from their
  per-sample decisions, computed once (their k-NN radii are not recomputed on resampled sets, where duplicated
  samples would collapse them).
* Cost: FID's replicates reuse the reference statistics and their square root (:func:`bench.metrics.fid.
  frechet_to_reference`), leaving one covariance and one eigenvalue problem per replicate; see the README.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Default number of replicates and seed of the draws.
DEFAULT_B = 200
DEFAULT_SEED = 0


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
    """The context of one replicate: generated samples at ``idx`` (with their prompts and groups)."""

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


def draws(n: int, groups: list[str] | None, unit: str, b: int, seed: int) -> list[tuple[np.ndarray, list[str] | None]]:
    """``b`` resamples: (sample indices, their group labels). ``unit="group"``: whole groups drawn with
    replacement, the k-th drawn group relabelled ``<label>#<k>``."""
    rng = np.random.default_rng([seed, n])
    out: list[tuple[np.ndarray, list[str] | None]] = []
    if unit == "group" and groups:
        labels = sorted(set(groups))
        members = {g: np.flatnonzero(np.asarray(groups) == g) for g in labels}
        for _ in range(b):
            picked = rng.integers(0, len(labels), len(labels))
            idx = np.concatenate([members[labels[p]] for p in picked])
            new = [f"{labels[p]}#{k}" for k, p in enumerate(picked) for _ in members[labels[p]]]
            out.append((idx, new))
        return out
    for _ in range(b):
        idx = rng.integers(0, n, n)
        out.append((idx, [groups[i] for i in idx] if groups else None))
    return out


def intervals(metric: Any, rec: Recording, values: dict[str, float], b: int = DEFAULT_B,
              seed: int = DEFAULT_SEED) -> dict[str, Any] | None:
    """``{"ci95": {key: [lo, hi]}, "bootstrap": {...}}`` for a metric computed on ``rec`` with point ``values``;
    None when the metric opts out, ``b`` is 0 or there are fewer than 2 samples."""
    n = len(rec.base.prompts)
    if b <= 0 or n < 2 or not metric.bootstrap:
        return None
    unit = metric.bootstrap_unit
    start = time.perf_counter()
    reps: dict[str, list[float]] = {k: [] for k in values}
    drawn = draws(n, rec.base.groups, unit, b, seed)
    batch = metric.bootstrap_values(rec, drawn)
    results = batch if batch is not None else (
        metric.compute(Resampled(rec, idx, groups)).values for idx, groups in drawn)
    for got in results:
        for k in reps:
            if k in got and np.isfinite(got[k]):
                reps[k].append(float(got[k]))
    ci = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in reps.items() if v}
    return {"ci95": ci, "bootstrap": {"B": b, "seed": seed, "unit": unit, "method": "percentile",
                                      "seconds": round(time.perf_counter() - start, 3)}}


def attach_interval(info: dict[str, Any], metric: Any, rec: Recording, values: dict[str, float],
                    keys: dict[str, str], b: int, seed: int) -> None:
    """Add ``ci95`` (under the results keys ``keys[k]``) and ``bootstrap`` to a metric's ``metric_info`` entry."""
    got = intervals(metric, rec, values, b, seed)
    if got is not None:
        info["ci95"] = {keys.get(k, k): v for k, v in got["ci95"].items()}
        info["bootstrap"] = got["bootstrap"]
