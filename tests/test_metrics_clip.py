"""CLIP score and HPS on tiny seeded open_clip models: against computations done by hand with open_clip, the
HPSv2 scoring path (re-implemented here; and the real ``hpsv2`` package when it is installed), batch sizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.metrics.clip_score import ClipScore
from bench.metrics.hps import HPS

TINY = "bench-test-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(autouse=True)
def tiny_config(monkeypatch):
    import open_clip

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, TINY, TINY_CFG)


class Context:
    """A metric context over fixed generated images, with the project's extractors and feature batching."""

    def __init__(self, images: np.ndarray, prompts: list[str], groups: list[str] | None = None) -> None:
        self.images, self.prompts, self.groups = images, prompts, groups
        self.device, self.generator = torch.device("cpu"), None
        self.extractors: dict[str, Any] = {}

    def extractor(self, spec: dict[str, Any]) -> Any:
        from bench.metrics.extractors import build_extractor

        ext = build_extractor(spec)
        return self.extractors.setdefault(ext.key(), ext)

    def image_features(self, spec: dict[str, Any], which: str) -> np.ndarray:
        from bench.run_features import features_in_batches

        assert which == "generated"
        return features_in_batches(self.extractor(spec), self.images)

    def text_features(self, spec: dict[str, Any], texts: list[str]) -> np.ndarray:
        ext = self.extractor(spec)
        return np.concatenate([ext.text_features(texts[s : s + 3]) for s in range(0, len(texts), 3)])


def images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 40, (n, h, w, 3)), 0, 255).astype(np.uint8)


PROMPTS = [f"a photo of {x}" for x in ("a cat", "two dogs", "a red bus", "a bowl of fruit", "a city at night",
                                       "a man surfing", "a snowy mountain")]


def seeded_model(seed: int, **kwargs: Any) -> Any:
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model_and_transforms(TINY, pretrained=None, **kwargs)


def test_clip_score_equals_open_clip_by_hand():
    import open_clip
    from PIL import Image

    imgs = images(len(PROMPTS), 40, 56, 0)
    result = ClipScore(weights="random", model=TINY, seed=3).compute(Context(imgs, PROMPTS))
    model, _, preprocess = seeded_model(3)
    model.eval()
    tok = open_clip.get_tokenizer(TINY)
    with torch.no_grad():
        im = model.encode_image(torch.stack([preprocess(Image.fromarray(x)) for x in imgs]))
        tx = model.encode_text(tok(["A photo depicts " + p for p in PROMPTS]))
    expected = torch.nn.functional.cosine_similarity(im, tx).mean().item()
    assert result.values["clip_score"] == pytest.approx(expected, abs=1e-6)
    assert -1 <= result.values["clip_score"] <= 1
    shown = ClipScore(weights="random", model=TINY, seed=3, percent=True).compute(Context(imgs, PROMPTS))
    assert shown.values["clip_score"] == pytest.approx(100 * result.values["clip_score"], rel=1e-12)
    other = ClipScore(weights="random", model=TINY, seed=3, prefix="").compute(Context(imgs, PROMPTS))
    assert other.values["clip_score"] != result.values["clip_score"]


def test_batch_size_does_not_change_metrics(monkeypatch):
    from bench import run_features

    imgs = images(len(PROMPTS), 40, 40, 1)
    groups = ["a", "b"] * 3 + ["a"]
    values = []
    for batch in (64, 1, 3):
        monkeypatch.setattr(run_features, "FEATURE_BATCH", batch)
        ctx = Context(imgs, PROMPTS, groups)
        values.append({**ClipScore(weights="random", model=TINY).compute(ctx).values,
                       **HPS(weights="random", model=TINY).compute(ctx).values})
    for other in values[1:]:
        assert other.keys() == values[0].keys()
        for key, v in values[0].items():
            assert other[key] == pytest.approx(v, abs=1e-5), key


def reference_hps_transform(image: np.ndarray, size: int) -> torch.Tensor:
    """hpsv2's evaluation transform, written from its description: ToTensor, longer side to ``size`` (bicubic on
    the tensor), centred zero padding, CLIP normalisation."""
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from PIL import Image

    x = T.ToTensor()(Image.fromarray(image))
    h, w = x.shape[1:]
    scale = size / max(h, w)
    if scale != 1.0:
        new = (round(h * scale), round(w * scale))
        x = F.resize(x, list(new), T.InterpolationMode.BICUBIC)
        ph, pw = size - new[0], size - new[1]
        x = F.pad(x, [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2], fill=0)
    return T.Normalize(OPENAI_MEAN, OPENAI_STD)(x)


@pytest.fixture
def hps_checkpoint(tmp_path) -> str:
    """A tiny HPS-style checkpoint: {'state_dict': ...} of a seeded model with every weight perturbed."""
    model, _, _ = seeded_model(5)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(6)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "hps_tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def test_hps_equals_the_hpsv2_scoring_path(hps_checkpoint):
    import open_clip

    styles = ["anime", "concept-art", "paintings", "photo"]
    imgs = images(16, 48, 80, 2)  # not square: exercises the resize-longer-side-and-pad path
    prompts = [f"{s} style picture {i}" for i in range(4) for s in styles]
    groups = [s for _ in range(4) for s in styles]
    result = HPS(weights="pretrained", model=TINY, checkpoint=hps_checkpoint).compute(Context(imgs, prompts, groups))

    model = open_clip.create_model(TINY, pretrained=None, output_dict=True)
    model.load_state_dict(torch.load(hps_checkpoint, map_location="cpu")["state_dict"])
    model.eval()
    tok = open_clip.get_tokenizer(TINY)
    per_style: dict[str, list[float]] = {s: [] for s in styles}
    with torch.no_grad():
        for img, prompt, style in zip(imgs, prompts, groups, strict=True):
            out = model(reference_hps_transform(img, 32)[None], tok([prompt]))
            logits = out["image_features"] @ out["text_features"].T * 100
            per_style[style].extend(torch.diagonal(logits).tolist())
    style_means = {s: np.mean([np.mean(v[i : i + 80]) for i in range(0, len(v), 80)]) for s, v in per_style.items()}
    overall = np.mean([x for v in per_style.values() for x in v])
    assert result.values["hps"] == pytest.approx(overall, abs=1e-4)
    for s in styles:
        assert result.values[f"hps/{s}"] == pytest.approx(style_means[s], abs=1e-4)
    assert result.info["version"] == "v2.0" and result.info["transform"] == "hps"


