"""FD_DINOv2 and CMMD on toy-size seeded networks: dgm-eval's preprocessing written out with torchvision,
torch-fidelity's DINOv2 extractor on the same network, CMMD against the published formula in NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from helpers import FeatureContext as Context
from helpers import noisy_images as images

from bench.errors import BenchError
from bench.metrics.distribution import CMMD, FDDinov2, cmmd
from bench.metrics.extractors import build_extractor


def tiny_dinov2() -> Any:
    return build_extractor({"kind": "dinov2", "weights": "random", "size": "tiny", "seed": 3})


def test_dinov2_preprocessing_is_dgm_evals():
    import torchvision.transforms as T
    from PIL import Image

    img = images(1, 61, 93, 0)[0]
    ours = tiny_dinov2().prepare(img)
    theirs = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                        T.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))])(
        Image.fromarray(img))
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)


def _torch_fidelity_extractor(model: Any) -> Any:
    """torch-fidelity's FeatureExtractorDinoV2 around our network (its own loader needs torch hub)."""
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    class CLS(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x: Any) -> Any:
            return self.m(pixel_values=x).pooler_output

    fx = FeatureExtractorDinoV2.__new__(FeatureExtractorDinoV2)
    torch.nn.Module.__init__(fx)
    fx.name, fx.features_list, fx.feature_extractor_internal_dtype = "dinov2-vit-l-14", ["dinov2"], torch.float32
    fx.model = CLS()
    return fx


def test_dinov2_features_against_torch_fidelity():
    """Same network and normalisation; the only difference is the resize: dgm-eval (ours) uses PIL bicubic with
    antialiasing, torch-fidelity TF1-style bilinear without. At 224 px input neither resizes: equal features."""
    ext = tiny_dinov2()
    fx = _torch_fidelity_extractor(ext.model)
    at224 = images(3, 224, 224, 1)
    with torch.no_grad():
        theirs = fx(torch.from_numpy(at224).permute(0, 3, 1, 2).contiguous())[0].double().numpy()
    np.testing.assert_allclose(ext.image_features(at224), theirs, atol=1e-4)
    big = images(3, 512, 512, 2)
    with torch.no_grad():
        theirs = fx(torch.from_numpy(big).permute(0, 3, 1, 2).contiguous())[0].double().numpy()
    assert np.abs(ext.image_features(big) - theirs).max() > 1e-3  # the resize filters differ (README)


def test_fd_dinov2_equals_frechet_of_the_features_by_hand():
    from scipy import linalg

    gen, ref = images(6, 72, 96, 3), images(7, 80, 64, 4)
    metric = FDDinov2(weights="random", size="tiny", seed=3)
    value = metric.compute(Context(gen, ref)).values["fd_dinov2"]
    ext = tiny_dinov2()

    def feats(imgs: np.ndarray) -> np.ndarray:
        from bench.metrics.preprocess import Preprocess

        return ext.image_features(np.stack([Preprocess(size=None, center_crop=True)(im) for im in imgs]))

    a, b = feats(gen), feats(ref)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert value == pytest.approx(want, rel=1e-4, abs=1e-6)


def cmmd_by_hand(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """The published formula, spelt out: biased MMD^2 with the Gaussian kernel, all pairs, x scale."""
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    return scale * (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_cmmd_formula_and_tiles(monkeypatch):
    import bench.metrics.distribution as dist

    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 16))
    y = rng.normal(size=(29, 16)) + 0.3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    want = cmmd_by_hand(x, y)
    assert cmmd(x, y) == pytest.approx(want, rel=1e-10)
    monkeypatch.setattr(dist, "TILE", 5)
    assert cmmd(x, y.copy()) == pytest.approx(want, rel=1e-10)
    assert cmmd(x, x.copy()) == pytest.approx(0.0, abs=1e-9)
    assert cmmd(np.ones((3, 4)) * 5, np.zeros((3, 4))) == pytest.approx(1000 * 2 * (1 - np.exp(-100 / 200)))


