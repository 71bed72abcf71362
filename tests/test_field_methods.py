"""The one-step field (sdxl-turbo, lcm, dmd2, sdxl-lightning, hyper-sd, flux-schnell, pixart-dmd, sana-sprint): each equals the reference diffusers
pipeline called as its model card calls it, on the same toy components and noise; each runs by its real hub
id on the toy hub and at toy size through ``bench run``."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from bench.sample_noise import batch_noise  # noqa: E402
from bench.toy_hub import (  # noqa: E402
    FLUX_SCHNELL,
    LCM_DREAMSHAPER,
    PIXART_DMD,
    SANA_SPRINT,
    SCHEDULERS,
    SD15,
    SDXL_BASE,
    SDXL_TURBO,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")

PROMPTS = ["a photo of a cat", "an oil painting of a lighthouse"]
FIELD = ("sdxl-turbo", "lcm", "dmd2", "sdxl-lightning", "hyper-sd", "flux-schnell", "pixart-dmd", "sana-sprint")


def make(name: str, **args):
    from bench import plugins

    gen = plugins.current().methods.get(name).build(**{k: str(v) for k, v in args.items()})
    gen.load(torch.device("cpu"), torch.float32)
    return gen


def scheduler(repo: str, cls: str | None = None, **overrides):
    """The repository's scheduler config (as the toy hub mirrors it), optionally as another class."""
    config = {**SCHEDULERS[repo], **overrides}
    return getattr(diffusers, cls or config["_class_name"]).from_config(config)


def reference(gen, sched, **call):
    """The stock pipeline of ``gen``'s family on its networks with the card's scheduler and call arguments."""
    parts = {**gen.pipe.components, "scheduler": sched}
    extra = {"add_watermarker": False} if isinstance(gen.pipe, diffusers.StableDiffusionXLPipeline) else {}
    pipe = type(gen.pipe)(**parts, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt=PROMPTS, output_type="pt", **call).images


#: name -> (method args, the card's scheduler, the card's pipeline call)
CARDS = {
    # stabilityai/sdxl-turbo: pipe(prompt, num_inference_steps=1, guidance_scale=0.0), its own scheduler
    "sdxl-turbo": ({}, lambda: scheduler(SDXL_TURBO), {"num_inference_steps": 1, "guidance_scale": 0.0}),
    # tianweiy/DMD2: LCMScheduler.from_config(base), num_inference_steps=1, guidance_scale=0, timesteps=[399]
    "dmd2": ({}, lambda: scheduler(SDXL_BASE, "LCMScheduler"),
             {"num_inference_steps": 1, "guidance_scale": 0, "timesteps": [399]}),
    # ByteDance/SDXL-Lightning 1-step: trailing Euler, prediction_type="sample"
    "sdxl-lightning": ({}, lambda: scheduler(SDXL_BASE, "EulerDiscreteScheduler", timestep_spacing="trailing",
                                             prediction_type="sample"),
                       {"num_inference_steps": 1, "guidance_scale": 0}),
    # ByteDance/Hyper-SD 1-step UNet: LCMScheduler, num_inference_steps=1, guidance_scale=0, timesteps=[800]
    "hyper-sd": ({}, lambda: scheduler(SDXL_BASE, "LCMScheduler"),
                 {"num_inference_steps": 1, "guidance_scale": 0, "timesteps": [800]}),
    # SimianLuo/LCM_Dreamshaper_v7: num_inference_steps=4, guidance_scale=8.0, lcm_origin_steps=50
    "lcm": ({}, lambda: scheduler(LCM_DREAMSHAPER),
            {"num_inference_steps": 4, "guidance_scale": 8.0, "original_inference_steps": 50}),
    # black-forest-labs/FLUX.1-schnell: guidance_scale=0.0, num_inference_steps=4, max_sequence_length=256
    "flux-schnell": ({}, lambda: scheduler(FLUX_SCHNELL),
                     {"num_inference_steps": 4, "guidance_scale": 0.0, "max_sequence_length": 256}),
    # PixArt-sigma app/app_pixart_dmd.py: the DMD repository's DDPMScheduler, timesteps=[400], guidance_scale=1,
    # num_inference_steps=1, max_sequence_length=120 (binning off: toy sizes are not in the 512 table)
    "pixart-dmd": ({}, lambda: scheduler(PIXART_DMD),
                   {"num_inference_steps": 1, "guidance_scale": 1, "timesteps": [400], "max_sequence_length": 120,
                    "use_resolution_binning": False}),
    # SANA-Sprint docs: pipeline(prompt=prompt, num_inference_steps=2), the rest the pipeline's defaults
    "sana-sprint": ({}, lambda: scheduler(SANA_SPRINT), {"num_inference_steps": 2, "use_resolution_binning": False}),
}


