"""One-step and few-step students of SDXL: ``sdxl-turbo``, ``dmd2``, ``sdxl-lightning`` and ``hyper-sd``.

Each is a :class:`methods.recipe.Recipe` whose settings are the authors' own, read from the file named in its
``source``; all run through diffusers' StableDiffusionXLPipeline (two CLIP text encoders, size and crop
micro-conditioning at the native resolution, the SDXL VAE in fp32 as the pipeline upcasts it).
"""

from __future__ import annotations

from typing import ClassVar

from bench.options import Option
from methods.recipe import RECIPE_OPTIONS, Recipe, RecipeGenerator

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_TURBO = "stabilityai/sdxl-turbo"
DMD2 = "tianweiy/DMD2"
SDXL_LIGHTNING = "ByteDance/SDXL-Lightning"
HYPER_SD = "ByteDance/Hyper-SD"

SDXL_TURBO_RECIPE = Recipe(
    repo=SDXL_TURBO, family="sdxl", resolution=512, steps=1, guidance=0.0,
    source="https://huggingface.co/stabilityai/sdxl-turbo README.md (Diffusers: num_inference_steps=1, "
           "guidance_scale=0.0; 512x512); scheduler: the repository's scheduler/scheduler_config.json",
    licence="sai-nc-community (Stability AI Non-Commercial Research Community License): non-commercial",
    non_commercial=True,
)


def lcm_student(unet_repo: str, unet_file: str, timestep: int, source: str, licence: str, **flags: bool) -> Recipe:
    """A one-step SDXL UNet that its card samples with one LCMScheduler step at ``timestep``, no guidance."""
    return Recipe(repo=SDXL_BASE, family="sdxl", resolution=1024, steps=1, guidance=0.0, timesteps=(timestep,),
                  scheduler="LCMScheduler", unet_repo=unet_repo, unet_file=unet_file, source=source,
                  licence=licence, **flags)


DMD2_RECIPE = lcm_student(
    DMD2, "dmd2_sdxl_1step_unet_fp16.bin", 399,
    "https://huggingface.co/tianweiy/DMD2 README.md, 1-step generation (LCMScheduler.from_config of the SDXL base "
    "scheduler, num_inference_steps=1, guidance_scale=0, timesteps=[399])",
    "cc-by-nc-4.0: non-commercial", non_commercial=True,
)


def lightning(steps: int) -> Recipe:
    """SDXL-Lightning's UNet checkpoint for ``steps`` steps with its trailing Euler sampler (x0 at one step)."""
    one = steps == 1
    return Recipe(
        repo=SDXL_BASE, family="sdxl", resolution=1024, steps=steps, guidance=0.0,
        scheduler="EulerDiscreteScheduler",
        scheduler_overrides={"timestep_spacing": "trailing", **({"prediction_type": "sample"} if one else {})},
        unet_repo=SDXL_LIGHTNING,
        unet_file="sdxl_lightning_1step_unet_x0.safetensors" if one else f"sdxl_lightning_{steps}step_unet.safetensors",
        source="https://huggingface.co/ByteDance/SDXL-Lightning README.md, Diffusers usage "
               + ("(1-step UNet: EulerDiscreteScheduler, timestep_spacing='trailing', prediction_type='sample')"
                  if one else "(2/4/8-step UNet: EulerDiscreteScheduler, timestep_spacing='trailing')")
               + f", num_inference_steps={steps}, guidance_scale=0",
        licence="openrail++",
    )


HYPER_SD_RECIPE = lcm_student(
    HYPER_SD, "Hyper-SDXL-1step-Unet.safetensors", 800,
    "https://huggingface.co/ByteDance/Hyper-SD README.md, 1-step SDXL UNet (LCMScheduler, num_inference_steps=1, "
    "guidance_scale=0, timesteps=[800]; the LCM sampler has no eta)",
    "openrail++",
)


HYPER_SD_LORA_RECIPE = Recipe(
    repo=SDXL_BASE, family="sdxl", resolution=1024, steps=1, guidance=0.0, scheduler="TCDScheduler",
    unet_repo=HYPER_SD, lora_file="Hyper-SDXL-1step-lora.safetensors", call={"eta": 1.0},
    source="https://huggingface.co/ByteDance/Hyper-SD README.md, 1-step unified SDXL LoRA (load_lora_weights, "
           "fuse_lora, TCDScheduler.from_config of the SDXL base scheduler, num_inference_steps=1, guidance_scale=0, "
           "eta=1.0)",
    licence="openrail++",
)
HYPER_SD_VARIANTS = {"unet": HYPER_SD_RECIPE, "lora": HYPER_SD_LORA_RECIPE}


class SDXLTurboGenerator(RecipeGenerator):
    """SDXL-Turbo (adversarial diffusion distillation of SDXL), one step at 512 px."""

    name = "sdxl-turbo"
    recipe = SDXL_TURBO_RECIPE


class DMD2Generator(RecipeGenerator):
    """DMD2's one-step SDXL UNet in the SDXL base pipeline, one LCM step at t = 399."""

    name = "dmd2"
    recipe = DMD2_RECIPE


LIGHTNING_VARIANTS = {f"{n}step": lightning(n) for n in (1, 2, 4, 8)}


class SDXLLightningGenerator(RecipeGenerator):
    """SDXL-Lightning: the 1-step x0 UNet by default, the 2/4/8-step UNets with ``variant=``."""

    name = "sdxl-lightning"
    recipe = LIGHTNING_VARIANTS["1step"]
    variants = LIGHTNING_VARIANTS
    options: ClassVar[dict[str, Option]] = {
        **RECIPE_OPTIONS,
        "variant": Option("1step", str, tuple(LIGHTNING_VARIANTS), help="checkpoint: 1step (default), 2step, "
                          "4step or 8step"),
    }


class HyperSDGenerator(RecipeGenerator):
    """Hyper-SD's one-step SDXL UNet (one LCM step at t = 800) or its one-step LoRA (``variant=lora``, TCD)."""

    name = "hyper-sd"
    recipe = HYPER_SD_RECIPE
    variants = HYPER_SD_VARIANTS
    options: ClassVar[dict[str, Option]] = {
        **RECIPE_OPTIONS,
        "variant": Option("unet", str, tuple(HYPER_SD_VARIANTS), help="unet: the 1-step SDXL UNet (LCM at t=800); "
                          "lora: the 1-step unified SDXL LoRA fused into SDXL base (TCD, eta=1)"),
    }
