"""``sd21``: Stable Diffusion 2.1-base, the multi-step teacher (25 steps, classifier-free guidance).

The stages are the usual ones: the text encoder runs on the prompts (and, with guidance, on the negative
prompt), the denoiser runs ``steps`` scheduler steps from the caller's noise, and the VAE decodes. With
``guidance > 1`` each step evaluates the UNet on [unconditional, conditional] and combines the predictions as
``u + guidance * (c - u)``. The scheduler is the one the checkpoint ships (``scheduler=default``) or a named
deterministic diffusers scheduler; stochastic schedulers are left out so a sample depends only on its noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from bench.generator import Generator
from bench.options import Option
from methods.loading import COMMON_OPTIONS, RANDOM, Built, build_sd, scheduler_from_config, sd_provenance
from methods.onestep import LatentShapes, latents_to_images, place
from methods.runtime import prepare_modules

SD21_BASE = "stabilityai/stable-diffusion-2-1-base"

#: ``scheduler=`` choices -> diffusers classes (``default``: the class in the checkpoint's scheduler config).
SCHEDULERS: dict[str, str | None] = {
    "default": None,
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}

MULTISTEP_OPTIONS: dict[str, Option] = {
    "steps": Option(25, int, help="denoising steps", minimum=1),
    "guidance": Option(4.5, float, help="classifier-free guidance scale (no guidance at <= 1)", minimum=0),
    "scheduler": Option("default", str, tuple(SCHEDULERS), help="diffusers scheduler"),
    "negative_prompt": Option("", str, help="prompt of the unconditional branch"),
}


class MultiStepGenerator(LatentShapes, Generator):
    """Text encoder -> ``steps`` UNet evaluations through a diffusers scheduler (with CFG) -> VAE decoder.

    Subclasses provide :meth:`build`; the caller's noise is the initial latent (scaled by the scheduler's
    ``init_noise_sigma``).
    """

    arch: ClassVar[str] = "sd21"

    def build(self) -> Built:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def load(self, device: Any, dtype: Any) -> None:
        self._start_load(device, dtype)
        self.built = self.build()
        self._assemble(self.built)

    def _start_load(self, device: Any, dtype: Any) -> None:
        import torch

        from bench.errors import BenchError

        self.device, self.dtype = torch.device(device), dtype
        if self.args["steps"] < 1:
            raise BenchError(f"method {self.name!r}: steps={self.args['steps']} must be at least 1")

    def _assemble(self, built: Built) -> None:
        """Place the built networks on the device and set up the scheduler and inference options."""
        parts = built.components
        self.tokenize = parts.tokenize
        self.text_encoder = place(parts.text_encoder, self.device, self.dtype)
        self.unet = place(parts.unet, self.device, self.dtype)
        self.vae = place(parts.vae, self.device, self.dtype)
        self.scheduler = scheduler_from_config(built.scheduler_config, SCHEDULERS[self.args["scheduler"]])
        self.decode_chunk = int(self.args.get("decode_chunk") or 0)
        modules = {"text_encoder": self.text_encoder, "unet": self.unet, "vae": self.vae}
        self.runtime = prepare_modules(modules, self.args)

    @property
    def guided(self) -> bool:
        """Whether classifier-free guidance is on (guidance > 1)."""
        return float(self.args["guidance"]) > 1.0


    @property
    def num_function_evaluations(self) -> int:
        return int(self.args["steps"])

    def _embed(self, prompts: Sequence[str]) -> Any:
        ids = self.tokenize(prompts).to(self.device)
        return self.text_encoder(ids)[0]

    def truncated_prompts(self, prompts: Sequence[str]) -> tuple[int, int] | None:
        from methods.components import clip_truncation

        return clip_truncation(prompts)

    def encode_prompts(self, prompts: Sequence[str]) -> Any:
        import torch

        with torch.inference_mode():
            cond = self._embed(prompts)
            uncond = self._embed([self.args["negative_prompt"]] * len(prompts)) if self.guided else None
        return {"cond": cond, "uncond": uncond}

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        import torch

        scheduler = self.scheduler
        guidance = float(self.args["guidance"])
        with torch.inference_mode():
            scheduler.set_timesteps(int(self.args["steps"]), device=self.device)
            latents = noise.to(self.device, self.dtype) * scheduler.init_noise_sigma
            cond, uncond = conditioning["cond"], conditioning["uncond"]
            embeds = torch.cat([uncond, cond]) if self.guided else cond
            for t in scheduler.timesteps:
                model_input = torch.cat([latents, latents]) if self.guided else latents
                model_input = scheduler.scale_model_input(model_input, t)
                pred = self.unet(model_input, t, encoder_hidden_states=embeds).sample
                if self.guided:
                    pred_uncond, pred_cond = pred.chunk(2)
                    pred = pred_uncond + guidance * (pred_cond - pred_uncond)
                latents = scheduler.step(pred, t, latents).prev_sample.to(self.dtype)
            return latents

    def decode(self, latents: Any) -> Any:
        import torch

        with torch.inference_mode():
            return latents_to_images(self.vae, latents, self.decode_chunk)

    def describe(self) -> dict[str, Any]:
        scheduler = getattr(self, "scheduler", None)
        return {
            **super().describe(),
            **sd_provenance(self),
            "steps": int(self.args["steps"]),
            "guidance": float(self.args["guidance"]),
            "negative_prompt": self.args["negative_prompt"],
            "scheduler": type(scheduler).__name__ if scheduler is not None else self.args["scheduler"],
            "scheduler_config": dict(scheduler.config) if scheduler is not None else None,
        }


class SD21Generator(MultiStepGenerator):
    """Stable Diffusion 2.1-base at 512 px; the paper evaluates guidance 2, 4.5 (the teacher) and 7.5."""

    name = "sd21"
    default_weights = SD21_BASE
    options: ClassVar[dict[str, Option]] = {**COMMON_OPTIONS, **MULTISTEP_OPTIONS}

    def build(self) -> Built:
        from methods.configs import SD21_PIPELINE_SCHEDULER

        built = build_sd(self.args, self.name, arch=self.arch, default_weights=self.default_weights,
                         device=self.device)
        if built.weights == RANDOM:
            built.scheduler_config = dict(SD21_PIPELINE_SCHEDULER)
        return built
