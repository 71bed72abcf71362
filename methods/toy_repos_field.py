"""Toy-hub repositories (:mod:`bench.toy_hub`) of the one-step field (:mod:`methods.sdxl`, :mod:`methods.lcm`,
:mod:`methods.flux`, :mod:`methods.pixart_dmd`, :mod:`methods.sana_sprint`), in the real repositories' layouts.

Pipelines are written from the families' toy components (:mod:`methods.families`); the SDXL students' repositories
hold only their distilled UNet files (safetensors, or DMD2's tensors-only ``.bin``), as the real ones do, and
PixArt-Alpha-DMD holds its transformer folder (config + ``.bin``) and DDPM scheduler. The scheduler configs are
:data:`bench.toy_hub.SCHEDULERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.toy_hub import (
    DMD2,
    FLUX_SCHNELL,
    HYPER_SD,
    LCM_DREAMSHAPER,
    PIXART_BASE,
    PIXART_DMD,
    SANA_SPRINT,
    SANA_SPRINT_SMALL,
    SCHEDULERS,
    SDXL_BASE,
    SDXL_LIGHTNING,
    SDXL_TURBO,
    feature_extractor_files,
    json_bytes,
    prefixed,
    saved_files,
)
from methods.toy_repos import toy_safety_checker, toy_unet


def pipeline_repo_files(repo: str, pipeline: str, parts: dict[str, Any],
                        extra_index: dict[str, Any] | None = None) -> dict[str, bytes]:
    """A diffusers pipeline repository from built components: model_index.json, one folder per component
    (networks and tokenizers by ``save_pretrained``, the scheduler config as :data:`SCHEDULERS` has it)."""
    index: dict[str, Any] = {"_class_name": pipeline, "_diffusers_version": "0.25.0", **(extra_index or {})}
    files: dict[str, bytes] = {}
    for name, part in parts.items():
        if name == "scheduler":
            index[name] = ["diffusers", SCHEDULERS[repo]["_class_name"]]
            files["scheduler/scheduler_config.json"] = json_bytes(SCHEDULERS[repo])
        elif hasattr(part, "save_pretrained"):
            library = "diffusers" if type(part).__module__.startswith("diffusers") else "transformers"
            index[name] = [library, type(part).__name__]
            files.update(prefixed(name, saved_files(part)))
    files["model_index.json"] = json_bytes(index)
    return files


def state_dict_file(module: Any, name: str, fp16: bool = True) -> dict[str, bytes]:
    """A bare (fp16) state dict as the repository stores it: safetensors, or a tensors-only torch file (.bin)."""
    import io

    import torch

    dtype = torch.float16 if fp16 else torch.float32
    state = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
    if name.endswith(".safetensors"):
        from safetensors.torch import save

        return {name: save(state)}
    buf = io.BytesIO()
    torch.save(state, buf)
    return {name: buf.getvalue()}


def _toy_sdxl_unet(seed: int) -> Any:
    from diffusers import UNet2DConditionModel

    from methods.components import seeded
    from methods.families import TOY_SDXL_UNET

    return seeded(seed, lambda: UNet2DConditionModel(**TOY_SDXL_UNET))


def sdxl_parts(seed: int, repo: str) -> dict[str, Any]:
    """Toy SDXL pipeline components with ``repo``'s scheduler (text encoders and VAE seeded by ``seed``)."""
    from methods.families_dit import family_of
    from methods.recipe import Recipe

    return family_of("sdxl").toy_components(seed, Recipe(repo=repo, family="sdxl", resolution=1024))


def sdxl_repo_files(seed: int, repo: str, unet_seed: int) -> dict[str, bytes]:
    """An SDXL pipeline repository (SDXL base, SDXL-Turbo) at toy size; only the UNets differ between them."""
    parts = {**sdxl_parts(seed, repo), "unet": _toy_sdxl_unet(unet_seed)}
    return pipeline_repo_files(repo, "StableDiffusionXLPipeline", parts, {"force_zeros_for_empty_prompt": True})


def lcm_repo_files(seed: int) -> dict[str, bytes]:
    """SimianLuo/LCM_Dreamshaper_v7: an SD 1.5 pipeline whose UNet embeds the guidance scale."""
    from methods.families_dit import family_of
    from methods.recipe import Recipe

    parts = family_of("lcm").toy_components(seed, Recipe(repo=LCM_DREAMSHAPER, family="lcm", resolution=768))
    files = pipeline_repo_files(LCM_DREAMSHAPER, "LatentConsistencyModelPipeline", parts,
                                {"requires_safety_checker": True,
                                 "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
                                 "feature_extractor": ["transformers", "CLIPImageProcessor"]})
    files.update(prefixed("safety_checker", saved_files(toy_safety_checker(seed + 4))))
    files.update(prefixed("feature_extractor", feature_extractor_files()))
    return files


