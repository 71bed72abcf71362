"""Full-size architecture configurations kept in code, so ``weights=random`` builds real-size networks offline.

The dictionaries are the keyword arguments of the diffusers / transformers classes. They describe:

* ``sd21``: Stable Diffusion 2.1-base (also the architecture of SD-Turbo, SwiftBrush and SBv2 students):
  UNet about 866M parameters, OpenCLIP ViT-H/14 text encoder (23 layers, as diffusers stores it) about 340M,
  VAE decoder about 49.5M.
* ``sd15``: Stable Diffusion 1.5 (the architecture of InstaFlow-0.9B): UNet about 860M, CLIP ViT-L/14 text
  encoder about 123M, the same VAE.
* ``TAESD_CONFIG``: the tiny AutoencoderTiny decoder (TAESD) that reads SD 1.x/2.x latents.
"""

from __future__ import annotations

from typing import Any

from methods.components import SD_SCHEDULER_CONFIG

SD21_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
    "upcast_attention": False,
}

SD15_UNET_CONFIG: dict[str, Any] = {
    **SD21_UNET_CONFIG,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "use_linear_projection": False,
}

SD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

#: OpenCLIP ViT-H/14 text tower without its last block (SD 2.x conditions on the penultimate layer).
SD21_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 512,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: OpenAI CLIP ViT-L/14 text tower (SD 1.x).
SD15_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: AutoencoderTiny (TAESD) for SD 1.x / 2.x latents; its decoder reads the UNet's latents directly.
TAESD_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "encoder_block_out_channels": (64, 64, 64, 64),
    "decoder_block_out_channels": (64, 64, 64, 64),
    "act_fn": "relu",
    "latent_channels": 4,
    "upsampling_scaling_factor": 2,
    "num_encoder_blocks": (1, 3, 3, 3),
    "num_decoder_blocks": (3, 3, 3, 1),
    "latent_magnitude": 3,
    "latent_shift": 0.5,
    "scaling_factor": 1.0,
}

#: The same family at toy size (image scale factor 4, like the tiny SD VAE in methods.components).
TINY_TAESD_CONFIG: dict[str, Any] = {
    **TAESD_CONFIG,
    "encoder_block_out_channels": (8, 8, 8),
    "decoder_block_out_channels": (8, 8, 8),
    "num_encoder_blocks": (1, 1, 1),
    "num_decoder_blocks": (1, 1, 1),
}

#: The scheduler Stable Diffusion 2.1-base ships (PNDM in PLMS-only mode), used when weights are random.
SD21_PIPELINE_SCHEDULER: dict[str, Any] = {
    **SD_SCHEDULER_CONFIG,
    "_class_name": "PNDMScheduler",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}

#: Architecture name -> (UNet, text encoder) configurations.
ARCHITECTURES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "sd21": (SD21_UNET_CONFIG, SD21_TEXT_ENCODER_CONFIG),
    "sd15": (SD15_UNET_CONFIG, SD15_TEXT_ENCODER_CONFIG),
}

#: Published parameter counts (millions) that the in-code configurations must reproduce.
PUBLISHED_PARAMS_M: dict[str, dict[str, float]] = {
    "sd21": {"unet": 865.9, "text_encoder": 340.4, "vae_decoder": 49.5},
    "sd15": {"unet": 859.5, "text_encoder": 123.1, "vae_decoder": 49.5},
}
