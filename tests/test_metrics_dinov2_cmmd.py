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


def hub_rule(table: Any, patch: int, x: Any) -> Any:
    """The torch-hub DINOv2's position embeddings for input ``x`` (B, 3, w, h), written out from its
    ``interpolate_pos_encoding``: the N = M^2 grid resized by ``scale_factor`` (w // patch + 0.1) / M (and the
    same for h), bicubic, no antialiasing, in float32; the table itself when the patch count and shape match."""
    import math

    _, _, w, h = x.shape
    n = table.shape[1] - 1
    w0, h0 = w // patch, h // patch
    if w0 * h0 == n and w == h:
        return table
    m = int(math.sqrt(n))
    grid = table[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=((w0 + 0.1) / m, (h0 + 0.1) / m), mode="bicubic",
                                           antialias=False)
    assert grid.shape[-2:] == (w0, h0)
    return torch.cat((table[:, :1].float(), grid.permute(0, 2, 3, 1).reshape(1, w0 * h0, -1)), dim=1)


def test_dinov2_network_resizes_position_embeddings_by_the_hub_rule():
    """Same random weights (37 x 37 position grid, as ViT-L/14's): our network at 224 px equals the same weights
    with the hub's rule written out here, and differs from transformers' own rule (resize to 16 x 16)."""
    ours = tiny_dinov2()
    plain = build_extractor({"kind": "dinov2", "weights": "random", "size": "tiny", "seed": 3,
                             "pos_embed": "transformers"})
    assert plain.model.embeddings.position_embeddings.shape[1] == 1 + 37 * 37
    hub = build_extractor({"kind": "dinov2", "weights": "random", "size": "tiny", "seed": 3,
                           "pos_embed": "transformers"})
    table = hub.model.embeddings.position_embeddings
    hub.model.embeddings.interpolate_pos_encoding = lambda emb, height, width: hub_rule(
        table, 14, torch.empty(1, 3, height, width)).to(emb.dtype)
    torch.testing.assert_close(ours.model.embeddings.position_embeddings, table, rtol=0, atol=0)  # shared weights
    at224 = images(3, 224, 224, 5)
    mine, theirs, transformers_rule = (e.image_features(at224) for e in (ours, hub, plain))
    assert np.abs(mine - theirs).max() < 1e-5
    assert np.abs(mine - transformers_rule).max() > 1e-4
    at518 = _normalized(images(2, 518, 518, 6))  # the table's own size, fed to the network: all three agree
    direct = [e.forward(at518) for e in (ours, hub, plain)]
    assert np.abs(direct[0] - direct[1]).max() < 1e-5 and np.abs(direct[0] - direct[2]).max() < 1e-5


def test_hub_position_rule_on_other_shapes():
    """Non-square inputs, and a non-square one with the table's own patch count (which the hub still resizes)."""
    from bench.metrics.hf_extractors import hub_position_embeddings

    table = torch.randn(1, 1 + 37 * 37, 8, generator=torch.Generator().manual_seed(0))
    for h, w in ((224, 224), (224, 280), (300, 196), (518, 518), (518, 524)):
        want = hub_rule(table, 14, torch.empty(1, 3, h, w))
        torch.testing.assert_close(hub_position_embeddings(table, 14, h, w), want, rtol=0, atol=0)
    assert not torch.equal(hub_position_embeddings(table, 14, 518, 524), table)


def _normalized(imgs: np.ndarray) -> np.ndarray:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((imgs / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)


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
    assert np.abs(ext.image_features(big) - theirs).max() > 1e-3  # the resize filters differ (docs/metrics.md)


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


def cmmd_reader(img: np.ndarray, size: int) -> np.ndarray:
    """google-research/cmmd's image path, written out: crop the centred square of the short side (offsets
    (w - l) // 2, (h - l) // 2), PIL bicubic resize of the 8-bit image, float32 / 255, CLIP normalisation
    (its own float resize then finds the image at the model's size). float32 (3, size, size)."""
    from PIL import Image

    im = Image.fromarray(img)
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), resample=Image.BICUBIC)
    x = np.asarray(im).astype(np.float32) / 255.0
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    return ((x - mean) / std).transpose(2, 0, 1)


def test_cmmd_image_path_is_cmmds_reader():
    """The metric's crop and the extractor's preparation give cmmd's pixels, at the real 336 px and at the toy
    network's 56 px, for landscape, portrait and square images."""
    from bench.metrics.preprocess import Preprocess

    ext = build_extractor({"kind": "hf_clip", "weights": "random", "size": "tiny", "resize": "cmmd"})
    ext.model  # noqa: B018
    crop = CMMD(weights="random", size="tiny").spec().transform
    assert crop == Preprocess(size=None, center_crop=True)
    for size in (56, 336):
        ext.input_size = size
        for h, w in ((121, 90), (90, 121), (400, 401), (64, 64)):
            img = images(1, h, w, h + w)[0]
            np.testing.assert_allclose(ext.prepare(crop(img)), cmmd_reader(img, size), rtol=0, atol=1e-6)


def test_cmmd_metric_on_a_tiny_clip():
    gen, ref = images(5, 64, 80, 5), images(6, 70, 70, 6)
    result = CMMD(weights="random", size="tiny", seed=2).compute(Context(gen, ref))
    ext = build_extractor({"kind": "hf_clip", "weights": "random", "size": "tiny", "seed": 2, "resize": "cmmd"})

    def emb(imgs: np.ndarray) -> np.ndarray:
        ext.model  # noqa: B018
        x = torch.from_numpy(np.stack([cmmd_reader(im, 56) for im in imgs]))
        with torch.no_grad():
            out = ext.model.get_image_features(pixel_values=x)
        f = getattr(out, "pooler_output", out)
        return (f / f.norm(dim=-1, keepdim=True)).double().numpy()

    assert result.values["cmmd"] == pytest.approx(cmmd_by_hand(emb(gen), emb(ref)), rel=1e-5)
    assert result.info["sigma"] == 10.0 and result.info["scale"] == 1000.0


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


def test_feature_keys_hold_the_versions_of_the_libraries_that_define_the_numerics(monkeypatch):
    """An upgrade of transformers changes the DINOv2 and CLIP keys (their layers and position rule live there),
    one of clean-fid the Inception key (its resize), and not the other way round."""
    from importlib import metadata

    specs = {"dinov2": {"kind": "dinov2", "weights": "random", "size": "tiny"},
             "hf_clip": {"kind": "hf_clip", "weights": "random", "size": "tiny"},
             "inception": {"kind": "inception", "weights": "random"}}
    before = {k: build_extractor(v).key() for k, v in specs.items()}
    assert build_extractor(specs["dinov2"]).spec()["versions"]["transformers"] == metadata.version("transformers")
    real = metadata.version
    for lib, changed in (("transformers", {"dinov2", "hf_clip"}), ("clean-fid", {"inception"})):
        monkeypatch.setattr(metadata, "version", lambda name, lib=lib: "0.0-other" if name == lib else real(name))
        after = {k: build_extractor(v).key() for k, v in specs.items()}
        assert {k for k in specs if after[k] != before[k]} == changed
        monkeypatch.setattr(metadata, "version", real)