@pytest.mark.parametrize("name", FIELD)
def test_equals_the_reference_pipeline(name):
    args, sched, call = CARDS[name]
    gen = make(name, size="tiny", **args)
    noise = batch_noise(0, [0, 1], gen.noise_shape)
    ours = gen.generate(noise, PROMPTS)
    extra = {"generator": gen.call_arguments(noise)["generator"]} if call["num_inference_steps"] > 1 else {}
    latents = noise.clone()
    if name == "flux-schnell":  # FluxPipeline takes latents as 2 x 2 patches
        latents = diffusers.FluxPipeline._pack_latents(latents, *latents.shape)
    height, width = gen.image_size
    ref = reference(gen, sched(), latents=latents, height=height, width=width, **call, **extra)
    assert ours.shape == ref.shape == (2, 3, *gen.image_size)
    assert float((ours - ref).abs().max()) < 1e-5
    # the sample is not the noise decoded, nor a constant: the denoiser ran
    assert float(ours.std()) > 0


def test_lightning_few_step_variants_and_lcm_steps():
    gen = make("sdxl-lightning", size="tiny", variant="4step")
    noise = batch_noise(0, [0, 1], gen.noise_shape)
    ref = reference(gen, scheduler(SDXL_BASE, "EulerDiscreteScheduler", timestep_spacing="trailing"),
                    latents=noise.clone(), num_inference_steps=4, guidance_scale=0)
    assert float((gen.generate(noise, PROMPTS) - ref).abs().max()) < 1e-5
    assert gen.num_function_evaluations == 4 and gen.describe()["unet_file"] == "sdxl_lightning_4step_unet.safetensors"
    for name in ("lcm", "flux-schnell", "sana-sprint"):
        one = make(name, size="tiny", steps=1)
        assert one.num_function_evaluations == 1
        assert one.generate(batch_noise(0, [0], one.noise_shape), PROMPTS[:1]).shape == (1, 3, *one.image_size)


def test_few_step_noise_depends_only_on_the_sample():
    """LCM re-noises between steps; sample 1 is the same whether generated alone or beside sample 0."""
    gen = make("lcm", size="tiny", steps=2)
    both = gen.generate(batch_noise(0, [0, 1], gen.noise_shape), PROMPTS)
    alone = gen.generate(batch_noise(0, [1], gen.noise_shape), PROMPTS[1:])
    assert float((both[1:] - alone).abs().max()) < 1e-5


def test_listed_with_licences():
    rc, out, err = run_cli("list", "methods", "--json")
    assert rc == 0, err
    methods = {m["name"]: m for m in json.loads(out)["methods"]}
    for name in FIELD:
        assert methods[name]["licence"] and methods[name]["settings_source"].startswith("https://")
    assert methods["sdxl-turbo"]["non_commercial"] and methods["dmd2"]["non_commercial"]
    assert not methods["sdxl-lightning"]["non_commercial"] and methods["lcm"]["licence"] == "mit"
    assert methods["sana-sprint"]["non_commercial"] and methods["flux-schnell"]["licence"] == "apache-2.0"
    assert methods["sdxl-lightning"]["variants"] == ["1step", "2step", "4step", "8step"]


@pytest.mark.parametrize("name", [*FIELD, "dmd2-sd15"])
def test_runs_by_its_real_id_on_the_toy_hub(name, on_toy_hub, tmp_path):
    argv = ["run", "--method", name, "--suite", "smoke", "--limit", "2", "--device", "cpu", "--metrics", "none",
            "--out", str(tmp_path), "--run-name", "r"]
    rc, _, err = run_cli(*argv)
    assert rc == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    generator = results["config"]["generator"]
    assert results["weights"] == "random" and not results["comparable"]
    assert all(s.get("toy_hub") for s in generator["sources"].values())
    assert generator["licence"] and generator["settings_source"]


@pytest.mark.parametrize("name", [*FIELD, "dmd2-sd15"])
def test_runs_at_toy_size(name, tmp_path):
    argv = ["run", "--method", name, "--method-args", "size=tiny", "--suite", "smoke", "--limit", "2",
            "--device", "cpu", "--metrics", "none", "--out", str(tmp_path), "--run-name", "r"]
    rc, _, err = run_cli(*argv)
    assert rc == 0, err
    assert (tmp_path / "r" / "results.json").is_file()


def test_missing_student_file_is_one_line(on_toy_hub, tmp_path):
    rc, _, err = run_cli("run", "--method", "dmd2", "--method-args", f"unet={tmp_path}", "--suite", "smoke",
                         "--limit", "2", "--device", "cpu", "--metrics", "none", "--out", str(tmp_path / "o"))
    assert rc == 2 and "dmd2_sdxl_1step_unet_fp16.bin is missing" in err and "Traceback" not in err