@pytest.mark.parametrize("version", ["v2.0", "v2.1"])
def test_hps_equals_the_hpsv2_package_when_installed(hps_checkpoint, version):
    """With ``hpsv2`` importable: its own score() on the same checkpoint and image files, for both versions'
    scoring calls (each with its own random-weight checkpoint). ``tox -e hpsv2`` installs hpsv2 1.2.0 and sets
    BENCH_REQUIRE_HPSV2=1, which turns the skip into a failure."""
    import os

    if os.environ.get("BENCH_REQUIRE_HPSV2") != "1":
        pytest.importorskip("hpsv2.img_score")
    import hpsv2.img_score as img_score
    from hpsv2.src.open_clip import create_model_and_transforms
    from hpsv2.src.open_clip import factory as hfactory
    from PIL import Image

    hfactory._MODEL_CONFIGS[TINY] = TINY_CFG
    model, _, preprocess_val = create_model_and_transforms(TINY, None, precision="amp", device="cpu",
                                                           light_augmentation=True, output_dict=True)
    img_score.model_dict.update(model=model, preprocess_val=preprocess_val)
    if version == "v2.1":  # another checkpoint: every weight moved again
        state = torch.load(hps_checkpoint, weights_only=True)["state_dict"]
        torch.save({"state_dict": {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                                   for k, v in state.items()}}, hps_checkpoint)
    imgs = images(4, 48, 80, 3)
    prompts = PROMPTS[:4]
    theirs = []
    for i, (img, prompt) in enumerate(zip(imgs, prompts, strict=True)):
        path = f"{hps_checkpoint}.{i}.jpg"
        Image.fromarray(img).save(path)
        theirs.append(100 * float(img_score.score(path, prompt, cp=hps_checkpoint, hps_version=version)[0]))
        with Image.open(path) as im:
            imgs[i] = np.asarray(im.convert("RGB"))
    result = HPS(weights="pretrained", model=TINY, checkpoint=hps_checkpoint, version=version).compute(
        Context(imgs, prompts))
    assert result.values["hps"] == pytest.approx(np.mean(theirs), abs=1e-4)
    assert result.info["version"] == version


def test_hps_checkpoint_must_fit_the_model(tmp_path):
    torch.save({"state_dict": {"visual.proj": torch.zeros(2, 2)}}, tmp_path / "bad.pt")
    metric = HPS(weights="pretrained", model=TINY, checkpoint=str(tmp_path / "bad.pt"))
    with pytest.raises(BenchError, match="does not fit"):
        metric.compute(Context(images(2, 32, 32, 4), PROMPTS[:2]))


@pytest.mark.parametrize(("version", "filename"), [("v2.0", "HPS_v2_compressed.pt"), ("v2.1", "HPS_v2.1_compressed.pt")])
def test_hps_checkpoint_offline_names_the_file(version, filename, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(BenchError) as err:
        HPS(version=version).feature_specs()
    assert filename in str(err.value) and "xswu/HPSv2" in str(err.value)


@pytest.mark.parametrize("model", [TINY, "ViT-g-14"])
def test_clip_prepare_is_bit_identical_to_open_clips_transform(model):
    """The numpy path that prepares images for the CLIP towers gives exactly open_clip's transform output."""
    import open_clip
    from PIL import Image

    from bench.metrics.clip_extractor import split_to_tensor_normalize
    from bench.metrics.extractors import pil_to_normalized_array

    size = 32 if model == TINY else 224
    transform = open_clip.image_transform(size, is_train=False)  # what create_model_and_transforms builds
    split = split_to_tensor_normalize(transform)
    assert split is not None
    steps, mean, std = split
    for img in (images(1, 256, 256, 5)[0], images(1, 61, 97, 6)[0], images(1, size, size, 7)[0]):
        pil = Image.fromarray(img)
        for step in steps:
            pil = step(pil)
        ours = pil_to_normalized_array(pil, mean, std)
        theirs = transform(Image.fromarray(img)).numpy()
        assert ours.dtype == theirs.dtype == np.float32
        assert np.array_equal(ours, theirs)
    if model == TINY:  # and the extractor uses that path
        from bench.metrics.extractors import build_extractor

        ext = build_extractor({"kind": "clip", "weights": "random", "model": TINY, "seed": 0})
        ext.model  # noqa: B018
        assert ext._split is not None
        img = images(1, 40, 56, 8)[0]
        assert np.array_equal(ext.prepare(img), ext.preprocess(Image.fromarray(img)).numpy())


def test_unrecognised_transforms_fall_back_to_torch():
    from torchvision import transforms

    from bench.metrics.clip_extractor import split_to_tensor_normalize

    assert split_to_tensor_normalize(transforms.Compose([transforms.ToTensor()])) is None
    assert split_to_tensor_normalize(transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3),
                                                         transforms.Resize(8)])) is None
    assert split_to_tensor_normalize(lambda x: x) is None
