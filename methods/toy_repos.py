"""The generator repositories of the offline toy hub (:mod:`bench.toy_hub`): the SD 2.1 family (SD 2.1-base,
SD-Turbo, SwiftBrush), the SD 1.5 family (InstaFlow, SD 1.5) and TAESD (the one-step field's are in
:mod:`methods.toy_repos_field`), at toy size with seeded random weights, in the real repositories' layouts.

The built-in ``methods`` plug-in registers them through the ``register_toy_repos`` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.toy_hub import (
    INSTAFLOW,
    SCHEDULERS,
    SD15,
    SD21_BASE,
    SD_TURBO,
    SWIFTBRUSH,
    TAESD,
    clip_tokenizer_files,
    feature_extractor_files,
    json_bytes,
    prefixed,
    saved_files,
)


def toy_unet(seed: int, sd15: bool = False) -> Any:
    from diffusers import UNet2DConditionModel

    from methods.components import TINY_UNET_CONFIG, seeded

    config = {**TINY_UNET_CONFIG, **({"use_linear_projection": False} if sd15 else {})}
    return seeded(seed, lambda: UNet2DConditionModel(**config))


def _toy_text_encoder(seed: int, sd15: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    from methods.components import TINY_TEXT_ENCODER_CONFIG, seeded

    config = {**TINY_TEXT_ENCODER_CONFIG, "hidden_act": "quick_gelu" if sd15 else "gelu"}
    return seeded(seed, lambda: CLIPTextModel(CLIPTextConfig(**config)))


def _toy_vae(seed: int) -> Any:
    from diffusers import AutoencoderKL

    from methods.components import TINY_VAE_CONFIG, seeded

    return seeded(seed, lambda: AutoencoderKL(**TINY_VAE_CONFIG))


def toy_safety_checker(seed: int) -> Any:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    from methods.components import seeded

    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(text_config=tower, vision_config={**tower, "image_size": 32, "patch_size": 8},
                        projection_dim=32)
    return seeded(seed, lambda: StableDiffusionSafetyChecker(config))


def sd_pipeline_files(repo: str, seed: int, *, unet_seed: int, sd15: bool = False,
                      extra_index: dict[str, Any] | None = None) -> dict[str, bytes]:
    """A Stable Diffusion pipeline repository at toy size: model_index.json and its five component folders.

    Text encoder and VAE are seeded by ``seed`` (shared by the SD 2.1 family), the UNet by ``unet_seed``.
    """
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.8.0",
        "feature_extractor": ["transformers", "CLIPImageProcessor"] if sd15 else [None, None],
        "requires_safety_checker": bool(sd15),
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"] if sd15 else [None, None],
        "scheduler": ["diffusers", SCHEDULERS[repo]["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        **(extra_index or {}),
    }
    files = {"model_index.json": json_bytes(index), "scheduler/scheduler_config.json": json_bytes(SCHEDULERS[repo])}
    files.update(clip_tokenizer_files("<|endoftext|>" if sd15 else "!"))
    files.update(prefixed("text_encoder", saved_files(_toy_text_encoder(seed, sd15))))
    files.update(prefixed("vae", saved_files(_toy_vae(seed + 2))))
    files.update(prefixed("unet", saved_files(toy_unet(unet_seed, sd15))))
    if sd15:  # SD 1.x repositories ship the safety checker and its image processor (never loaded here)
        files.update(prefixed("safety_checker", saved_files(toy_safety_checker(seed + 4))))
        files.update(prefixed("feature_extractor", feature_extractor_files()))
    return files


def taesd_files(seed: int) -> dict[str, bytes]:
    """madebyollin/taesd: an AutoencoderTiny at the repository root (toy size: the tiny VAE's image scale)."""
    from methods.loading import random_taesd

    return saved_files(random_taesd(seed, "tiny"))


#: Seed offsets of each repository's own UNet (text encoders and VAEs of the SD 2.1 family share ``seed``).
UNET_SEEDS = {SD21_BASE: 1, SD_TURBO: 11, SWIFTBRUSH: 21, INSTAFLOW: 31, SD15: 41}


def register_sd_repos(register: Callable[..., None]) -> None:
    """``register(repo, files)`` for the SD 2.1 and SD 1.5 families and TAESD; ``files(seed)`` builds the files."""
    for repo in (SD21_BASE, SD_TURBO, SWIFTBRUSH):
        register(repo, lambda seed, repo=repo: sd_pipeline_files(repo, seed, unet_seed=seed + UNET_SEEDS[repo]))
    for repo, extra in ((INSTAFLOW, {"_class_name": "RectifiedFlowPipeline"}), (SD15, None)):
        register(repo, lambda seed, repo=repo, extra=extra: sd_pipeline_files(
            repo, seed + 100, unet_seed=seed + UNET_SEEDS[repo], sd15=True, extra_index=extra))
    register(TAESD, taesd_files)
