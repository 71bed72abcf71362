"""ImageReward v1.0 (Xu et al. 2023): the published scoring path, rebuilt without the ``image-reward`` package
(its ``timm==0.6.13`` pin does not fit this project's environment).

What :class:`ImageRewardScorer` reproduces, from ``ImageReward/ImageReward.py`` and its BLIP modules:

* image: torchvision ``Resize(224, BICUBIC)`` (shortest side) on the PIL image, ``CenterCrop(224)``, to
  [0, 1], CLIP mean and deviation;
* BLIP ViT-L/16 visual encoder (224 px, 1024 wide, 24 blocks, LayerNorm eps 1e-6; all tokens after the final
  norm), here timm's ``VisionTransformer`` with the same parameter names;
* BLIP's "med" BERT text encoder with cross-attention to the image tokens in every layer (bidirectional
  self-attention), here transformers' ``BlipTextModel`` (a port of the same module, same parameter names);
  prompt tokens: ``bert-base-uncased`` plus ``[DEC]`` and ``[ENC]`` (vocabulary 30,524), padded and truncated
  to 35;
* the [CLS] output through the MLP head 768-1024-128-64-16-1, then (r - 0.16717362830052426) /
  1.0333394966054072.

Weights: ``THUDM/ImageReward`` ``ImageReward.pt`` (a tensor state dict, read with ``weights_only=True``) and
its ``med_config.json``; keys ``blip.visual_encoder.*``, ``blip.text_encoder.*`` and ``mlp.layers.*``.
:class:`ImageRewardScorer` scores images and prompts directly (``score(images, prompts)``);
:class:`ImageRewardExtractor` is the same scorer as a text-conditioned feature network (the engine streams each
generated image with its prompt through it; its one "feature" is the reward), and :class:`ImageReward` the
metric on top: the mean reward, and per group. The image reaches ImageReward's own transform untouched (no
evaluation transform first), as the package scores the generated file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, Metric, MetricContext, MetricResult
from bench.metrics.extractors import Extractor, pil_to_normalized_array, quiet_logging, seeded
from bench.metrics.hf_extractors import CLIP_MEAN, CLIP_STD
from bench.metrics.preprocess import Preprocess
from bench.options import Option

IMAGE_REWARD_REPO = "THUDM/ImageReward"
IMAGE_REWARD_FILE = "ImageReward.pt"
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TOKENS = 35
#: (image size, patch, vision width, depth, heads, text width, text layers, text heads, vocabulary)
SHAPES = {"full": (224, 16, 1024, 24, 16, 768, 12, 12, 30524), "tiny": (32, 16, 32, 2, 2, 32, 2, 2, 512)}


def build_networks(size: str) -> Any:
    """(visual encoder, text encoder, MLP head) with fresh weights, in ImageReward's shapes."""
    import torch
    from timm.models.vision_transformer import VisionTransformer
    from transformers import BlipTextConfig, BlipTextModel

    img, patch, vw, depth, vh, tw, tl, th, vocab = SHAPES[size]
    vit = VisionTransformer(img_size=img, patch_size=patch, embed_dim=vw, depth=depth, num_heads=vh, num_classes=0,
                            global_pool="", qkv_bias=True)
    cfg = BlipTextConfig(vocab_size=vocab, hidden_size=tw, num_hidden_layers=tl, num_attention_heads=th,
                         intermediate_size=4 * tw, encoder_hidden_size=vw, max_position_embeddings=512,
                         layer_norm_eps=1e-12, is_decoder=True)  # is_decoder: builds the cross-attention layers
    text = BlipTextModel(cfg, add_pooling_layer=False)
    widths = [tw, 1024, 128, 64, 16]
    layers: list[Any] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers.append(torch.nn.Linear(a, b))
        if b != 16:
            layers.append(torch.nn.Dropout(0.2 if b != 64 else 0.1))
    layers.append(torch.nn.Linear(16, 1))
    return vit, text, torch.nn.Sequential(*layers)


