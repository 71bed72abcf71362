"""Transformer-denoiser families of the recipe methods: FLUX (flow matching, packed 2 x 2 latent patches),
PixArt-alpha (T5 + DiT, DDPM) and SANA-Sprint (Gemma 2 + linear DiT, sCM trigflow, DC-AE decoder).

Each follows :class:`methods.families.Family`; toy networks keep the real structure (FLUX's two text encoders
and rotary positions, PixArt's learned-sigma output, SANA-Sprint's guidance embedding) at toy size.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from methods.families import (
    Family,
    LCMFamily,
    SDXLFamily,
    _toy_clip,
    _toy_vae,
    toy_clip_tokenizer,
    toy_scheduler_config,
)
from methods.toy_tokenizers import TOY_VOCAB, toy_gemma_tokenizer, toy_t5_tokenizer

#: Toy FLUX: 4 latent channels packed into 16-channel tokens; text tokens 32-d (T5), pooled text 32-d (CLIP).
TOY_FLUX_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 16, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 32, "guidance_embeds": False,
    "axes_dims_rope": (4, 4, 8),
}
#: Toy PixArt-alpha DiT: 2 x 2 patches, learned sigma (8 output channels), 32-d T5 captions.
TOY_PIXART_TRANSFORMER: dict[str, Any] = {
    "sample_size": 16, "num_layers": 2, "patch_size": 2, "attention_head_dim": 8, "num_attention_heads": 3,
    "caption_channels": 32, "in_channels": 4, "cross_attention_dim": 24, "out_channels": 8,
    "attention_bias": True, "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000,
    "norm_type": "ada_norm_single", "norm_elementwise_affine": False, "norm_eps": 1e-6,
}
#: Toy SANA-Sprint transformer (guidance embedding on) and DC-AE (factor 2 here, 32 in the real one).
TOY_SANA_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 4, "out_channels": 4, "num_layers": 1, "num_attention_heads": 2,
    "attention_head_dim": 4, "num_cross_attention_heads": 2, "cross_attention_head_dim": 4,
    "cross_attention_dim": 8, "caption_channels": 8, "sample_size": 32, "qk_norm": "rms_norm_across_heads",
    "guidance_embeds": True,
}
TOY_DC_AE: dict[str, Any] = {
    "in_channels": 3, "latent_channels": 4, "attention_head_dim": 2,
    "encoder_block_types": ("ResBlock", "EfficientViTBlock"), "decoder_block_types": ("ResBlock", "EfficientViTBlock"),
    "encoder_block_out_channels": (8, 8), "decoder_block_out_channels": (8, 8),
    "encoder_qkv_multiscales": ((), (5,)), "decoder_qkv_multiscales": ((), (5,)),
    "encoder_layers_per_block": (1, 1), "decoder_layers_per_block": (1, 1), "downsample_block_type": "conv",
    "upsample_block_type": "interpolate", "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu",
    "scaling_factor": 0.41407,
}


def _seeded(seed: int, cls_name: str, library: str = "diffusers", **kwargs: Any) -> Any:
    import importlib

    from methods.components import seeded

    cls = getattr(importlib.import_module(library), cls_name)
    return seeded(seed, lambda: cls(**kwargs))


def _toy_t5(seed: int) -> Any:
    from transformers import T5Config

    config = T5Config(vocab_size=TOY_VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, decoder_start_token_id=0)
    return _seeded(seed, "T5EncoderModel", "transformers", config=config)


def _scheduler(recipe: Any) -> Any:
    from methods.loading import scheduler_from_config

    return scheduler_from_config({**toy_scheduler_config(recipe), **recipe.scheduler_overrides}, recipe.scheduler)


def _t5_truncation(tokenizer: Any, prompts: Sequence[str], limit: int) -> tuple[int, int]:
    """(prompts longer than ``limit`` T5 tokens, end token included; the limit)."""
    lengths = [len(ids) for ids in tokenizer(list(prompts)).input_ids]
    return sum(n > limit for n in lengths), limit


class FluxFamily(Family):
    """FluxPipeline: CLIP pooled + T5 sequence conditioning, rectified-flow Euler steps, 16-channel VAE."""

    name = "flux"
    pipeline = "FluxPipeline"
    denoiser = "transformer"
    components = {"scheduler": "scheduler", "vae": "diffusers", "text_encoder": "model", "tokenizer": "tokenizer",
                  "text_encoder_2": "model", "tokenizer_2": "tokenizer", "transformer": "diffusers"}

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:
        return {
            "scheduler": _scheduler(recipe),
            "vae": _toy_vae(seed + 2, latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                            block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, shift_factor=0.1159, scaling_factor=0.3611),
            "text_encoder": _toy_clip(seed),
            "tokenizer": toy_clip_tokenizer("<|endoftext|>"),
            "text_encoder_2": _toy_t5(seed + 5),
            "tokenizer_2": toy_t5_tokenizer(),
            "transformer": _seeded(seed + 1, "FluxTransformer2DModel", **TOY_FLUX_TRANSFORMER),
        }

    def default_resolution(self, pipe: Any) -> int:
        return int(pipe.default_sample_size * pipe.vae_scale_factor)

    def toy_resolution(self, pipe: Any) -> int:
        return 32 * pipe.vae_scale_factor  # 16 x 16 packed tokens

    def latent_shape(self, pipe: Any, height: int, width: int) -> tuple[int, ...]:
        factor = pipe.vae_scale_factor * 2
        return (pipe.transformer.config.in_channels // 4, 2 * (height // factor), 2 * (width // factor))

    def truncation(self, pipe: Any, prompts: Sequence[str], recipe: Any) -> tuple[int, int] | None:
        return _t5_truncation(pipe.tokenizer_2, prompts, int(recipe.call["max_sequence_length"]))

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        embeds, pooled, _ = pipe.encode_prompt(prompts, None, device=device,
                                               max_sequence_length=int(recipe.call["max_sequence_length"]))
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def pack(self, pipe: Any, noise: Any) -> Any:
        b, c, h, w = noise.shape
        return pipe._pack_latents(noise, b, c, h, w)

    def unpack(self, pipe: Any, latents: Any, height: int, width: int) -> Any:
        return pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)

    def decode(self, pipe: Any, latents: Any) -> Any:
        vae = pipe.vae
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        return (vae.decode(latents.to(vae.dtype)).sample.float() / 2 + 0.5).clamp(0, 1)


class PixArtFamily(Family):
    """PixArtAlphaPipeline: T5 captions (120 tokens), DiT with learned sigma, SD VAE."""

    name = "pixart"
    pipeline = "PixArtAlphaPipeline"
    denoiser = "transformer"
    denoiser_class = "PixArtTransformer2DModel"
    components = {"tokenizer": "tokenizer", "text_encoder": "model", "vae": "diffusers", "transformer": "diffusers",
                  "scheduler": "scheduler"}

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:
        return {
            "tokenizer": toy_t5_tokenizer(),
            "text_encoder": _toy_t5(seed),
            "vae": _toy_vae(seed + 2),
            "transformer": _seeded(seed + 1, "PixArtTransformer2DModel", **TOY_PIXART_TRANSFORMER),
            "scheduler": _scheduler(recipe),
        }

    def truncation(self, pipe: Any, prompts: Sequence[str], recipe: Any) -> tuple[int, int] | None:
        return _t5_truncation(pipe.tokenizer, prompts, int(recipe.call["max_sequence_length"]))

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        # The pipeline's own default: clean_caption=True (diffusers skips the cleaning when bs4/ftfy are missing).
        embeds, mask, _, _ = pipe.encode_prompt(prompts, False, device=device, clean_caption=True,
                                                max_sequence_length=int(recipe.call["max_sequence_length"]))
        return {"prompt_embeds": embeds, "prompt_attention_mask": mask}


class SanaSprintFamily(Family):
    """SanaSprintPipeline: Gemma 2 text encoder with the pipeline's instruction prefix, sCM steps, DC-AE."""

    name = "sana-sprint"
    pipeline = "SanaSprintPipeline"
    denoiser = "transformer"
    components = {"tokenizer": "tokenizer", "text_encoder": "model", "vae": "diffusers", "transformer": "diffusers",
                  "scheduler": "scheduler"}

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:
        from transformers import Gemma2Config

        config = Gemma2Config(head_dim=16, hidden_size=8, intermediate_size=64, max_position_embeddings=8192,
                              num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
                              vocab_size=TOY_VOCAB, attn_implementation="eager")
        return {
            "tokenizer": toy_gemma_tokenizer(),
            "text_encoder": _seeded(seed, "Gemma2Model", "transformers", config=config),
            "vae": _seeded(seed + 2, "AutoencoderDC", **TOY_DC_AE),
            "transformer": _seeded(seed + 1, "SanaTransformer2DModel", **TOY_SANA_TRANSFORMER),
            "scheduler": _scheduler(recipe),
        }

    def truncation(self, pipe: Any, prompts: Sequence[str], recipe: Any) -> tuple[int, int] | None:
        return None  # the limit applies after the instruction prefix; the pipeline reports nothing either

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        call = inspect.signature(type(pipe).__call__).parameters
        instruction = recipe.call.get("complex_human_instruction", call["complex_human_instruction"].default)
        length = int(recipe.call.get("max_sequence_length", call["max_sequence_length"].default))
        embeds, mask = pipe.encode_prompt(prompts, device=device, clean_caption=False, max_sequence_length=length,
                                          complex_human_instruction=instruction)
        return {"prompt_embeds": embeds, "prompt_attention_mask": mask}


def family_of(name: str) -> Family:
    """The family called ``name``: SDXL and LCM (:mod:`methods.families`), FLUX, PixArt and SANA-Sprint."""
    families = {f.name: f for f in (SDXLFamily(), LCMFamily(), FluxFamily(), PixArtFamily(), SanaSprintFamily())}
    return families[name]