def dit_repo_files(seed: int, repo: str, family: str, pipeline: str) -> dict[str, bytes]:
    """A transformer-denoiser pipeline repository (FLUX, PixArt, SANA-Sprint) at toy size."""
    from methods.families_dit import family_of
    from methods.recipe import Recipe

    parts = family_of(family).toy_components(seed, Recipe(repo=repo, family=family, resolution=1024))
    return pipeline_repo_files(repo, pipeline, parts)


def pixart_dmd_files(seed: int) -> dict[str, bytes]:
    """PixArt-Alpha-DMD-XL-2-512x512: model_index.json, scheduler/ and transformer/ (weights as a .bin file)."""
    from methods.components import seeded
    from methods.families_dit import TOY_PIXART_TRANSFORMER

    def build() -> Any:
        from diffusers import PixArtTransformer2DModel

        return PixArtTransformer2DModel(**TOY_PIXART_TRANSFORMER)

    transformer = seeded(seed, build)
    config = {"_class_name": "Transformer2DModel", **{k: v for k, v in transformer.config.items()
                                                      if not k.startswith("_")}}
    index = {"_class_name": "PixArtAlphaPipeline", "_diffusers_version": "0.28.0.dev0",
             "scheduler": ["diffusers", "DDPMScheduler"], "transformer": ["diffusers", "Transformer2DModel"],
             "text_encoder": [None, None], "tokenizer": [None, None], "vae": [None, None]}
    files = {"model_index.json": json_bytes(index), "scheduler/scheduler_config.json": json_bytes(SCHEDULERS[PIXART_DMD]),
             "transformer/config.json": json_bytes(config)}
    files.update(prefixed("transformer", state_dict_file(transformer, "diffusion_pytorch_model.bin", fp16=False)))
    return files


#: Files of the distilled UNets that the SDXL students' model cards load into the SDXL base pipeline.
STUDENT_UNETS: dict[str, tuple[str, ...]] = {
    DMD2: ("dmd2_sdxl_1step_unet_fp16.bin",),
    SDXL_LIGHTNING: ("sdxl_lightning_1step_unet_x0.safetensors", "sdxl_lightning_2step_unet.safetensors",
                     "sdxl_lightning_4step_unet.safetensors", "sdxl_lightning_8step_unet.safetensors"),
    HYPER_SD: ("Hyper-SDXL-1step-Unet.safetensors",),
}


def student_unet_files(seed: int, repo: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for k, name in enumerate(STUDENT_UNETS[repo]):
        files.update(state_dict_file(_toy_sdxl_unet(seed + k), name))
    if repo == HYPER_SD:  # the 1-step unified LoRA for SDXL base (diffusers key layout)
        from safetensors.torch import save

        from methods.families import toy_lora_state

        files["Hyper-SDXL-1step-lora.safetensors"] = save(toy_lora_state(_toy_sdxl_unet(seed + 50), seed + 51))
    if repo == DMD2:  # the one-step SD 1.5 generator: an fp32 state dict of the SD 1.5 UNet in its run folder
        from methods.dmd2_sd15 import DMD2_SD15_FILE

        files.update(state_dict_file(toy_unet(seed + 50, sd15=True), DMD2_SD15_FILE, fp16=False))
    return files


def register_field_repos(register: Callable[..., None]) -> None:
    """``register(repo, files)`` for the one-step field's repositories; ``files(seed)`` builds the files."""
    register(SDXL_BASE, lambda seed: sdxl_repo_files(seed + 200, SDXL_BASE, seed + 201))
    register(SDXL_TURBO, lambda seed: sdxl_repo_files(seed + 200, SDXL_TURBO, seed + 211))
    for repo, offset in ((DMD2, 221), (SDXL_LIGHTNING, 231), (HYPER_SD, 241)):
        register(repo, lambda seed, repo=repo, offset=offset: student_unet_files(seed + offset, repo))
    register(LCM_DREAMSHAPER, lambda seed: lcm_repo_files(seed + 300))
    register(FLUX_SCHNELL, lambda seed: dit_repo_files(seed + 400, FLUX_SCHNELL, "flux", "FluxPipeline"))
    register(PIXART_BASE, lambda seed: dit_repo_files(seed + 500, PIXART_BASE, "pixart", "PixArtAlphaPipeline"))
    register(PIXART_DMD, lambda seed: pixart_dmd_files(seed + 511))
    for repo, offset in ((SANA_SPRINT, 600), (SANA_SPRINT_SMALL, 610)):
        register(repo, lambda seed, repo=repo, offset=offset: dit_repo_files(seed + offset, repo, "sana-sprint",
                                                                             "SanaSprintPipeline"))