def split_checkpoint(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """ImageReward.pt's keys -> (visual encoder, text encoder, MLP) state dicts."""
    parts: tuple[dict[str, Any], ...] = ({}, {}, {})
    for key, value in state.items():
        for i, prefix in enumerate(("blip.visual_encoder.", "blip.text_encoder.", "mlp.layers.")):
            if key.startswith(prefix):
                parts[i][key[len(prefix):]] = value
    if not all(parts):
        raise BenchError("the ImageReward checkpoint lacks blip.visual_encoder.*, blip.text_encoder.* or "
                         "mlp.layers.* keys; it is not ImageReward.pt")
    return parts  # type: ignore[return-value]


def hashed_tokens(texts: Sequence[str], vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in tokenizer for random weights (no vocabulary file offline): [CLS]=1, one id per word from its
    BLAKE2b digest, [SEP]=2, padded with 0 to :data:`MAX_TOKENS`; (ids, attention mask)."""
    ids = np.zeros((len(texts), MAX_TOKENS), np.int64)
    for r, text in enumerate(texts):
        words = [3 + int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") % (vocab - 3)
                 for w in text.lower().split()][: MAX_TOKENS - 2]
        row = [1, *words, 2]
        ids[r, : len(row)] = row
    return ids, (ids != 0).astype(np.int64)


class ImageRewardScorer:
    """ImageReward v1.0 rewards of images for prompts; ``weights="random"`` (seeded) or the published file
    (``checkpoint=`` a local ImageReward.pt, else downloaded from the hub)."""

    def __init__(self, weights: str = "pretrained", seed: int = 0, size: str = "full",
                 checkpoint: str | None = None, device: Any = "cpu") -> None:
        if size not in SHAPES or (size == "tiny" and weights != "random" and checkpoint is None):
            raise BenchError("image_reward: size=tiny exists only with weights=random or a local checkpoint")
        self.weights, self.seed, self.size, self.checkpoint, self.device = weights, seed, size, checkpoint, device
        self._nets: Any = None

    def networks(self) -> Any:
        if self._nets is None:
            path = self.checkpoint or (self._download() if self.weights != "random" else None)
            with quiet_logging():
                vit, text, mlp = seeded(self.seed, lambda: build_networks(self.size))
            if path:
                from bench.hub_errors import load_state_dict

                v, t, m = split_checkpoint(load_state_dict(path))
                vit.load_state_dict(v)
                text.load_state_dict(t, strict=False)  # position_ids buffers may be missing or extra
                mlp.load_state_dict(m)
            self._nets = tuple(n.eval().to(self.device) for n in (vit, text, mlp))
            self._tokenize = self._tokenizer()
        return self._nets

    def _download(self) -> str:
        from huggingface_hub import hf_hub_download

        from bench.hub_errors import explain_download_failure

        with explain_download_failure("ImageReward v1.0", f"{IMAGE_REWARD_REPO}/{IMAGE_REWARD_FILE}",
                                      f"run `hf download {IMAGE_REWARD_REPO} {IMAGE_REWARD_FILE}` where there is "
                                      "network, or pass checkpoint=PATH"):
            return hf_hub_download(IMAGE_REWARD_REPO, IMAGE_REWARD_FILE)

    def _tokenizer(self) -> Any:
        if self.size == "tiny" or (self.weights == "random" and not self.checkpoint):
            return lambda texts: hashed_tokens(texts, SHAPES[self.size][-1])
        from transformers import BertTokenizer

        from bench.hub_errors import explain_download_failure

        with explain_download_failure("the bert-base-uncased tokenizer", "hub repo bert-base-uncased (vocab.txt)"):
            tok = BertTokenizer.from_pretrained("bert-base-uncased")
        tok.add_special_tokens({"bos_token": "[DEC]"})
        tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})

        def tokenize(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
            out = tok(list(texts), padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="np")
            return out["input_ids"], out["attention_mask"]

        return tokenize

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> float32 (3, S, S): shortest side to S (PIL bicubic), centre crop, CLIP-normalised."""
        from PIL import Image

        s = SHAPES[self.size][0]
        img = Image.fromarray(np.ascontiguousarray(image))
        w, h = img.size
        size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        if size != (w, h):
            img = img.resize(size, Image.BICUBIC)
        left, top = int(round((size[0] - s) / 2.0)), int(round((size[1] - s) / 2.0))
        return pil_to_normalized_array(img.crop((left, top, left + s, top + s)), CLIP_MEAN, CLIP_STD)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> np.ndarray:
        """One reward per (image, prompt) pair, float64."""
        return self.score_prepared(np.stack([self.prepare(im) for im in images]), prompts)

    def score_prepared(self, batch: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """As :meth:`score`, for images that already went through :meth:`prepare` (stacked)."""
        import torch

        vit, text, mlp = self.networks()
        if len(batch) != len(prompts):
            raise ValueError(f"{len(batch)} images but {len(prompts)} prompts")
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        ids, mask = (torch.from_numpy(a).to(self.device) for a in self._tokenize(prompts))
        with torch.inference_mode():
            tokens = vit.forward_features(x)
            atts = torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
            out = text(input_ids=ids, attention_mask=mask, encoder_hidden_states=tokens,
                       encoder_attention_mask=atts, is_decoder=False)
            raw = mlp(out.last_hidden_state[:, 0, :].float())
        return ((raw[:, 0].double() - REWARD_MEAN) / REWARD_STD).cpu().numpy()


class ImageRewardExtractor(Extractor):
    """ImageReward as a text-conditioned feature network: (image, prompt) -> the reward, as a (1,)-row."""

    text_conditioned = True
    numerics = ("torch", "timm", "transformers", "pillow")

    def __init__(self, weights: str = "pretrained", seed: int = 0, size: str = "full",
                 checkpoint: str | None = None) -> None:
        super().__init__(weights=weights, seed=seed, size=size, checkpoint=checkpoint)
        self.scorer = ImageRewardScorer(weights, seed, size, checkpoint)

    def build(self) -> Any:
        self.scorer.device = self._device()
        self.scorer.networks()
        return self.scorer

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return self.scorer.prepare(image)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        raise BenchError("image_reward scores an image together with its prompt; it has no image-only features")

    def forward_with_texts(self, batch: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        return self.model.score_prepared(batch, texts)[:, None]


class ImageReward(Metric):
    """ImageReward v1.0: the mean reward of each image for its prompt (and per group)."""

    name = "image_reward"
    keys = ("image_reward",)
    needs_reference = False
    higher_is_better = {"image_reward": True}
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int, minimum=0),
               "size": Option("full", str, ("full", "tiny"), "tiny: toy-size networks (random weights, tests)"),
               "checkpoint": Option(None, str, help="local ImageReward.pt (default: downloaded from the hub)")}

    def feature_specs(self) -> list[FeatureSpec]:
        opts = {"weights": self.args["weights"], "seed": self.args["seed"], "size": self.args["size"],
                "checkpoint": self.args["checkpoint"]}
        return [FeatureSpec("image_reward", opts, transform=Preprocess(size=None, center_crop=False))]

    def compute(self, ctx: MetricContext) -> MetricResult:
        from bench.metrics.clip_score import group_means

        scores = ctx.image_features(self.feature_specs()[0], "generated")[:, 0]
        values = {"image_reward": float(scores.mean())}
        values.update({f"image_reward/{g}": v for g, v in group_means(scores, ctx.groups).items()})
        return MetricResult(values, self._info(n=len(scores), version="ImageReward v1.0",
                                               normalisation=[REWARD_MEAN, REWARD_STD]))
