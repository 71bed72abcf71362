"""Model families of the recipe methods: their diffusers pipeline, files, toy networks, encoders and decoders.

A family knows everything about a kind of pipeline that a :class:`methods.recipe.Recipe` does not: which
components it has and where they live in a repository, how to encode prompts with the pipeline's own
``encode_prompt``, how the caller's noise becomes the pipeline's ``latents`` (FLUX packs 2 x 2 patches), and
how the returned latents are decoded. The engine sees none of it: every family yields images of its native size.

Toy networks (``size=tiny`` and :mod:`bench.toy_hub`) keep each family's structure (two CLIP encoders and
micro-conditioning for SDXL, the guidance-embedding UNet of LCM, ...) at a size that runs in milliseconds.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from methods.loading import Snapshot, _load, download_hint

#: Components a pipeline may list that the recipe methods never load (SD 1.x safety checker and friends).
NEVER_LOADED = ("safety_checker", "feature_extractor", "image_encoder")


@functools.lru_cache(maxsize=4)
def toy_clip_tokenizer(pad_token: str) -> Any:
    """A transformers CLIPTokenizer on the CLIP BPE vocabulary open_clip ships (offline)."""
    from transformers import CLIPTokenizer

    from bench.toy_hub import clip_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in clip_tokenizer_files(pad_token).items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return CLIPTokenizer.from_pretrained(tmp, subfolder="tokenizer")


def component_files(name: str, kind: str) -> list[str]:
    """Files of one pipeline component: ``model`` (transformers), ``diffusers`` model, ``tokenizer``, ``scheduler``."""
    if kind == "tokenizer":
        return [f"{name}/*.json", f"{name}/*.txt", f"{name}/*.model"]
    if kind == "scheduler":
        return [f"{name}/scheduler_config.json"]
    stem = "model" if kind == "model" else "diffusion_pytorch_model"
    return [f"{name}/config.json", f"{name}/{stem}.safetensors", f"{name}/{stem}.safetensors.index.json",
            f"{name}/{stem}-*-of-*.safetensors"]


def load_from_index(snap: Snapshot, skip: str | None) -> dict[str, Any]:
    """Every component ``model_index.json`` lists (except :data:`NEVER_LOADED`), safetensors only.

    ``skip`` names a component left out (a denoiser whose weights come from the recipe's own file).
    """
    import diffusers
    import transformers

    from methods.loading import scheduler_from_config

    index_path = snap.path / "model_index.json"
    if not index_path.is_file():
        raise BenchError(f"cannot load {snap.ref}: model_index.json is missing; "
                         + download_hint(snap.ref, snap.revision, "weights"))
    index = json.loads(index_path.read_text())
    parts: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None or name in NEVER_LOADED:
            continue
        library, cls_name = spec
        if name == "scheduler":
            config = json.loads((snap.path / name / "scheduler_config.json").read_text())
            parts[name] = scheduler_from_config(config)
            continue
        module = {"diffusers": diffusers, "transformers": transformers}.get(library)
        cls = getattr(module, cls_name, None) if module is not None else None
        if cls is None:
            raise BenchError(f"cannot load {snap.ref}: component {name} is {library}.{cls_name}, which this "
                             "project does not load")
        if name == skip:
            continue
        if "Tokenizer" in cls_name:
            parts[name] = _load(name, snap, lambda c=cls, n=name: c.from_pretrained(snap.path, subfolder=n))
        else:
            parts[name] = _load(name, snap, lambda c=cls, n=name: c.from_pretrained(
                snap.path, subfolder=n, use_safetensors=True))
    return parts


class Family:
    """A pipeline family; subclasses fill in the specifics."""

    name = ""
    pipeline = ""
    denoiser = "unet"
    #: Class a denoiser is built from (from its config) when the recipe supplies its weights.
    denoiser_class = "UNet2DConditionModel"
    #: component name -> kind for :func:`component_files`.
    components: dict[str, str] = {}

    def pipeline_class(self) -> Any:
        import diffusers

        return getattr(diffusers, self.pipeline)

    def files(self, skip: str | None = None) -> list[str]:
        """Patterns of the repository files the pipeline needs (``skip``: only that component's config)."""
        out = ["model_index.json"]
        for name, kind in self.components.items():
            out += [f"{name}/config.json"] if name == skip else component_files(name, kind)
        return out

    def load_components(self, snap: Snapshot, skip: str | None) -> dict[str, Any]:
        parts = load_from_index(snap, skip)
        missing = [n for n in self.components if n not in parts and n != skip]
        if missing:
            raise BenchError(f"cannot load {snap.ref} as a {self.pipeline}: model_index.json lacks {', '.join(missing)}")
        return {**self.extra_components(), **{n: parts.get(n) for n in self.components}}

    def denoiser_from_config(self, folder: Path) -> Any:
        """The denoiser architecture from a ``config.json`` folder, with freshly initialised weights."""
        import diffusers

        cls = getattr(diffusers, self.denoiser_class)
        return cls.from_config(cls.load_config(folder))

    def extra_components(self) -> dict[str, Any]:
        """Constructor arguments beyond the networks (e.g. components that are never loaded)."""
        return {}

    def module_dtype(self, name: str, module: Any, dtype: Any) -> Any:
        """The dtype a component runs in (VAEs that overflow in fp16 stay in fp32, as the pipelines do)."""
        import torch

        if name == "vae" and dtype == torch.float16 and getattr(module.config, "force_upcast", False):
            return torch.float32
        return dtype

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def default_resolution(self, pipe: Any) -> int:
        """The pipeline's own default size: the denoiser's sample size times the VAE factor."""
        return int(getattr(pipe, self.denoiser).config.sample_size * pipe.vae_scale_factor)

    def toy_resolution(self, pipe: Any) -> int:
        """The size toy networks run at."""
        return self.default_resolution(pipe)

    def latent_shape(self, pipe: Any, height: int, width: int) -> tuple[int, ...]:
        channels = getattr(pipe, self.denoiser).config.in_channels
        return (channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)

    def truncation(self, pipe: Any, prompts: Sequence[str], recipe: Any) -> tuple[int, int] | None:
        from methods.components import clip_truncation

        return clip_truncation(prompts)

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def pack(self, pipe: Any, noise: Any) -> Any:
        """The caller's noise (B, C, h, w) as the pipeline's ``latents``."""
        return noise

    def unpack(self, pipe: Any, latents: Any, height: int, width: int) -> Any:
        """The pipeline's output latents as (B, C, h, w) for :meth:`decode`."""
        return latents

    def decode(self, pipe: Any, latents: Any) -> Any:
        from methods.onestep import latents_to_images

        return latents_to_images(pipe.vae, latents.to(pipe.vae.dtype))


def _toy_vae(seed: int, **overrides: Any) -> Any:
    from diffusers import AutoencoderKL

    from methods.components import TINY_VAE_CONFIG, seeded

    return seeded(seed, lambda: AutoencoderKL(**{**TINY_VAE_CONFIG, **overrides}))


def _toy_clip(seed: int, *, projection: bool = False, quick_gelu: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from methods.components import TINY_TEXT_ENCODER_CONFIG, seeded

    config = CLIPTextConfig(**{**TINY_TEXT_ENCODER_CONFIG, "hidden_act": "quick_gelu" if quick_gelu else "gelu"})
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return seeded(seed, lambda: cls(config))


#: Toy SDXL UNet: two CLIP encoders (32 + 32 = 64 cross-attention channels) and "text_time" micro-conditioning
#: (6 size/crop numbers x 8 + the 32-d pooled embedding = 80).
TOY_SDXL_UNET: dict[str, Any] = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (32, 64), "layers_per_block": 1, "attention_head_dim": (2, 4),
    "use_linear_projection": True, "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
    "transformer_layers_per_block": (1, 2), "projection_class_embeddings_input_dim": 80,
    "cross_attention_dim": 64, "norm_num_groups": 16,
}
#: SDXL's VAE: scaling factor 0.13025 and upcast to fp32 (it overflows in fp16).
SDXL_VAE_OVERRIDES: dict[str, Any] = {"scaling_factor": 0.13025, "force_upcast": True}


class SDXLFamily(Family):
    """StableDiffusionXLPipeline: two CLIP text encoders, micro-conditioning on size and crop, SDXL VAE."""

    name = "sdxl"
    pipeline = "StableDiffusionXLPipeline"
    components = {"vae": "diffusers", "text_encoder": "model", "text_encoder_2": "model", "tokenizer": "tokenizer",
                  "tokenizer_2": "tokenizer", "unet": "diffusers", "scheduler": "scheduler"}

    def extra_components(self) -> dict[str, Any]:
        # No invisible watermark: it changes pixels after decoding and is no part of the model.
        return {"add_watermarker": False}

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:
        from diffusers import UNet2DConditionModel

        from methods.components import seeded
        from methods.loading import scheduler_from_config

        return {
            **self.extra_components(),
            "vae": _toy_vae(seed + 2, **SDXL_VAE_OVERRIDES),
            "text_encoder": _toy_clip(seed),
            "text_encoder_2": _toy_clip(seed + 5, projection=True),
            "tokenizer": toy_clip_tokenizer("<|endoftext|>"),
            "tokenizer_2": toy_clip_tokenizer("!"),
            "unet": seeded(seed + 1, lambda: UNet2DConditionModel(**TOY_SDXL_UNET)),
            "scheduler": scheduler_from_config({**toy_scheduler_config(recipe), **recipe.scheduler_overrides},
                                               recipe.scheduler),
        }

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, device=device, do_classifier_free_guidance=False)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}


