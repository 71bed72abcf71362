"""FID, KID and Inception Score against closed forms and independent implementations (clean-fid, scipy,
torch-fidelity); the full image-to-FID pipeline against clean-fid's; the Inception weights offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.metrics.fid import (
    FID,
    KID,
    InceptionScore,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    kernel_inception_distance,
    reference_statistics,
)


def random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def test_frechet_closed_form_for_gaussians():
    d = 12
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    q = random_rotation(d, 1)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T  # commuting covariances: tr sqrt(S1 S2) = sum sqrt(a b)
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    # one-dimensional Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_frechet_equals_clean_fid_and_scipy_on_random_features():
    from cleanfid.fid import fid_from_feats
    from scipy import linalg

    rng = np.random.default_rng(2)
    f1 = rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64)) * 0.3
    f2 = rng.normal(size=(400, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 0.2
    ours = frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    assert ours == pytest.approx(fid_from_feats(f1, f2), rel=1e-9)
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    covmean = linalg.sqrtm(s1 @ s2).real
    by_scipy = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert ours == pytest.approx(by_scipy, rel=1e-9)
    assert frechet_distance_from_features(f1, f2) == pytest.approx(ours, rel=1e-9)


def test_frechet_zero_for_identical_sets_and_symmetric():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(300, 32))
    stats = feature_statistics(f)
    assert abs(frechet_distance(*stats, *stats)) < 1e-9 * np.trace(stats[1])
    g = rng.normal(size=(200, 32)) + 0.5
    other = feature_statistics(g)
    assert frechet_distance(*stats, *other) == pytest.approx(frechet_distance(*other, *stats), rel=1e-10)


def test_frechet_stable_for_singular_covariances():
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(10, 64)), rng.normal(size=(15, 64)) * 2  # rank 9 and 14 in 64 dimensions
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    ours = frechet_distance(m1, s1, m2, s2)
    assert np.isfinite(ours) and ours > 0
    # the exact value, from the n x n form (no D x D square root at all)
    assert ours == pytest.approx(frechet_distance_from_features(f1, f2), rel=1e-7)
    # and the limit of the regularised problem
    eps = 1e-10 * np.eye(64)
    from scipy import linalg

    reg = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm((s1 + eps) @ (s2 + eps)).real)
    assert ours == pytest.approx(reg, rel=1e-5)
    # zero covariances: only the means differ
    assert frechet_distance(m1, np.zeros((64, 64)), m2, np.zeros((64, 64))) == pytest.approx(((m1 - m2) ** 2).sum())


class TinyFeatureNet(torch.nn.Module):
    """A seeded stand-in for Inception: (B, 3, 299, 299) in [0, 255] -> (B, 16)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=13, stride=13)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x / 255.0 - 0.5)).mean(dim=(2, 3)) * 10


