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
