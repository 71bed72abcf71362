"""Built-in generator plug-ins. Each lives in its own module and is imported only when used."""

from bench.hookspecs import hookimpl


@hookimpl
def register_methods(register):
    register(
        "tiny",
        "methods.tiny:TinyGenerator",
        description="toy-size SD 2.1 architecture, seeded random weights, one step (offline default)",
        nfe=1,
    )
    register(
        "sd21",
        "methods.sd21:SD21Generator",
        description="Stable Diffusion 2.1-base, 25 steps, classifier-free guidance (guidance=, scheduler=)",
        nfe=25,
    )
    register(
        "sd-turbo",
        "methods.sd_turbo:SDTurboGenerator",
        description="stabilityai/sd-turbo, one step at t=999, no guidance",
        nfe=1,
    )
    register(
        "swiftbrush",
        "methods.swiftbrush:SwiftBrushGenerator",
        description="SwiftBrush UNet (thuanz123/swiftbrush) + SD 2.1-base text encoder and VAE, one step",
        nfe=1,
    )
    register(
        "sbv2",
        "methods.sbv2:SBv2Generator",
        description="SwiftBrush v2 student (weights=DIR from training) + SD-Turbo text encoder and VAE, one step",
        nfe=1,
    )
    register(
        "instaflow",
        "methods.instaflow:InstaFlowGenerator",
        description="InstaFlow-0.9B (SD 1.5 rectified flow), one Euler step, no safety checker",
        nfe=1,
    )
    _register_field(register)
    register(
        "diffusers",
        "methods.diffusers_pipeline:DiffusersPipelineGenerator",
        description="any diffusers text-to-image pipeline (model=ID_OR_DIR, steps=, guidance=, scheduler=)",
    )
    register(
        "images",
        "methods.images:ImagesMethod",
        description="no generation: images made elsewhere (dir=FOLDER|ZIP|TAR|NPZ, match=auto|index|sbv2|hpsv2|run|list)",
        nfe=0,
    )


def _register_field(register) -> None:
    """The one-step and few-step field since 2023, each with its authors' own sampling settings (a Recipe)."""
    from methods.flux import FLUX_SCHNELL_RECIPE
    from methods.lcm import LCM_RECIPE
    from methods.pixart_dmd import PIXART_DMD_RECIPE
    from methods.recipe import recipe_info
    from methods.sana_sprint import SANA_SPRINT_VARIANTS
    from methods.sdxl import DMD2_RECIPE, HYPER_SD_VARIANTS, LIGHTNING_VARIANTS, SDXL_TURBO_RECIPE

    field = [
        ("sdxl-turbo", "methods.sdxl:SDXLTurboGenerator", SDXL_TURBO_RECIPE, None,
         "stabilityai/sdxl-turbo, one step, no guidance, 512 px (SDXL)"),
        ("lcm", "methods.lcm:LCMGenerator", LCM_RECIPE, None,
         "SimianLuo/LCM_Dreamshaper_v7, LCMScheduler, 4 steps (steps=1-4), embedded guidance w=8"),
        ("dmd2", "methods.sdxl:DMD2Generator", DMD2_RECIPE, None,
         "tianweiy/DMD2 one-step SDXL UNet, LCMScheduler at t=399, no guidance, 1024 px"),
        ("sdxl-lightning", "methods.sdxl:SDXLLightningGenerator", LIGHTNING_VARIANTS["1step"], LIGHTNING_VARIANTS,
         "ByteDance/SDXL-Lightning 1-step x0 UNet, trailing Euler (variant=2step/4step/8step), 1024 px"),
        ("hyper-sd", "methods.sdxl:HyperSDGenerator", HYPER_SD_VARIANTS["unet"], HYPER_SD_VARIANTS,
         "ByteDance/Hyper-SD one-step SDXL UNet, LCMScheduler at t=800 (variant=lora: 1-step LoRA, TCD eta=1)"),
        ("sana-sprint", "methods.sana_sprint:SanaSprintGenerator", SANA_SPRINT_VARIANTS["1.6B"], SANA_SPRINT_VARIANTS,
         "SANA-Sprint 1.6B (variant=0.6B), 2 sCM steps (steps=1), embedded guidance 4.5, 1024 px, DC-AE"),
        ("flux-schnell", "methods.flux:FluxSchnellGenerator", FLUX_SCHNELL_RECIPE, None,
         "black-forest-labs/FLUX.1-schnell, 4 Euler steps (steps=1-4), no guidance, 256 T5 tokens, 1024 px"),
        ("pixart-dmd", "methods.pixart_dmd:PixArtDMDGenerator", PIXART_DMD_RECIPE, None,
         "PixArt-alpha/PixArt-Alpha-DMD-XL-2-512x512, one step at t=400 (x0), 512 px"),
    ]
    register("dmd2-sd15", "methods.dmd2_sd15:DMD2SD15Generator",
             description="tianweiy/DMD2 one-step SD 1.5 generator (FID 8.35 checkpoint), t=999, alpha 0.0047",
             nfe=1, licence="cc-by-nc-4.0: non-commercial", non_commercial=True, gated=False, model="tianweiy/DMD2",
             settings_source="https://github.com/tianweiy/DMD2 main/test_folder_sd.py")
    for name, target, recipe, variants, description in field:
        register(name, target, description=description, **recipe_info(recipe, variants=variants))


@hookimpl
def register_toy_repos(register):
    """The generator repositories of the offline toy hub (:mod:`bench.toy_hub`)."""
    from methods.toy_repos import register_sd_repos
    from methods.toy_repos_field import register_field_repos

    register_sd_repos(register)
    register_field_repos(register)
