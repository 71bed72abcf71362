"""Intervals (grouped jackknife, bench.bootstrap): the replicate-context contract, the interval checked by hand,
leaving out whole groups or prompts, FID's reused reference, text features from the recording, bad --bootstrap
values, and the smoke run's results.json and table. Coverage at realistic sizes: test_interval_coverage.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.bootstrap import Recording, draws, intervals, jackknife_interval
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


def test_jackknife_interval_by_hand():
    from scipy.stats import t

    gen = np.random.default_rng(0).normal(size=(40, 1))
    ctx = Ctx(gen)
    rec = Recording(ctx)
    values = Mean().compute(rec).values
    got = intervals(Mean(), rec, values, b=8, seed=3)
    drawn = draws(40, None, "sample", 8, 3)
    left = [np.setdiff1d(np.arange(40), idx) for idx, _ in drawn]
    assert sorted(np.concatenate(left)) == list(range(40)) and {len(x) for x in left} == {5}  # a partition
    for key, rows in (("mean", gen[:, 0]), ("text", np.arange(40.0))):  # prompt i's text feature is i
        reps = np.array([rows[idx].mean() for idx, _ in drawn])
        se = np.sqrt(7 / 8 * ((reps - reps.mean()) ** 2).sum())
        half = t.ppf(0.975, 7) * se
        assert got["ci95"][key] == pytest.approx([values[key] - half, values[key] + half], rel=1e-12)
    assert ctx.text_calls == 1  # replicates take text features from the recording: no new text pass
    boot = got["bootstrap"]
    assert {k: boot[k] for k in ("B", "groups", "seed", "unit", "method")} == {
        "B": 8, "groups": 8, "seed": 3, "unit": "sample", "method": "grouped jackknife, t interval"}
    assert boot["covers"]["mean"].startswith("mean over fresh generated samples")
    assert intervals(Mean(), rec, values, b=8, seed=3)["ci95"] == got["ci95"]  # seeded
    assert intervals(Mean(), rec, values, b=8, seed=4)["ci95"] != got["ci95"]


def test_jackknife_interval_contains_the_point_and_rejects_too_few_groups():
    from bench.errors import BenchError

    (lo, hi), se = jackknife_interval(3.0, [1.0, 5.0, 2.0])
    assert lo < 3.0 < hi and se > 0
    rec = Recording(Ctx(np.ones((5, 1))))
    for b in (1, -1):
        with pytest.raises(BenchError, match="at least 2 jackknife groups"):
            intervals(Mean(), rec, {"mean": 1.0}, b=b)


@pytest.mark.parametrize("value", ["1", "-1"])
def test_bootstrap_below_two_is_one_line_exit_2(value, tmp_path):
    from helpers import run_cli

    rc, _out, err = run_cli("run", "--method", "tiny", "--suite", "smoke", "--limit", "2", "--device", "cpu",
                            "--bootstrap", value, "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "at least 2 jackknife groups" in err
    assert not list(tmp_path.iterdir()), "nothing is generated"


def test_opt_out_zero_replicates_and_too_few_samples_to_leave_any_out():
    from bench.metrics import fid as fidmod

    class NoBoot(Mean):
        bootstrap = False

    rec = Recording(Ctx(np.ones((5, 1))))
    assert intervals(NoBoot(), rec, {"mean": 1.0}, b=10) is None
    assert intervals(Mean(), rec, {"mean": 1.0}, b=0) is None
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 3))
    two = Recording(Ctx(rng.normal(size=(2, 3)), ref))  # a replicate would keep 1 sample: no interval
    assert intervals(fidmod.FID(weights="random"), two, {"fid": 1.0}, b=10) is None
    assert intervals(Mean(), Recording(Ctx(np.arange(2.0)[:, None])), {"mean": 0.5, "text": 0.5}, b=10) is None
    three = Recording(Ctx(rng.normal(size=(3, 3)), ref))
    assert intervals(fidmod.FID(weights="random"), three, {"fid": 1.0}, b=10)["bootstrap"]["groups"] == 3


@pytest.mark.parametrize("unit", ["group", "prompt"])
def test_draws_leave_out_whole_groups_or_prompts(unit):
    labels = ["a", "a", "b", "b", "b", "c", "d"]
    groups = labels if unit == "group" else ["x"] * 7
    prompts = labels if unit == "prompt" else [str(i) for i in range(7)]
    drawn = draws(7, groups, unit, 3, 0, prompts)
    assert len(drawn) == 3  # the 4 labels in 3 parts
    left_out = []
    for idx, kept_groups in drawn:
        out = sorted(set(labels) - {labels[i] for i in idx})
        assert out and all(labels[i] not in out for i in idx)  # no sample of a left-out label is kept
        assert sorted(idx) == [i for i, lab in enumerate(labels) if lab not in out]
        assert kept_groups == [groups[i] for i in idx]
        left_out += out
    assert sorted(left_out) == ["a", "b", "c", "d"]  # each label left out exactly once


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
    assert lo <= res["metrics"]["fid"] <= hi
    covers = info["precision_recall"]["bootstrap"]["covers"]
    assert covers["recall"].startswith("conditional") and not covers["precision"].startswith("conditional")
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert "conditional" in rows["recall"] and "conditional" not in rows["precision"]


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
    point = metric.compute(rec).values["cmmd"]
    got = intervals(metric, rec, {"cmmd": point}, b=6, seed=1)["ci95"]["cmmd"]
    assert got == pytest.approx(jackknife_interval(point, [b["cmmd"] for b in batch])[0])


def test_manifold_metrics_intervals_from_per_sample_decisions():
    """Precision and density leave out the generated samples of each draw, recall and coverage the reference
    samples of a partition into as many groups, with the other manifold fixed (recall and coverage say their
    interval is conditional); checked against prdc-style by-hand terms."""
    from bench.metrics.precision_recall import CONDITIONAL, DensityCoverage, PrecisionRecall, _reference_kept

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
    drawn = draws(50, None, "sample", 10, 7)
    kept = _reference_kept(60, drawn)
    left = [np.setdiff1d(np.arange(60), k) for k in kept]
    assert sorted(np.concatenate(left)) == list(range(60)) and {len(x) for x in left} == {6}
    for metric, by_hand, ref_key in (
            (PrecisionRecall(weights="random"),
             lambda idx, ridx: {"precision": prec[idx].mean(), "recall": recall[ridx].mean()}, "recall"),
            (DensityCoverage(weights="random"),
             lambda idx, ridx: {"density": count[idx].sum() / (5 * len(idx)), "coverage": cover[ridx].mean()},
             "coverage")):
        values = metric.compute(Recording(ctx)).values
        assert values == pytest.approx(by_hand(np.arange(50), np.arange(60)))
        reps = metric.bootstrap_values(Recording(ctx), drawn)
        want = [by_hand(idx, ridx) for (idx, _), ridx in zip(drawn, kept, strict=True)]
        assert [r[k] for r in reps for k in sorted(r)] == pytest.approx([w[k] for w in want for k in sorted(w)])
        got = intervals(metric, Recording(ctx), values, b=10, seed=7)
        for key in values:
            assert got["ci95"][key] == pytest.approx(jackknife_interval(values[key], [w[key] for w in want])[0])
        assert got["bootstrap"]["covers"][ref_key] == CONDITIONAL
        other = next(k for k in values if k != ref_key)
        assert got["bootstrap"]["covers"][other] != CONDITIONAL
    # fewer reference samples than groups: every reference sample its own group, the other replicates left out
    few = _reference_kept(4, drawn)
    assert [len(k) for k in few[:4]] == [3] * 4 and few[4:] == [None] * 6


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
    multiset = rng.integers(0, 40, 40)  # the downdate holds for any counts, duplicates included
    want = fidmod.frechet_distance(*fidmod.feature_statistics(gen[multiset]), *fidmod.feature_statistics(ref))
    assert fidmod.FID(weights="random").bootstrap_values(Recording(ctx), [(multiset, None)])[0]["fid"] == \
        pytest.approx(want, rel=1e-9)
    few = Ctx(gen[:3], ref)  # few samples (2 x 3 <= 6 features): the engine recomputes each replicate itself
    assert fidmod.FID(weights="random").bootstrap_values(Recording(few), draws(3, None, "sample", 3, 0)) is None
