"""The clamped CLIP loss of SBv2 (and the HPSv2 loss of the same form) with its weight schedule.

    L = max(0, tau - cos(E_img(D(x0)), E_txt(y)))

``D`` decodes the student's latent (TAESD by default), ``E_img`` / ``E_txt`` are open_clip encoders (CLIP
ViT-B/32 for the CLIP loss, the HPSv2 ViT-H/14 for the HPS loss). Samples already aligned beyond ``tau`` get no
gradient, so the loss stops pulling once alignment is good enough. The weight starts at 0.1 and decays to 0 at
the last training step. Pretrained weights are fetched by open_clip / huggingface_hub on the user's machine;
``clip_model = "tiny"`` or ``clip_pretrained = "random"`` build seeded random models offline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from bench.errors import BenchError

SCHEDULES = ("linear", "cosine", "constant")


def clamped_loss(image_features: Any, text_features: Any, tau: float) -> Any:
    """Per-sample ``max(0, tau - cos(image, text))`` (features need not be normalised)."""
    import torch.nn.functional as F

    cos = F.cosine_similarity(image_features.float(), text_features.float(), dim=-1)
    return (tau - cos).clamp(min=0.0)


def loss_weight(step: int, total_steps: int, initial: float, schedule: str = "linear") -> float:
    """Weight at 0-based ``step`` of ``total_steps``: ``initial`` at step 0, 0 at the last step (``total - 1``).

    ``linear``: ``initial * (1 - s / (T - 1))``; ``cosine``: ``initial * (1 + cos(pi s / (T - 1))) / 2``;
    ``constant``: ``initial`` throughout. Steps past the end give 0 for the decaying schedules.
    """
    if schedule == "constant":
        return float(initial)
    frac = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    if schedule == "linear":
        return float(initial) * (1.0 - frac)
    if schedule == "cosine":
        return float(initial) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


class AlignmentLoss:
    """A frozen open_clip model scoring decoded images against prompts with the clamped loss."""

    def __init__(
        self,
        model: Any,
        tokenize: Callable[[Sequence[str]], Any],
        tau: float,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenize, self.tau, self.image_size = tokenize, float(tau), int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)

    def to(self, device: Any, dtype: Any = None) -> AlignmentLoss:
        self.model.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def preprocess(self, images: Any) -> Any:
        """Differentiable CLIP preprocessing of images in [0, 1]: centre crop, resize, normalise."""
        import torch
        import torch.nn.functional as F

        h, w = images.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = images[..., top : top + side, left : left + side]
        if side != self.image_size:
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bicubic", align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def text_features(self, prompts: Sequence[str]) -> Any:
        import torch

        with torch.no_grad():
            return self.model.encode_text(self.tokenize(prompts).to(self.device))

    def image_features(self, images: Any) -> Any:
        dtype = next(self.model.parameters()).dtype
        return self.model.encode_image(self.preprocess(images.to(self.device)).to(dtype))

    def __call__(self, images: Any, prompts: Sequence[str]) -> Any:
        """Per-sample clamped loss of ``images`` (B, 3, H, W) in [0, 1] against ``prompts``."""
        return clamped_loss(self.image_features(images), self.text_features(prompts), self.tau)


TINY_CLIP = {"embed_dim": 32, "image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2}


def tiny_open_clip(seed: int) -> Any:
    """A seeded toy open_clip CLIP model (ViT vision tower, transformer text tower) that builds offline."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    from methods.components import seeded

    c = TINY_CLIP
    vision = CLIPVisionCfg(layers=c["layers"], width=c["width"], head_width=c["width"] // c["heads"],
                           patch_size=c["patch_size"], image_size=c["image_size"])
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=c["width"], heads=c["heads"], layers=c["layers"])
    return seeded(seed, lambda: CLIP(embed_dim=c["embed_dim"], vision_cfg=vision, text_cfg=text))


def _image_size(model: Any) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)


def _norm_stats(model: Any) -> tuple[Sequence[float], Sequence[float]]:
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = getattr(model.visual, "image_mean", None) or OPENAI_DATASET_MEAN
    std = getattr(model.visual, "image_std", None) or OPENAI_DATASET_STD
    return mean, std


def open_clip_hub_repo(model_name: str, pretrained: str) -> str | None:
    """The Hugging Face repository open_clip downloads ``pretrained`` weights of ``model_name`` from (if any)."""
    import open_clip

    try:
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    except Exception:  # unknown names are reported when the model is built
        return None
    return (cfg.get("hf_hub") or "").rstrip("/") or None


def build_alignment_loss(
    model_name: str, pretrained: str, tau: float, seed: int = 0, cache_dir: str | None = None, what: str = "CLIP"
) -> AlignmentLoss:
    """open_clip model ``model_name`` with ``pretrained`` weights (``"random"``: seeded; ``"tiny"``: toy)."""
    import open_clip

    from methods.components import open_clip_tokenizer, seeded

    if model_name == "tiny":
        model = tiny_open_clip(seed)
        tokenize = open_clip_tokenizer(77)
    else:
        try:
            tokenize = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # unknown architecture names surface here
            raise BenchError(f"open_clip has no model {model_name!r} ({exc})") from None
        if pretrained == "random":
            model = seeded(seed, lambda: open_clip.create_model(model_name, pretrained=None))
        else:
            quick_gelu = bool((open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get("quick_gelu", False))
            try:
                model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir,
                                               force_quick_gelu=quick_gelu)
            except Exception as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BenchError(
                    f"cannot load the {what} model {model_name} ({pretrained}) [{type(exc).__name__}: {reason[:160]}]; "
                    "download it once while online (open_clip fetches it from the Hugging Face hub) or set "
                    "clip_pretrained=random for untrained weights"
                ) from None
    mean, std = _norm_stats(model)
    return AlignmentLoss(model, tokenize, tau, _image_size(model), mean, std)


def build_hps_loss(checkpoint: str, tau: float, seed: int = 0, tiny: bool = False,
                   cache_dir: str | None = None, random_weights: bool = False) -> AlignmentLoss:
    """The HPSv2 scorer (open_clip ViT-H-14 with the HPSv2 checkpoint from ``xswu/HPSv2``) as a clamped loss."""
    if tiny:
        return build_alignment_loss("tiny", "random", tau, seed=seed + 7, what="HPS")
    if random_weights:
        return build_alignment_loss("ViT-H-14", "random", tau, seed=seed + 7, what="HPS")
    import torch
    from huggingface_hub import hf_hub_download

    from training.config import HPSV2

    loss = build_alignment_loss("ViT-H-14", "random", tau, seed=seed + 7, what="HPS")
    try:
        path = hf_hub_download(HPSV2, checkpoint, cache_dir=cache_dir)
    except Exception as exc:
        raise BenchError(
            f"cannot fetch the HPSv2 checkpoint {HPSV2}/{checkpoint} ({type(exc).__name__}); download it once "
            f"while online, e.g. `huggingface-cli download {HPSV2} {checkpoint}`"
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    loss.model.load_state_dict(state)
    return loss
