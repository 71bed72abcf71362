"""ImageReward's scoring path on toy-size seeded networks: its image transform written out with torchvision,
ImageReward.pt's key layout, the MLP head and normalisation by hand, and BLIP's bidirectional text encoder
with cross-attention to the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import noisy_images

from bench.errors import BenchError
from bench.metrics.image_reward import REWARD_MEAN, REWARD_STD, ImageRewardScorer, split_checkpoint

PROMPTS = ["a cat on a red sofa", "two dogs in the snow", "a bowl of fruit"]


def scorer(**kw) -> ImageRewardScorer:
    return ImageRewardScorer(**{"weights": "random", "size": "tiny", "seed": 7, **kw})


def test_transform_is_imagerewards():
    import torchvision.transforms as T
    from PIL import Image

    img = noisy_images(1, 45, 77, 0)[0]
    theirs = T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                        T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    np.testing.assert_allclose(scorer().prepare(img), theirs(Image.fromarray(img)).numpy(), atol=1e-6)


def test_checkpoint_layout_loads_into_the_same_networks(tmp_path):
    ref = scorer()
    vit, text, mlp = ref.networks()
    state = {**{f"blip.visual_encoder.{k}": v for k, v in vit.state_dict().items()},
             **{f"blip.text_encoder.{k}": v for k, v in text.state_dict().items()},
             **{f"mlp.layers.{k}": v for k, v in mlp.state_dict().items()}}
    torch.save(state, tmp_path / "ImageReward.pt")
    imgs = noisy_images(3, 40, 40, 1)
    loaded = ImageRewardScorer(weights="pretrained", size="tiny", seed=99, checkpoint=str(tmp_path / "ImageReward.pt"))
    np.testing.assert_allclose(loaded.score(imgs, PROMPTS), ref.score(imgs, PROMPTS), rtol=1e-6)
    with pytest.raises(BenchError, match="not ImageReward.pt"):
        split_checkpoint({"visual.proj": torch.zeros(1)})


def test_head_and_normalisation_by_hand_and_cross_attention():
    s = scorer()
    vit, text, mlp = s.networks()
    imgs = noisy_images(3, 40, 48, 2)
    rewards = s.score(imgs, PROMPTS)
    x = torch.from_numpy(np.stack([s.prepare(im) for im in imgs]))
    ids, mask = (torch.from_numpy(a) for a in s._tokenize(PROMPTS))
    with torch.no_grad():
        tokens = vit.forward_features(x)
        cls = text(input_ids=ids, attention_mask=mask, encoder_hidden_states=tokens,
                   encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long)).last_hidden_state[:, 0]
    h = cls.double().numpy()
    linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1024, 128, 64, 16, 1]
    for m in linears:  # no activations between the layers, as in ImageReward's MLP
        h = h @ m.weight.detach().double().numpy().T + m.bias.detach().double().numpy()
    np.testing.assert_allclose(rewards, (h[:, 0] - REWARD_MEAN) / REWARD_STD, rtol=1e-5, atol=1e-6)
    # the [CLS] output sees later words (bidirectional self-attention) and the image (cross-attention)
    other_word = s.score(imgs[:1], ["a cat on a red chair"])
    other_image = s.score(noisy_images(1, 40, 48, 3), PROMPTS[:1])
    assert abs(other_word[0] - rewards[0]) > 1e-6 and abs(other_image[0] - rewards[0]) > 1e-6


def test_pretrained_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(BenchError) as err:
        ImageRewardScorer().networks()
    assert "THUDM/ImageReward" in str(err.value) and "\n" not in str(err.value)


def test_image_reward_metric_streams_each_image_with_its_prompt(tmp_path, one_thread):
    """The registered metric on a smoke run equals the scorer on the saved files and their prompts, per image
    and per group, and a reference pass is refused in one line."""
    import json

    from bench.cli import main
    from bench.metrics.image_reward import ImageRewardExtractor
    from bench.suites.base import decode_image

    args = ["run", "--method", "tiny", "--suite", "smoke", "--limit", "5", "--batch-size", "2", "--device", "cpu",
            "--metrics", "image_reward", "--metric-args", "image_reward.weights=random,image_reward.size=tiny,"
            "image_reward.seed=7", "--out", str(tmp_path)]
    assert main(args) == 0
    run = tmp_path / "smoke-tiny"
    results = json.loads((run / "results.json").read_text())
    rows = [json.loads(x) for x in (run / "manifest.jsonl").read_text().splitlines()]
    images = [np.asarray(decode_image(run / r["path"], r["path"])) for r in rows]
    want = scorer().score(images, [r["prompt"] for r in rows])
    assert results["metrics"]["image_reward"] == pytest.approx(float(want.mean()), rel=1e-6)
    assert results["metric_info"]["image_reward"]["higher_is_better"] == {"image_reward": True}
    assert "ci95" in results["metric_info"]["image_reward"]
    ext = ImageRewardExtractor(weights="random", size="tiny", seed=7)
    from bench.run_features import features_in_batches

    with pytest.raises(BenchError, match="prompts"):
        features_in_batches(ext, np.stack(images[:2]))


#: ImageReward's med_config.json (BLIP's BERT-base text encoder with cross-attention; vocabulary 30,524)
MED_CONFIG = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
              "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
              "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2,
              "vocab_size": 30524, "encoder_width": 768, "add_cross_attention": True}


def test_image_reward_equals_the_image_reward_package_when_installed(tmp_path, monkeypatch):
    """With the ``image-reward`` package importable: its own ImageReward model (full size, its random
    initialisation, saved as ImageReward.pt) and its ``score(prompt, image)`` against this project's scorer on the
    same file, images and prompts. Both sides ask for the ``bert-base-uncased`` tokenizer; offline, both get one
    built from a vocabulary the test writes. ``tox -e imagereward`` installs image-reward 1.5 and sets
    BENCH_REQUIRE_IMAGE_REWARD=1, which turns the skip into a failure."""
    import json
    import os

    if os.environ.get("BENCH_REQUIRE_IMAGE_REWARD") != "1":
        pytest.importorskip("ImageReward")
    from ImageReward.ImageReward import ImageReward as PackageImageReward
    from PIL import Image
    from transformers import BertTokenizer

    words = sorted({w for p in PROMPTS for w in p.split()} | {"chair", "cats"})
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(99)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    asked = []

    def local_tokenizer(cls, name, *args, **kwargs):
        asked.append(name)
        return cls(vocab_file=str(tmp_path / "vocab.txt"))

    monkeypatch.setattr(BertTokenizer, "from_pretrained", classmethod(local_tokenizer))
    (tmp_path / "med_config.json").write_text(json.dumps(MED_CONFIG))
    torch.manual_seed(3)
    theirs_model = PackageImageReward(med_config=str(tmp_path / "med_config.json"), device="cpu").eval()
    for p in theirs_model.mlp.parameters():  # the package's head init is tiny (std 1/769): spread the rewards
        p.data.normal_(0.0, 0.05)
    torch.save(theirs_model.state_dict(), tmp_path / "ImageReward.pt")

    imgs = [noisy_images(1, h, w, 10 + i)[0] for i, (h, w) in enumerate([(300, 200), (256, 256), (200, 310)])]
    prompts = [PROMPTS[0], "two cats on a red chair", PROMPTS[2]]
    with torch.no_grad():
        theirs = np.array([theirs_model.score(p, Image.fromarray(im)) for p, im in zip(prompts, imgs, strict=True)])
    del theirs_model
    ours = ImageRewardScorer(weights="pretrained", checkpoint=str(tmp_path / "ImageReward.pt")).score(imgs, prompts)
    assert asked == ["bert-base-uncased", "bert-base-uncased"]
    assert np.ptp(theirs) > 1e-3  # the images and prompts are told apart
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
