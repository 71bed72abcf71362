"""``diffusers``: any diffusers text-to-image pipeline from the hub or a local directory (``model=ID_OR_DIR``).

Pipelines made of a CLIP tokenizer and text encoder, a UNet, a VAE and a scheduler (Stable Diffusion 1.x/2.x
and their fine-tunes) run through the same stages as ``sd21``, so each stage is timed separately and the
caller's noise is the initial latent. Any other pipeline that accepts ``latents=`` (SDXL, PixArt, SD3, ...)
runs whole: its call is timed as the denoiser stage, and the text-encoder and decoder stages are pass-throughs.
Safety checkers are never loaded; repository code is never run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from bench.errors import BenchError
from bench.options import Option
from methods.components import Components, hf_tokenizer
from methods.loading import COMMON_OPTIONS, RANDOM, Built, build_sd, download_hint, looks_local, wants_random
from methods.sd21 import MULTISTEP_OPTIONS, MultiStepGenerator

DIFFUSERS_OPTIONS: dict[str, Option] = {
    "model": Option(None, str, help="hub id or local directory of a diffusers text-to-image pipeline"),
    **COMMON_OPTIONS,
    **MULTISTEP_OPTIONS,
    "guidance": Option(7.5, float, help="classifier-free guidance scale (no guidance at <= 1)", minimum=0),
}


def load_pipeline(model: str, revision: str | None, dtype: Any) -> tuple[Any, dict[str, Any]]:
    """A pipeline from a hub id (cache first when offline) or a directory, safetensors only, no safety checker."""
    from diffusers import DiffusionPipeline

    from bench.hub_errors import explain_download_failure, offline

    if looks_local(model):
        path = Path(model).expanduser()
        if not (path / "model_index.json").is_file():
            raise BenchError(f"model={model}: no model_index.json there; give a diffusers pipeline directory or hub id")
        source: dict[str, Any] = {"path": str(path.resolve())}
    else:
        if model.count("/") != 1:
            raise BenchError(f"model={model!r} is neither an existing directory nor a hub id of the form owner/name")
        with explain_download_failure(model, "the pipeline's configs and safetensors weights",
                                      download_hint(model, revision, "model")):
            path = Path(
                DiffusionPipeline.download(
                    model, revision=revision, use_safetensors=True, local_files_only=offline()
                )
            )
        source = {"id": model, "revision": path.name}
    from bench.hub_cache import is_toy

    if is_toy(path):  # toy-size random weights (bench.toy_hub), not the published model
        source["toy_hub"] = True
    try:
        pipe = DiffusionPipeline.from_pretrained(path, use_safetensors=True, torch_dtype=dtype, safety_checker=None)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise BenchError(f"cannot load the pipeline {model}: {first}; it must be a diffusers pipeline with "
                         "safetensors weights") from exc
    return pipe, source


def is_sd_like(pipe: Any) -> bool:
    """True for CLIP + UNet + VAE pipelines without extra conditioning (SD 1.x / 2.x layouts)."""
    needed = ("tokenizer", "text_encoder", "unet", "vae", "scheduler")
    if any(getattr(pipe, name, None) is None for name in needed):
        return False
    if getattr(pipe, "tokenizer_2", None) is not None or getattr(pipe, "text_encoder_2", None) is not None:
        return False
    unet_config = pipe.unet.config
    return getattr(unet_config, "addition_embed_type", None) is None and unet_config.in_channels == 4


class DiffusersPipelineGenerator(MultiStepGenerator):
    """A user-chosen diffusers pipeline with ``steps``, ``guidance`` and ``scheduler`` as arguments."""

    name = "diffusers"
    options: ClassVar[dict[str, Option]] = DIFFUSERS_OPTIONS

    def build(self) -> Built:
        from methods.configs import SD21_PIPELINE_SCHEDULER

        args = self.args
        if wants_random(args, self.name):
            built = build_sd(args, self.name, arch=self.arch, default_weights=None, device=self.device)
            built.scheduler_config = dict(SD21_PIPELINE_SCHEDULER)
            self.pipe = None
            return built
        if not args.get("model"):
            raise BenchError("method 'diffusers' needs model=HUB_ID_OR_DIRECTORY of a text-to-image pipeline "
                             "(or weights=random)")
        if args.get("weights") is not None:
            raise BenchError("method 'diffusers': give the pipeline as model=...; weights= only takes 'random'")
        pipe, source = load_pipeline(args["model"], args.get("revision"), self.dtype)
        sources = {"pipeline": source, "class": type(pipe).__name__, "unet": source}
        weights = RANDOM if source.get("toy_hub") else "pretrained"
        if is_sd_like(pipe):
            self.pipe = None
            if args.get("vae") == "tiny":
                raise BenchError("method 'diffusers': vae=tiny is not supported; use the pipeline's own VAE")
            parts = Components(hf_tokenizer(pipe.tokenizer), pipe.text_encoder, pipe.unet, pipe.vae, pipe.scheduler)
            return Built(parts, dict(pipe.scheduler.config), sources, weights)
        # Whole-pipeline mode: stages other than the denoiser are pass-throughs.
        if args["scheduler"] != "default" or args.get("vae") == "tiny":
            raise BenchError(f"method 'diffusers': {type(pipe).__name__} runs whole; scheduler= and vae=tiny "
                             "need a Stable Diffusion 1.x/2.x-style pipeline")
        self.pipe = pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        parts = Components(None, None, denoiser, pipe.vae, pipe.scheduler)
        return Built(parts, dict(pipe.scheduler.config), sources, weights)

    def load(self, device: Any, dtype: Any) -> None:
        self._start_load(device, dtype)
        self.built = self.build()
        if self.pipe is None:
            self._assemble(self.built)
            return
        self.unet = self.built.components.unet
        self.vae = self.built.components.vae
        self.scheduler = self.pipe.scheduler
        self.runtime = {"mode": "whole pipeline"}

    @property
    def noise_shape(self) -> tuple[int, ...]:
        if self.pipe is None:
            return super().noise_shape
        config = self.unet.config
        factor = getattr(self.pipe, "vae_scale_factor", 8)
        size = getattr(config, "sample_size", None) or 1024 // factor
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (config.in_channels, h, w)

    @property
    def image_size(self) -> tuple[int, int]:
        if self.pipe is None:
            return super().image_size
        factor = getattr(self.pipe, "vae_scale_factor", 8)
        _, h, w = self.noise_shape
        return (h * factor, w * factor)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        if self.pipe is None:
            return super().encode_prompts(prompts)
        return list(prompts)

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        if self.pipe is None:
            return super().denoise(noise, conditioning)
        import torch

        height, width = self.image_size
        kwargs: dict[str, Any] = {
            "prompt": conditioning,
            "latents": noise.to(self.device, self.dtype),
            "num_inference_steps": int(self.args["steps"]),
            "guidance_scale": float(self.args["guidance"]),
            "height": height,
            "width": width,
            "output_type": "pt",
        }
        if self.args["negative_prompt"] and self.guided:
            kwargs["negative_prompt"] = [self.args["negative_prompt"]] * len(conditioning)
        with torch.inference_mode():
            images = self.pipe(**kwargs).images
        return images.float().clamp(0, 1)

    def decode(self, latents: Any) -> Any:
        if self.pipe is None:
            return super().decode(latents)
        return latents

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["model"] = self.args.get("model")
        if getattr(self, "pipe", None) is not None:
            info["stages"] = "whole pipeline timed as the denoiser"
        if info["weights"] is None:
            info["weights"] = RANDOM if wants_random(self.args, self.name) else "pretrained"
        return info
