"""PickScore on a toy-size seeded CLIPModel against its published inference path written out by hand
(transformers CLIPImageProcessor, normalised embeddings, logit_scale.exp() x cosine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import FeatureContext as Context
from helpers import noisy_images as images

from bench.errors import BenchError
from bench.metrics.pickscore import PickScore

PROMPTS = ["a cat on a sofa", "a red bus", "two dogs", "a bowl of fruit", "a lighthouse"]


def test_pickscore_equals_the_published_path_by_hand():
    import open_clip
    from PIL import Image
    from transformers import CLIPImageProcessor

    imgs = images(5, 64, 90, 0)  # not square: shortest side to 56, then the centre crop
    ctx = Context(imgs, imgs[:0])
    ctx.prompts = PROMPTS
    result = PickScore(weights="random", size="tiny", seed=4).compute(ctx)

    ext = next(iter(ctx.built.values()))
    proc = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    pix = proc(images=[Image.fromarray(im) for im in imgs], return_tensors="pt")["pixel_values"]
    ids = open_clip.get_tokenizer("ViT-B-32")(PROMPTS)
    with torch.no_grad():
        def emb(out):
            t = getattr(out, "pooler_output", out)
            return t / t.norm(dim=-1, keepdim=True)

        i = emb(ext.model.get_image_features(pixel_values=pix))
        t = emb(ext.model.get_text_features(input_ids=ids))
        want = (ext.model.logit_scale.exp() * (i * t).sum(-1)).double().numpy()
    # transformers' processor resizes with its own bicubic kernels: at most one 8-bit level from PIL's
    ours = np.stack([ext.prepare(im) for im in imgs])
    assert np.abs(ours - pix.numpy()).max() < 1.01 / 255 / 0.26 and np.abs(ours - pix.numpy()).mean() < 1e-3
    assert result.values["pickscore"] == pytest.approx(want.mean(), abs=1e-3)
    with torch.no_grad():
        exact = (ext.model.logit_scale.exp() * (emb(ext.model.get_image_features(
            pixel_values=torch.from_numpy(ours))) * t).sum(-1)).double().numpy()
    assert result.values["pickscore"] == pytest.approx(exact.mean(), rel=1e-5)
    assert result.info["scale"] == pytest.approx(float(ext.model.logit_scale.exp()))


def test_pickscore_offline_names_the_repository(monkeypatch, tmp_path):
    from bench.metrics.extractors import build_extractor

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ext = build_extractor(PickScore().spec())
    with pytest.raises(BenchError) as err:
        ext.model  # noqa: B018
    assert "yuvalkirstain/PickScore_v1" in str(err.value) and "\n" not in str(err.value)