def test_cmmd_metric_on_a_tiny_clip():
    from bench.metrics.preprocess import Preprocess

    gen, ref = images(5, 64, 80, 5), images(6, 70, 70, 6)
    result = CMMD(weights="random", size="tiny", seed=2).compute(Context(gen, ref))
    ext = build_extractor({"kind": "hf_clip", "weights": "random", "size": "tiny", "seed": 2, "resize": "cmmd"})
    crop = Preprocess(size=None, center_crop=True)

    def emb(imgs: np.ndarray) -> np.ndarray:
        ext.model  # noqa: B018
        x = torch.from_numpy(np.stack([ext.prepare(crop(im)) for im in imgs]))
        with torch.no_grad():
            out = ext.model.get_image_features(pixel_values=x)
        f = getattr(out, "pooler_output", out)
        return (f / f.norm(dim=-1, keepdim=True)).double().numpy()

    assert result.values["cmmd"] == pytest.approx(cmmd_by_hand(emb(gen), emb(ref)), rel=1e-5)
    assert result.info["sigma"] == 10.0 and result.info["scale"] == 1000.0


def test_cmmd_resize_is_a_float_bicubic_of_the_whole_image():
    """cmmd resizes the [0, 1] float image bicubically with antialiasing to 336 px; ours: PIL's bicubic per
    channel in float (close to jax.image.resize's, which is what cmmd calls), then CLIP normalisation."""
    import torch.nn.functional as F

    ext = build_extractor({"kind": "hf_clip", "weights": "random", "size": "tiny", "resize": "cmmd"})
    ext.model  # noqa: B018
    img = images(1, 120, 90, 7)[0]
    ours = ext.prepare(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255
    ref = F.interpolate(x, size=(56, 56), mode="bicubic", antialias=True, align_corners=False)[0].numpy()
    mean = np.array([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = np.array([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    assert ours.shape == (3, 56, 56)
    assert np.abs(ours - (ref - mean) / std).mean() < 0.02


def test_pretrained_weights_offline_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for spec, repo in (({"kind": "dinov2"}, "facebook/dinov2-large"),
                       ({"kind": "hf_clip"}, "openai/clip-vit-large-patch14-336")):
        with pytest.raises(BenchError) as err:
            build_extractor(spec).model  # noqa: B018
        msg = str(err.value)
        assert repo in msg and "offline" in msg and "\n" not in msg


def test_unknown_dinov2_arch_and_tiny_pretrained_are_rejected():
    with pytest.raises(BenchError, match="did you mean 'vitl14'"):
        build_extractor({"kind": "dinov2", "arch": "vitl16"})
    with pytest.raises(BenchError, match="only with weights=random"):
        build_extractor({"kind": "dinov2", "size": "tiny"})


def test_engine_streams_and_caches_the_new_networks(tmp_path, one_thread):
    """fd_dinov2, cmmd and pickscore in one smoke run: features streamed, reference features cached and reused
    by a second run, intervals attached."""
    import json

    from bench.cli import main

    args = ["run", "--method", "tiny", "--suite", "smoke", "--limit", "4", "--metrics", "fd_dinov2,cmmd,pickscore",
            "--metric-args", "fd_dinov2.weights=random,fd_dinov2.size=tiny,cmmd.weights=random,cmmd.size=tiny,"
            "pickscore.weights=random,pickscore.size=tiny", "--device", "cpu", "--bootstrap", "10"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "smoke-tiny" / "results.json").read_text())
    assert {"fd_dinov2", "cmmd", "pickscore"} <= set(first["metrics"])
    assert all(np.isfinite(first["metrics"][k]) for k in ("fd_dinov2", "cmmd", "pickscore"))
    refs = first["reference_features"]
    assert any(k.startswith("dinov2-") for k in refs) and any(k.startswith("hf_clip-") for k in refs)
    assert not any(v["cached"] for v in refs.values())
    assert (tmp_path / "a" / "smoke-tiny" / "features").is_dir()
    assert set(first["metric_info"]["cmmd"]["ci95"]) == {"cmmd"}
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    second = json.loads((tmp_path / "b" / "smoke-tiny" / "results.json").read_text())
    assert all(v["cached"] for v in second["reference_features"].values())
    assert second["metrics"]["fd_dinov2"] == pytest.approx(first["metrics"]["fd_dinov2"], rel=1e-9)