def test_reproduce_field_plans_every_method():
    rc, out, err = run_cli("reproduce", "field", "--dry-run")
    assert rc == 0, err
    planned = {line.split("--method ")[1].split()[0] for line in out.splitlines() if line.startswith("python -m bench run")}
    assert planned == {*FIELD, "dmd2-sd15"}
    assert "--method sana-sprint --method-args steps=1" in out  # the published SANA-Sprint numbers are one-step


def test_field_table_cites_every_published_number():
    from bench.report.data import paper

    table = paper().table("field")
    assert table.protocol == "field" and paper().protocol_of(table)["suite"] == "coco30k"
    for row in table.rows:
        assert row.source == "published"
        if {"fid", "clip_score", "geneval"} & set(row.values):  # a published number names its source and protocol
            assert any(p.startswith("source: ") and "arXiv" in p for p in row.problems), row.label


@pytest.mark.parametrize("name", ["flux-schnell", "sdxl-turbo"])
def test_latency_at_another_size(name, tmp_path):
    """The pipeline's size follows the noise (``bench latency --height/--width``), FLUX's packing included."""
    out = tmp_path / "lat.json"
    rc, _, err = run_cli("latency", "--method", name, "--method-args", "size=tiny", "--device", "cpu", "--height",
                         "48", "--width", "64", "--iters", "1", "--repeats", "1", "--warmup", "0", "--out", str(out))
    assert rc == 0, err
    record = json.loads(out.read_text())
    assert (record["protocol"]["height"], record["protocol"]["width"]) == (48, 64)
    gen = make(name, size="tiny")
    noise = torch.randn(1, gen.noise_shape[0], 48 // gen.pipe.vae_scale_factor, 64 // gen.pipe.vae_scale_factor)
    assert gen.generate(noise, PROMPTS[:1]).shape == (1, 3, 48, 64)


@pytest.mark.parametrize("exact", [False, True])
def test_dmd2_sd15_is_the_authors_one_step_formula(exact):
    """x0 = (z - sqrt(1 - a) eps) / sqrt(a) at t = 999 with the script's a = 0.0047 (exact_alpha: the scheduler's
    alpha_bar, which is what diffusers' DDPM step predicts as x0), decoded by the SD VAE."""
    gen = make("dmd2-sd15", size="tiny", exact_alpha=exact)
    noise = batch_noise(0, [0, 1], gen.noise_shape)
    with torch.no_grad():
        ids = gen.tokenize(PROMPTS)
        eps = gen.unet(noise, torch.full((2,), 999), encoder_hidden_states=gen.text_encoder(ids)[0]).sample
        if exact:
            x0 = scheduler(SD15, "DDPMScheduler").step(eps, 999, noise).pred_original_sample
        else:
            x0 = (noise - (1 - 0.0047) ** 0.5 * eps) / 0.0047**0.5
        ref = (gen.vae.decode(x0 / 0.18215).sample / 2 + 0.5).clamp(0, 1)
    assert float((gen.generate(noise, PROMPTS) - ref).abs().max()) < 1e-4
    assert gen.describe()["alpha_T"] == (pytest.approx(0.00466, abs=1e-5) if exact else 0.0047)


def test_hyper_sd_lora_equals_the_card(on_toy_hub, tmp_path):
    """variant=lora: the card's 1-step LoRA loaded and fused into SDXL base, TCDScheduler, eta=1, one step."""
    from methods.families import toy_lora_state
    from methods.families_dit import family_of
    from methods.sdxl import HYPER_SD_LORA_RECIPE

    gen = make("hyper-sd", size="tiny", variant="lora")
    noise = batch_noise(0, [0, 1], gen.noise_shape)
    fresh = family_of("sdxl").toy_components(0, HYPER_SD_LORA_RECIPE)  # the same seeded networks, not fused yet
    pipe = diffusers.StableDiffusionXLPipeline(**{**fresh, "scheduler": scheduler(SDXL_BASE, "TCDScheduler")})
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(toy_lora_state(fresh["unet"], 7))
    pipe.fuse_lora()
    h, w = gen.image_size
    ref = pipe(prompt=PROMPTS, num_inference_steps=1, guidance_scale=0, eta=1.0, latents=noise.clone(), height=h,
               width=w, output_type="pt").images
    ours = gen.generate(noise, PROMPTS)
    assert float((ours - ref).abs().max()) < 1e-5
    plain = make("hyper-sd", size="tiny")  # the UNet variant: another network and sampler
    assert float((plain.generate(noise, PROMPTS) - ours).abs().max()) > 1e-3
    rc, _, err = run_cli("run", "--method", "hyper-sd", "--method-args", "variant=lora", "--suite", "smoke",
                         "--limit", "2", "--device", "cpu", "--metrics", "none", "--out", str(tmp_path),
                         "--run-name", "r")
    assert rc == 0, err
    sources = json.loads((tmp_path / "r" / "results.json").read_text())["config"]["generator"]["sources"]
    assert sources["lora"]["file"] == "Hyper-SDXL-1step-lora.safetensors" and sources["lora"]["toy_hub"]
