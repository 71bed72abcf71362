"""The diversity suite and metric: Vendi score against the vendi-score package and its closed cases, pairwise
distance by brute force, the P x S layout, a run end to end; precision/recall on any registered network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.errors import BenchError
from bench.metrics.diversity import mean_pairwise_cosine_distance, vendi_score


def test_vendi_equals_the_vendi_score_package():
    from vendi_score import vendi

    rng = np.random.default_rng(0)
    for n, d in ((8, 32), (12, 5)):
        x = rng.normal(size=(n, d))
        theirs = vendi.score_dual(x, normalize=True)
        assert vendi_score(x) == pytest.approx(float(theirs), rel=1e-8)


def test_vendi_closed_cases():
    row = np.random.default_rng(1).normal(size=(1, 16))
    assert vendi_score(np.repeat(row, 8, axis=0)) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(np.eye(8, 20) * 3.0) == pytest.approx(8.0, rel=1e-12)


def test_pairwise_distance_by_brute_force():
    x = np.random.default_rng(2).normal(size=(7, 9))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    want = np.mean([1 - u[i] @ u[j] for i in range(7) for j in range(i + 1, 7)])
    assert mean_pairwise_cosine_distance(x) == pytest.approx(want, rel=1e-12)
    assert mean_pairwise_cosine_distance(np.eye(4)) == pytest.approx(1.0)


def test_suite_layout_from_a_prompt_file(tmp_path):
    from bench.suites.diversity import DiversitySuite

    f = tmp_path / "p.txt"
    f.write_text("a cat\na dog\na bus\n")
    items = DiversitySuite(prompts=str(f), num_prompts=2, seeds_per_prompt=3).prompts()
    assert [(it.index, it.prompt, it.group) for it in items] == [
        (0, "a cat", "0"), (1, "a cat", "0"), (2, "a cat", "0"), (3, "a dog", "1"), (4, "a dog", "1"),
        (5, "a dog", "1")]
    with pytest.raises(BenchError, match="fewer than num_prompts=5"):
        DiversitySuite(prompts=str(f), num_prompts=5).prompts()


def test_suite_default_prompts_are_the_coco30k_selection(coco_root):
    from bench.suites.coco import Coco30kSuite
    from bench.suites.diversity import DiversitySuite

    items = DiversitySuite(data_root=str(coco_root), num_prompts=4, seeds_per_prompt=2).prompts()
    coco = [it.prompt for it in Coco30kSuite(data_root=str(coco_root), num_prompts=12).prompts()[:4]]
    assert [it.prompt for it in items[::2]] == coco


def test_diversity_run_end_to_end(tmp_path, one_thread):
    from bench.cli import main

    f = tmp_path / "p.txt"
    f.write_text("a red cube\na blue sphere\n")
    rc = main(["run", "--method", "tiny", "--suite", "diversity", "--prompts", str(f), "--suite-args",
               "num_prompts=2,seeds_per_prompt=3", "--metric-args", "diversity.weights=random,diversity.size=tiny",
               "--out", str(tmp_path / "runs"), "--device", "cpu", "--bootstrap", "20"])
    assert rc == 0
    res = json.loads((tmp_path / "runs" / "diversity-tiny" / "results.json").read_text())
    assert 1.0 <= res["metrics"]["vendi"] <= 3.0 and 0.0 <= res["metrics"]["pairwise_distance"] <= 2.0
    info = res["metric_info"]["diversity"]
    assert info["prompts"] == 2 and info["images_per_prompt"] == [3]
    assert info["bootstrap"]["unit"] == "prompt" and info["bootstrap"]["B"] == 20
    lo, hi = info["ci95"]["vendi"]
    assert lo <= res["metrics"]["vendi"] + 1e-9 and hi >= lo


def test_diversity_needs_repeated_prompts():
    from bench.metrics.diversity import Diversity

    class Ctx:
        prompts, groups = ["a", "b"], None

        def image_features(self, spec, which):
            return np.eye(2)

    with pytest.raises(BenchError, match="at least 2 images of one prompt"):
        Diversity(weights="random").compute(Ctx())


def test_precision_recall_on_any_registered_network(tmp_path, toy, one_thread):
    from bench.cli import main
    from bench.metrics.precision_recall import PrecisionRecall

    with pytest.raises(BenchError, match="did you mean 'inception'"):
        PrecisionRecall(features="incepton")
    rc = main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "6", "--metrics", "precision_recall",
               "--metric-args", "precision_recall.features=toy", "--out", str(tmp_path), "--device", "cpu",
               "--bootstrap", "0"])
    assert rc == 0
    res = json.loads((tmp_path / "smoke-tiny" / "results.json").read_text())
    assert res["metric_info"]["precision_recall"]["features"] == "toy"
    assert 0.0 <= res["metrics"]["precision"] <= 1.0 and "ci95" not in res["metric_info"]["precision_recall"]


def test_diversity_groups_by_prompt_whatever_the_suite_groups():
    """On a suite whose groups are styles (hpsv2), each prompt's images are scored together, not each style's."""
    from bench.metrics.diversity import Diversity

    rng = np.random.default_rng(4)
    feats = rng.normal(size=(6, 5))

    class Ctx:
        prompts = ["a cat", "a dog", "a cat", "a dog", "a cat", "a bus"]
        groups = ["anime", "anime", "photo", "photo", "paintings", "paintings"]

        def image_features(self, spec, which):
            return feats

    result = Diversity(weights="random").compute(Ctx())
    cat, dog = feats[[0, 2, 4]], feats[[1, 3]]
    assert result.values["vendi"] == pytest.approx(np.mean([vendi_score(cat), vendi_score(dog)]), rel=1e-12)
    assert result.values["pairwise_distance"] == pytest.approx(
        np.mean([mean_pairwise_cosine_distance(cat), mean_pairwise_cosine_distance(dog)]), rel=1e-12)
    assert result.info["prompts"] == 2 and result.info["images_per_prompt"] == [2, 3]


def test_diversity_with_one_sample_stops_before_generating(tmp_path):
    from helpers import run_cli

    rc, _out, err = run_cli("run", "--method", "tiny", "--suite", "diversity", "--limit", "1", "--metrics",
                            "diversity", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "needs at least 2 generated samples" in err
    assert not list(tmp_path.iterdir()), "nothing is generated"