def write_images(folder: Path, n: int, seed: int, shift: float) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:72] / 48.0
    paths = []
    for i in range(n):
        c = rng.uniform(0, 1, (3, 1, 1))
        img = 100 + shift + 90 * np.sin(xx * rng.uniform(1, 9) + c) * np.cos(yy * rng.uniform(1, 9)) + c * 40
        img = np.clip(img.transpose(1, 2, 0) + rng.normal(0, 8, (48, 72, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


class FakeContext:
    """A metric context over fixed images, using the project's extractors and batching."""

    def __init__(self, images: dict[str, np.ndarray], prompts: list[str] | None = None,
                 groups: list[str] | None = None, replace_model: Any = None) -> None:
        self.images = images
        self.prompts = prompts or []
        self.groups = groups
        self.generator = None
        self.device = torch.device("cpu")
        self.replace_model = replace_model
        self.extractors: dict[str, Any] = {}

    def extractor(self, spec: dict[str, Any]) -> Any:
        from bench.metrics.extractors import build_extractor

        ext = build_extractor(spec)
        if ext.key() not in self.extractors:
            if self.replace_model is not None:
                ext._model = self.replace_model
            self.extractors[ext.key()] = ext.to(self.device)
        return self.extractors[ext.key()]

    def image_features(self, spec: dict[str, Any], which: str) -> np.ndarray:
        from bench.run_features import features_in_batches

        return features_in_batches(self.extractor(spec), self.images[which])

    def text_features(self, spec: dict[str, Any], texts: list[str]) -> np.ndarray:
        return self.extractor(spec).text_features(texts)


def load_preprocessed(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    from bench.metrics.preprocess import Preprocess

    pre = Preprocess()
    return np.stack([pre(Image.open(p).convert("RGB")) for p in paths])


def test_fid_pipeline_equals_clean_fid_compute_fid(tmp_path):
    """Same image folders, same (seeded) network in both: our crop + Lanczos 256 transform, clean-fid's clean
    resize, feature batching, statistics and reference cache give clean-fid's FID."""
    from cleanfid import fid as cfid

    from bench.metrics.preprocess import Preprocess
    from bench.run_features import FEATURE_BATCH

    gen_paths = write_images(tmp_path / "gen", 40, 0, 0.0)
    ref_paths = write_images(tmp_path / "ref", 48, 1, 40.0)
    net = TinyFeatureNet().eval()
    expected = cfid.compute_fid(str(tmp_path / "gen"), str(tmp_path / "ref"), mode="clean",
                                custom_feat_extractor=net, custom_image_tranform=Preprocess(), batch_size=FEATURE_BATCH,
                                device=torch.device("cpu"), num_workers=0, verbose=False)
    ctx = FakeContext({"generated": load_preprocessed(gen_paths), "reference": load_preprocessed(ref_paths)},
                      replace_model=net)
    metric = FID(weights="random")
    first = metric.compute(ctx).values["fid"]
    again = metric.compute(ctx).values["fid"]  # reference statistics now from the cache
    assert expected > 0.1
    assert first == pytest.approx(expected, rel=1e-6)
    assert again == pytest.approx(first, rel=1e-12)


def test_reference_statistics_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(50, 8))
    spec = {"kind": "inception", "weights": "random", "seed": 0, "mode": "clean"}
    mu, sigma = reference_statistics(ref, spec)
    files = list((tmp_path / "fid-stats").iterdir())
    assert len(files) == 1
    np.testing.assert_allclose(reference_statistics(ref, spec)[1], sigma)
    reference_statistics(ref, {**spec, "seed": 1})  # another extractor: another entry
    reference_statistics(ref[:-1], spec)  # another reference set: another entry
    assert len(list((tmp_path / "fid-stats").iterdir())) == 3


def test_kid_equals_clean_fid_kernel_distance():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(120, 16)), rng.normal(size=(120, 16)) * 1.2 + 0.1
    # equal set sizes below the subset size: every subset is the whole set, so both are deterministic
    ours, _ = kernel_inception_distance(real, fake, num_subsets=3)
    assert ours == pytest.approx(kernel_distance(real, fake, num_subsets=3), rel=1e-10)


def test_inception_score_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.from_numpy(np.random.default_rng(7).normal(size=(230, 50)) * 3)
    ref = isc_features_to_metric(logits, splits=10, shuffle=False)
    probs = torch.softmax(logits, dim=1).numpy()
    mean, std = inception_score(probs, 10)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    assert inception_score(np.full((20, 5), 0.2), 2)[0] == pytest.approx(1.0)  # no information: IS = 1


def test_kid_and_inception_score_metrics_on_random_weights():
    rng = np.random.default_rng(8)
    net = TinyFeatureNet(1).eval()

    class Wide(torch.nn.Module):  # 2048-d, the width of pool3, so the classifier head applies
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return net(x).repeat(1, 128)

    imgs = {w: rng.integers(0, 255, (24, 32, 32, 3), dtype=np.uint8) for w in ("generated", "reference")}
    ctx = FakeContext(imgs, replace_model=Wide())
    kid = KID(weights="random", subsets=5).compute(ctx)
    assert np.isfinite(kid.values["kid"]) and kid.info["subset_size"] == 24
    score = InceptionScore(weights="random", splits=3).compute(ctx)
    assert score.values["inception_score"] >= 1.0


def test_pretrained_inception_offline_names_the_file(tmp_path, monkeypatch):
    from bench.metrics import extractors

    monkeypatch.setattr(extractors, "cleanfid_weights_dir", lambda: tmp_path)
    start = time.perf_counter()
    with pytest.raises(BenchError) as err:
        extractors.InceptionExtractor().build()
    assert time.perf_counter() - start < 10
    msg = str(err.value)
    assert "inception-2015-12-05.pt" in msg and str(tmp_path) in msg and "\n" not in msg
    assert not any(tmp_path.iterdir())  # nothing partial left behind
    (tmp_path / "inception-2015-12-05.pt").write_bytes(b"partial download")
    with pytest.raises(BenchError, match="interrupted download"):
        extractors.InceptionExtractor().build()


def test_pretrained_vgg_offline_names_the_file(tmp_path, monkeypatch):
    from bench.metrics import extractors

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(BenchError, match=r"vgg16-397923af\.pth in .*checkpoints"):
        extractors.VGG16Extractor().build()


def test_vgg16_random_features():
    from bench.metrics.extractors import VGG16Extractor

    ext = VGG16Extractor(weights="random", seed=3)
    imgs = np.random.default_rng(9).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    feats = ext.image_features(imgs)
    assert feats.shape == (2, 4096) and (feats >= 0).all()
    assert VGG16Extractor(weights="random", layer="fc2").key() != ext.key()


def test_feature_batch_size_does_not_change_fid(tmp_path, monkeypatch):
    from bench import run_features

    gen = load_preprocessed(write_images(tmp_path / "gen", 30, 2, 0.0))
    ref = load_preprocessed(write_images(tmp_path / "ref", 30, 3, 25.0))
    net = TinyFeatureNet(2).eval()
    values = []
    for batch in (64, 4):
        monkeypatch.setattr(run_features, "FEATURE_BATCH", batch)
        values.append(FID(weights="random").compute(FakeContext({"generated": gen, "reference": ref},
                                                                replace_model=net)).values["fid"])
    assert values[1] == pytest.approx(values[0], rel=1e-6)


def test_run_needing_the_inception_file_offline_exits_2(tmp_path, monkeypatch):
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from bench.cli import main
    from bench.metrics import extractors

    monkeypatch.setattr(extractors, "cleanfid_weights_dir", lambda: tmp_path / "cleanfid")
    err = io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["run", "--method", "tiny", "--suite", "smoke", "--limit", "2", "--out", str(tmp_path / "runs"),
                   "--metrics", "fid", "--metric-args", "fid.weights=pretrained", "--device", "cpu"])
    assert rc == 2 and time.perf_counter() - start < 120
    line = err.getvalue().strip().splitlines()[-1]
    assert "inception-2015-12-05.pt" in line and str(tmp_path / "cleanfid") in line
