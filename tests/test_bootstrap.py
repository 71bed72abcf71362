"""Bootstrap intervals: the resampled-context contract, percentiles checked by hand, group resampling, FID's
reused reference, text features from the recording, and the smoke run's results.json and table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.bootstrap import Recording, draws, intervals
from bench.metrics.base import FeatureSpec, Metric, MetricResult


class Ctx:
    def __init__(self, gen: np.ndarray, ref: np.ndarray | None = None, groups: list[str] | None = None) -> None:
        self.feats = {"generated": gen, "reference": ref}
        self.prompts = [f"p{i}" for i in range(len(gen))]
        self.groups, self.generator, self.device = groups, None, "cpu"
        self.text_calls = 0

    def image_features(self, spec: Any, which: str) -> np.ndarray:
        return self.feats[which]

    def text_features(self, spec: Any, texts: list[str]) -> np.ndarray:
        self.text_calls += 1
        return np.array([[float(t[1:])] for t in texts])

    def extractor(self, spec: Any) -> Any:
        return None


SPEC = FeatureSpec("toy", {"weights": "random"})


class Mean(Metric):
    keys = ("mean", "text")

    def compute(self, ctx: Any) -> MetricResult:
        gen = ctx.image_features(SPEC, "generated")
        txt = ctx.text_features(SPEC, list(ctx.prompts))
        return MetricResult({"mean": float(gen.mean()), "text": float(txt.mean())})


def test_percentile_interval_by_hand():
    gen = np.random.default_rng(0).normal(size=(40, 1))
    ctx = Ctx(gen)
    rec = Recording(ctx)
    values = Mean().compute(rec).values
    got = intervals(Mean(), rec, values, b=50, seed=3)
    means = [gen[idx].mean() for idx, _ in draws(40, None, "sample", 50, 3)]
    assert got["ci95"]["mean"] == pytest.approx([np.percentile(means, 2.5), np.percentile(means, 97.5)])
    # text features of resampled prompts come from the recording: no new text pass, same rows as the samples
    texts = [np.mean([float(i) for i in idx]) for idx, _ in draws(40, None, "sample", 50, 3)]
    assert got["ci95"]["text"] == pytest.approx([np.percentile(texts, 2.5), np.percentile(texts, 97.5)])
    assert ctx.text_calls == 1
    assert got["bootstrap"] == {**got["bootstrap"], "B": 50, "seed": 3, "unit": "sample", "method": "percentile"}
    assert intervals(Mean(), rec, values, b=50, seed=3)["ci95"] == got["ci95"]  # seeded
    assert intervals(Mean(), rec, values, b=50, seed=4)["ci95"] != got["ci95"]


def test_opt_out_and_zero_replicates():
    class NoBoot(Mean):
        bootstrap = False

    rec = Recording(Ctx(np.ones((5, 1))))
    assert intervals(NoBoot(), rec, {"mean": 1.0}, b=10) is None
    assert intervals(Mean(), rec, {"mean": 1.0}, b=0) is None


def test_group_draws_keep_whole_groups_and_relabel():
    groups = ["a", "a", "b", "b", "b", "c"]
    for idx, labels in draws(6, groups, "group", 20, 0):
        assert len(set(labels)) == 3  # three groups drawn, each with its own label even when repeated
        for lab in set(labels):
            members = idx[[i for i, x in enumerate(labels) if x == lab]]
            assert sorted(members) == [i for i, g in enumerate(groups) if g == lab.split("#")[0]]


def test_fid_replicates_reuse_the_reference_and_equal_direct_fid():
    from bench.metrics import fid as fidmod

    rng = np.random.default_rng(1)
    gen, ref = rng.normal(size=(60, 8)), rng.normal(size=(70, 8)) + 0.2
    spec = {"kind": "toy"}
    want = fidmod.frechet_distance(*fidmod.feature_statistics(gen), *fidmod.feature_statistics(ref))
    assert fidmod.frechet_to_reference(gen, ref, spec) == pytest.approx(want, rel=1e-9)
    first = fidmod._REFERENCE["entry"][2]
    idx = rng.integers(0, 60, 60)
    want = fidmod.frechet_distance(*fidmod.feature_statistics(gen[idx]), *fidmod.feature_statistics(ref))
    assert fidmod.frechet_to_reference(gen[idx], ref, spec) == pytest.approx(want, rel=1e-9)
    assert fidmod._REFERENCE["entry"][2] is first  # the reference square root was computed once


def test_smoke_run_has_intervals_and_the_table_shows_them(smoke_run):
    from bench.report.console import _fmt, results_table

    res = smoke_run["results"]
    info = res["metric_info"]
    lo, hi = info["fid"]["ci95"]["fid"]
    assert lo <= hi and info["fid"]["bootstrap"]["B"] == 200
    for key in ("precision", "recall"):
        assert key in info["precision_recall"]["ci95"]
    assert "ci95" not in info["latency"]
    assert set(info["hps"]["ci95"]) >= {"hps"}
    table = results_table(res)
    assert "95% CI" in table and f"[{_fmt(lo)}, {_fmt(hi)}]" in table


def test_cmmd_batch_replicates_equal_one_compute_per_resample(monkeypatch):
    import bench.metrics.distribution as dist
    from bench.bootstrap import Resampled

    monkeypatch.setattr(dist, "TILE", 7)
    rng = np.random.default_rng(5)
    gen, ref = rng.normal(size=(23, 6)), rng.normal(size=(19, 6)) + 0.4
    metric = dist.CMMD(weights="random", size="tiny")
    metric.features = lambda ctx: (ctx.image_features(None, "generated"), ctx.image_features(None, "reference"))
    rec = Recording(Ctx(gen, ref))
    drawn = draws(23, None, "sample", 6, 1)
    batch = metric.bootstrap_values(rec, drawn)
    one_by_one = [metric.compute(Resampled(rec, idx, g)).values for idx, g in drawn]
    assert [b["cmmd"] for b in batch] == pytest.approx([o["cmmd"] for o in one_by_one], rel=1e-9)
    got = intervals(metric, rec, metric.compute(rec).values, b=6, seed=1)["ci95"]["cmmd"]
    assert got == pytest.approx([np.percentile([b["cmmd"] for b in batch], q) for q in (2.5, 97.5)])


def test_manifold_metrics_bootstrap_from_per_sample_decisions():
    """Precision and density resample the generated samples (the draws), recall and coverage the reference
    samples (seeded by each draw), with the other manifold fixed; checked against prdc-style by-hand terms."""
    from bench.metrics.manifold import DensityCoverage, PrecisionRecall, _reference_draw

    rng = np.random.default_rng(5)
    ref, gen = rng.normal(size=(60, 6)), rng.normal(0.3, 1.1, size=(50, 6))
    d_rr = ((ref[:, None] - ref[None]) ** 2).sum(-1)
    d_gg = ((gen[:, None] - gen[None]) ** 2).sum(-1)
    d_rg = ((ref[:, None] - gen[None]) ** 2).sum(-1)
    r3, g3, r5 = np.sort(d_rr, 1)[:, 3], np.sort(d_gg, 1)[:, 3], np.sort(d_rr, 1)[:, 5]
    prec = (d_rg <= r3[:, None]).any(0)
    recall = (d_rg <= g3[None, :]).any(1)
    count = (d_rg < r5[:, None]).sum(0)
    cover = (d_rg.min(1) < r5)
    ctx = Ctx(gen, ref)
    drawn = draws(50, None, "sample", 30, 7)
    for metric, by_hand in ((PrecisionRecall(weights="random"),
                             lambda idx, ridx: {"precision": prec[idx].mean(), "recall": recall[ridx].mean()}),
                            (DensityCoverage(weights="random"),
                             lambda idx, ridx: {"density": count[idx].sum() / (5 * len(idx)),
                                                "coverage": cover[ridx].mean()})):
        values = metric.compute(Recording(ctx)).values
        assert values == pytest.approx(by_hand(np.arange(50), np.arange(60)))
        reps = metric.bootstrap_values(Recording(ctx), drawn)
        want = [by_hand(idx, _reference_draw(60, idx)) for idx, _ in drawn]
        assert [r[k] for r in reps for k in sorted(r)] == pytest.approx([w[k] for w in want for k in sorted(w)])
        got = intervals(metric, Recording(ctx), values, b=30, seed=7)
        for key in values:
            col = [w[key] for w in want]
            assert got["ci95"][key] == pytest.approx([np.percentile(col, 2.5), np.percentile(col, 97.5)])
    assert not np.array_equal(_reference_draw(60, drawn[0][0]), _reference_draw(60, drawn[1][0]))


def test_fid_batch_replicates_equal_fid_of_the_resampled_rows():
    from bench.metrics import fid as fidmod

    rng = np.random.default_rng(2)
    gen, ref = rng.normal(size=(40, 6)), rng.normal(size=(50, 6)) + 0.3
    ctx = Ctx(gen, ref)
    drawn = draws(40, None, "sample", 12, 9)
    reps = fidmod.FID(weights="random").bootstrap_values(Recording(ctx), drawn)
    want = [fidmod.frechet_distance(*fidmod.feature_statistics(gen[idx]), *fidmod.feature_statistics(ref))
            for idx, _ in drawn]
    assert [r["fid"] for r in reps] == pytest.approx(want, rel=1e-9)
    few = Ctx(gen[:3], ref)  # few samples (2 x 3 <= 6 features): the engine recomputes each replicate itself
    assert fidmod.FID(weights="random").bootstrap_values(Recording(few), draws(3, None, "sample", 3, 0)) is None