#: Toy LCM UNet: SD 1.5's layout with the guidance-scale embedding input (``time_cond_proj_dim``).
def toy_lcm_unet_config() -> dict[str, Any]:
    from methods.components import TINY_UNET_CONFIG

    return {**TINY_UNET_CONFIG, "use_linear_projection": False, "time_cond_proj_dim": 32}


class LCMFamily(Family):
    """LatentConsistencyModelPipeline (SD 1.5 architecture, guidance w embedded in the UNet's time input)."""

    name = "lcm"
    pipeline = "LatentConsistencyModelPipeline"
    components = {"vae": "diffusers", "text_encoder": "model", "tokenizer": "tokenizer", "unet": "diffusers",
                  "scheduler": "scheduler"}

    def extra_components(self) -> dict[str, Any]:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    def toy_components(self, seed: int, recipe: Any) -> dict[str, Any]:
        from diffusers import UNet2DConditionModel

        from methods.components import seeded
        from methods.loading import scheduler_from_config

        config = toy_lcm_unet_config()
        return {
            **self.extra_components(),
            "vae": _toy_vae(seed + 2),
            "text_encoder": _toy_clip(seed, quick_gelu=True),
            "tokenizer": toy_clip_tokenizer("<|endoftext|>"),
            "unet": seeded(seed + 1, lambda: UNet2DConditionModel(**config)),
            "scheduler": scheduler_from_config({**toy_scheduler_config(recipe), **recipe.scheduler_overrides},
                                               recipe.scheduler),
        }

    def encode(self, pipe: Any, prompts: list[str], device: Any, recipe: Any) -> dict[str, Any]:
        embeds, _ = pipe.encode_prompt(prompts, device, 1, False)
        return {"prompt_embeds": embeds}


def toy_scheduler_config(recipe: Any) -> dict[str, Any]:
    """The scheduler config the recipe's repository (or its student's) ships, as the toy hub mirrors it."""
    from bench.toy_hub import SCHEDULERS

    return dict(SCHEDULERS[recipe.unet_repo if recipe.student_scheduler else recipe.repo])


def toy_lora_state(unet: Any, seed: int, rank: int = 4) -> dict[str, Any]:
    """A seeded random LoRA (attention projections, rank ``rank``) for ``unet``, as ``unet.*`` diffusers keys."""
    import copy

    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    host = copy.deepcopy(unet)
    host.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in host.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(host))
    return {f"unet.{k}": v.detach().contiguous() for k, v in state.items()}
