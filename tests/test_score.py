"""``bench score A B`` against clean-fid's ``compute_fid`` on the same folders with the same (seeded) network;
``bench score A A`` is 0; reference statistics exported, imported and refused by their provenance; an ADM
reference batch is scored by its images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run_cli
from test_metrics_fid import TinyFeatureNet, write_images

from bench.errors import BenchError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_inception(monkeypatch, tmp_path):
    """The Inception extractor's network replaced by a seeded 16-d stand-in (in a cache of its own)."""
    from bench.metrics.extractors import InceptionExtractor

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    net = TinyFeatureNet().eval()
    monkeypatch.setattr(InceptionExtractor, "build", lambda self: net)
    return net


def _score(tmp_path, *args: str) -> dict:
    code, out, err = run_cli("score", *args, "--out", str(tmp_path / "runs"), "--device", "cpu", "--json",
                             "--bootstrap", "0")
    assert code == 0, err
    return json.loads(out)


def test_score_equals_clean_fid_compute_fid_and_is_zero_for_one_set(tmp_path, tiny_inception):
    from cleanfid import fid as cfid

    write_images(tmp_path / "a", 30, 0, 0.0)
    write_images(tmp_path / "b", 36, 1, 40.0)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    expected = cfid.compute_fid(a, b, mode="clean", custom_feat_extractor=tiny_inception, batch_size=64,
                                device=torch.device("cpu"), num_workers=0, verbose=False)
    got = _score(tmp_path, a, b, "--metric-args", "fid.weights=random", "--batch-size", "64")
    assert expected > 0.1
    # compute_fid averages float32 features in float32; that rounding is all that separates the two
    assert got["metrics"]["fid"] == pytest.approx(expected, rel=1e-5)
    feats = [cfid.get_folder_features(d, tiny_inception, num_workers=0, batch_size=64, device=torch.device("cpu"),
                                      mode="clean", verbose=False).astype(np.float64) for d in (a, b)]
    in_float64 = cfid.frechet_distance(*(x for f in feats for x in (f.mean(0), np.cov(f, rowvar=False))))
    assert got["metrics"]["fid"] == pytest.approx(in_float64, rel=1e-9)
    assert got["images"]["produced_by"] == "external" and got["num_samples"] == 30
    assert got["config"]["protocol"]["preprocess"] == {"size": None, "center_crop": False, "resample": "lanczos"}
    same = _score(tmp_path, a, a, "--metric-args", "fid.weights=random")
    assert abs(same["metrics"]["fid"]) < 1e-6 * expected
    # a protocol profile crops and resizes to 256 first: another number, recorded as such
    prof = _score(tmp_path, a, b, "--metric-args", "fid.weights=random", "--profile", "clean")
    assert prof["config"]["protocol"]["preprocess"]["size"] == 256 and prof["metrics"]["fid"] != got["metrics"]["fid"]


def test_statistics_export_import_and_provenance(tmp_path, tiny_inception):
    from cleanfid import fid as cfid

    write_images(tmp_path / "a", 24, 2, 0.0)
    write_images(tmp_path / "b", 28, 3, 30.0)
    a, b, stats = str(tmp_path / "a"), str(tmp_path / "b"), tmp_path / "b_stats.npz"
    pair = _score(tmp_path, a, b, "--metric-args", "fid.weights=random", "--export-stats", str(stats))
    with np.load(stats) as f:  # what clean-fid's get_reference_statistics reads from a custom statistics file
        mu, sigma = f["mu"], f["sigma"]
        record = json.loads(str(f["bench_provenance"]))
    feats = cfid.get_folder_features(b, tiny_inception, num_workers=0, batch_size=64, device=torch.device("cpu"),
                                     mode="clean", verbose=False)
    np.testing.assert_allclose(mu, feats.mean(0), rtol=1e-5)
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-4, atol=1e-7)
    assert record["count"] == 28 and record["network"]["weights"] == "random"
    imported = _score(tmp_path, a, str(stats), "--metric-args", "fid.weights=random")
    assert imported["metrics"]["fid_stats"] == pytest.approx(pair["metrics"]["fid"], rel=1e-9)
    assert imported["metric_info"]["fid_stats"]["reference_stats"]["written_by"] == "sbv2-bench"
    # the statistics of another network are refused in one line
    code, _, err = run_cli("score", a, str(stats), "--out", str(tmp_path / "runs"), "--device", "cpu")
    assert code == 2 and "was computed with the network" in err
    # clean-fid files are known by their names; only its clean mode with inception_v3, pretrained weights
    for name, why in (("ffhq_legacy_tensorflow_custom_na.npz", "only mode clean"),
                      ("ffhq_clean_clip_vit_b_32_custom_na.npz", "only mode clean"),
                      ("ffhq_clean_custom_na.npz", "pretrained Inception network"),
                      ("mystery.npz", "has no provenance")):
        np.savez_compressed(tmp_path / name, mu=mu, sigma=sigma)
        code, _, err = run_cli("score", a, str(tmp_path / name), "--metric-args", "fid.weights=random",
                               "--out", str(tmp_path / "runs"), "--device", "cpu")
        assert code == 2 and why in err, (name, err)


def test_adm_reference_batch_is_scored_by_its_images(tmp_path, tiny_inception):
    from PIL import Image

    from bench.reference_stats import read_stats

    write_images(tmp_path / "a", 20, 4, 0.0)
    paths = write_images(tmp_path / "b", 22, 5, 20.0)
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    batch = tmp_path / "VIRTUAL_ref.npz"
    np.savez(batch, arr_0=pixels, mu=np.zeros(2048), sigma=np.eye(2048))
    by_folder = _score(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--metric-args", "fid.weights=random")
    by_batch = _score(tmp_path, str(tmp_path / "a"), str(batch), "--metric-args", "fid.weights=random")
    assert by_batch["metrics"]["fid"] == pytest.approx(by_folder["metrics"]["fid"], rel=1e-12)
    # and one written by --export-batch: B's images as they are (profile clean-fid), in an arr_0 the evaluator reads
    exported = tmp_path / "exported.npz"
    _score(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--metric-args", "fid.weights=random",
           "--export-batch", str(exported))
    with np.load(exported) as f:
        np.testing.assert_array_equal(f["arr_0"], pixels)
        assert json.loads(str(f["bench_provenance"]))["count"] == 22
    with pytest.raises(BenchError, match="ADM evaluator batch"):
        read_stats(batch, {"kind": "inception", "weights": "pretrained", "seed": 0})
