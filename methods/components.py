"""Network components shared by the one-step methods: tokenizers and the toy-size SD-architecture set.

The toy components follow Stable Diffusion 2.1's architecture (UNet2DConditionModel with linear-projection
cross-attention, AutoencoderKL, CLIPTextModel) at a size that runs in milliseconds on a CPU. Their weights
are seeded, so every build with the same seed is bit-identical. Nothing here downloads anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Stable Diffusion's noise schedule (shared by SD 1.5, 2.1-base and SD-Turbo).
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}

TINY_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 32,
    "pad_token_id": 0,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
}

TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "cross_attention_dim": 32,
    "norm_num_groups": 16,
}

TINY_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "block_out_channels": (16, 32, 32),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}

Tokenize = Callable[[Sequence[str]], Any]


def open_clip_tokenizer(context_length: int = 77) -> Tokenize:
    """CLIP BPE tokenizer from the vocabulary that open_clip ships (offline): prompts -> LongTensor (B, L).

    Sequences are ``<start> tokens <end>`` padded with id 0, the padding SD 2.x's tokenizer uses.
    """
    tokenizer = _simple_tokenizer(context_length)

    def tokenize(prompts: Sequence[str]) -> Any:
        return tokenizer(list(prompts), context_length=context_length)

    return tokenize


@functools.lru_cache(maxsize=4)
def _simple_tokenizer(context_length: int) -> Any:
    """open_clip's BPE tokenizer; built once per process (reading its vocabulary takes about a second)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


#: Tokens the CLIP text encoders of SD 1.x / 2.x read, start and end tokens included.
TOKEN_LIMIT = 77


def count_truncated(prompts: Sequence[str], limit: int = TOKEN_LIMIT) -> int:
    """How many prompts exceed ``limit`` CLIP BPE tokens (start and end included) and are cut by the tokenizer.

    Prompts of at most ``limit - 2`` UTF-8 bytes cannot exceed it (a token covers at least one byte) and are
    not tokenized.
    """
    count = 0
    for text in prompts:
        if len(text.encode("utf-8")) <= limit - 2:
            continue
        if len(_simple_tokenizer(limit).encode(text)) + 2 > limit:
            count += 1
    return count


def clip_truncation(prompts: Sequence[str]) -> tuple[int, int]:
    """(prompts an SD text encoder cuts, its token limit): :meth:`bench.generator.Generator.truncated_prompts` of
    every generator built on the SD 1.x / 2.x CLIP text encoders."""
    return count_truncated(prompts, TOKEN_LIMIT), TOKEN_LIMIT


def hf_tokenizer(tokenizer: Any) -> Tokenize:
    """Wrap a transformers CLIPTokenizer as prompts -> LongTensor (B, model_max_length)."""

    def tokenize(prompts: Sequence[str]) -> Any:
        return tokenizer(
            list(prompts),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    return tokenize


@dataclass
class Components:
    """The networks of an SD-style one-step generator."""

    tokenize: Tokenize
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler: Any


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """Call ``build`` with torch's global RNG seeded, restoring the caller's RNG state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def build_tiny_components(seed: int = 0) -> Components:
    """Toy-size SD-2.1-architecture components with seeded random weights (fp32, on the CPU)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_encoder = seeded(seed, lambda: CLIPTextModel(CLIPTextConfig(**TINY_TEXT_ENCODER_CONFIG)))
    unet = seeded(seed + 1, lambda: UNet2DConditionModel(**TINY_UNET_CONFIG))
    vae = seeded(seed + 2, lambda: AutoencoderKL(**TINY_VAE_CONFIG))
    return Components(
        tokenize=open_clip_tokenizer(TINY_TEXT_ENCODER_CONFIG["max_position_embeddings"]),
        text_encoder=text_encoder.eval(),
        unet=unet.eval(),
        vae=vae.eval(),
        scheduler=DDPMScheduler(**SD_SCHEDULER_CONFIG),
    )
