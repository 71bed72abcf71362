"""The generator plug-ins (sd21, sd-turbo, swiftbrush, sbv2, instaflow, diffusers) at toy size, offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from bench.cli import main  # noqa: E402
from bench.errors import BenchError  # noqa: E402
from bench.sample_noise import batch_noise  # noqa: E402

METHODS = ("sd21", "sd-turbo", "swiftbrush", "sbv2", "instaflow", "diffusers")
ONE_STEP = ("sd-turbo", "swiftbrush", "sbv2", "instaflow")
PROMPTS = ["a photo of a cat", "an oil painting of a lighthouse"]


#: Toy networks run fastest single-threaded, and do not fight parallel test processes for cores.
pytestmark = pytest.mark.usefixtures("one_thread_module")


def make(name: str, **args):
    """A registered method, built with --method-args and loaded on the CPU in fp32."""
    from bench import plugins

    gen = plugins.current().methods.get(name).build(**{k: str(v) for k, v in args.items()})
    gen.load(torch.device("cpu"), torch.float32)
    return gen


def tiny_args(name: str) -> dict:
    extra = {"sd21": {"steps": 2}, "diffusers": {"steps": 2, "weights": "random"}}
    return {"size": "tiny", **extra.get(name, {})}


def noise_for(gen, indices):
    return batch_noise(0, list(indices), gen.noise_shape)


def sd_alpha_bar(t: int) -> float:
    """Cumulative alpha of Stable Diffusion's scaled-linear schedule, computed from its definition."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return float(torch.cumprod(1 - betas, 0)[t])


# -- registration ----------------------------------------------------------------------------------------
def test_methods_are_registered_without_importing_torch():
    code = (
        "import sys, json\n"
        "from bench.commands.list_cmd import listing\n"
        "names = [m['name'] for m in listing('methods')['methods']]\n"
        "print(json.dumps({'names': names, 'torch': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(METHODS) <= set(data["names"])
    assert data["torch"] is False


# -- every pipeline runs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_pipeline_produces_images_of_the_right_size(name):
    gen = make(name, **tiny_args(name))
    images = gen.generate(noise_for(gen, range(2)), PROMPTS)
    assert images.shape == (2, 3, *gen.image_size) == (2, 3, 64, 64)
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    info = gen.describe()
    for key in ("weights", "steps", "guidance", "scheduler", "vae", "compile", "revision"):
        assert key in info, key
    assert info["weights"] == "random"
    json.dumps(info, default=str)


@pytest.mark.parametrize("name", ["sd-turbo", "sd21"])
def test_tiny_decoder_option(name):
    gen = make(name, **tiny_args(name), vae="tiny")
    assert type(gen.vae).__name__ == "AutoencoderTiny"
    images = gen.generate(noise_for(gen, range(1)), PROMPTS[:1])
    assert images.shape == (1, 3, 64, 64)
    assert gen.describe()["vae"] == "tiny"


# -- the update rules equal hand computations ------------------------------------------------------------
def test_one_step_x0_matches_hand_computation():
    gen = make("sd-turbo", size="tiny")
    z = noise_for(gen, range(2))
    cond = gen.encode_prompts(PROMPTS)
    with torch.no_grad():
        eps = gen.unet(z, torch.tensor([999, 999]), encoder_hidden_states=cond).sample
    a = sd_alpha_bar(999)
    expected = (z - (1 - a) ** 0.5 * eps) / a**0.5
    assert abs(gen.alpha_bar - a) < 1e-7
    torch.testing.assert_close(gen.denoise(z, cond), expected, rtol=1e-5, atol=1e-4)
    # decoding divides by the VAE scaling factor and maps [-1, 1] to [0, 1]
    with torch.no_grad():
        by_hand = (gen.vae.decode(expected / 0.18215).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(gen.decode(expected), by_hand, rtol=1e-5, atol=1e-5)


def test_v_prediction_formula():
    from methods.onestep import x0_from_prediction

    x, v, a = torch.randn(3, 4), torch.randn(3, 4), 0.3
    torch.testing.assert_close(x0_from_prediction(x, v, a, "v_prediction"), a**0.5 * x - (1 - a) ** 0.5 * v)


def test_instaflow_is_one_euler_step_at_t_1000():
    gen = make("instaflow", size="tiny")
    seen = []
    gen.unet.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(args[1].clone()), with_kwargs=True)
    z = noise_for(gen, range(2))
    cond = gen.encode_prompts(PROMPTS)
    out = gen.denoise(z, cond)
    assert seen[0].dtype == torch.float32 and seen[0].tolist() == [1000.0, 1000.0]
    with torch.no_grad():
        v = gen.unet(z, torch.full((2,), 1000.0), encoder_hidden_states=cond).sample
    torch.testing.assert_close(out, z + 1.0 * v)
    assert gen.describe()["prediction_type"] == "rectified_flow"


# -- multi-step: steps, guidance and scheduler reach the sampler -----------------------------------------
@pytest.mark.parametrize("guidance", [4.5, 1.0])
def test_steps_and_guidance_reach_the_scheduler(guidance):
    gen = make("sd21", size="tiny", steps=2, guidance=guidance, scheduler="ddim")
    assert type(gen.scheduler).__name__ == "DDIMScheduler"
    unet_out, step_in = [], []
    gen.unet.register_forward_hook(lambda mod, args, out: unet_out.append(out.sample.clone()))
    original_step = gen.scheduler.step

    def spy(model_output, t, sample, **kw):
        step_in.append(model_output.clone())
        return original_step(model_output, t, sample, **kw)

    gen.scheduler.step = spy
    z = noise_for(gen, range(2))
    gen.denoise(z, gen.encode_prompts(PROMPTS))
    assert len(gen.scheduler.timesteps) == 2 and len(unet_out) == 2 and len(step_in) == 2
    for out, combined in zip(unet_out, step_in, strict=True):
        if guidance > 1:
            assert out.shape[0] == 4  # [unconditional, conditional]
            u, c = out.chunk(2)
            torch.testing.assert_close(combined, u + guidance * (c - u))
        else:
            assert out.shape[0] == 2
            torch.testing.assert_close(combined, out)
    info = gen.describe()
    assert (info["steps"], info["guidance"], info["scheduler"]) == (2, guidance, "DDIMScheduler")


def test_default_scheduler_is_the_checkpoints():
    gen = make("sd21", size="tiny", steps=2)
    assert gen.describe()["scheduler"] == "PNDMScheduler"
    assert gen.num_function_evaluations == 2


# -- batching never changes a sample ---------------------------------------------------------------------
@pytest.mark.parametrize("name,args", [("sd-turbo", {}), ("sd21", {"steps": 1, "scheduler": "ddim"})])
def test_batch_size_does_not_change_outputs(name, args):
    gen = make(name, size="tiny", **args)
    prompts = PROMPTS + PROMPTS[:1]
    together = gen.generate(noise_for(gen, range(3)), prompts)
    alone = torch.cat([gen.generate(noise_for(gen, [i]), [prompts[i]]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_chunked_decode_equals_whole_batch():
    gen = make("sd-turbo", size="tiny", decode_chunk=1)
    latents = gen.denoise(noise_for(gen, range(3)), gen.encode_prompts(PROMPTS + PROMPTS[:1]))
    from methods.onestep import latents_to_images

    with torch.no_grad():
        whole = latents_to_images(gen.vae, latents)
    torch.testing.assert_close(gen.decode(latents), whole, rtol=1e-5, atol=1e-5)


# -- full-size architectures (meta device: shapes only) --------------------------------------------------
def _millions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize("arch", ["sd21", "sd15"])
def test_full_size_configs_have_published_parameter_counts(arch):
    from methods.configs import PUBLISHED_PARAMS_M
    from methods.loading import random_networks, random_taesd

    nets = random_networks(arch, device="meta")
    assert next(nets["unet"].parameters()).device.type == "meta"
    published = PUBLISHED_PARAMS_M[arch]
    assert _millions(nets["unet"]) == pytest.approx(published["unet"], rel=2e-3)
    assert _millions(nets["text_encoder"]) == pytest.approx(published["text_encoder"], rel=2e-3)
    decoder = _millions(nets["vae"].decoder) + _millions(nets["vae"].post_quant_conv)
    assert decoder == pytest.approx(published["vae_decoder"], rel=2e-3)
    assert nets["unet"].config.sample_size * 8 == 512
    if arch == "sd21":
        taesd = random_taesd(device="meta")
        assert 1.0 < _millions(taesd.decoder) < 1.5


# -- the student directory format (written by training) -------------------------------------------------
def test_sbv2_loads_a_student_directory_with_a_tiny_base(tmp_path):
    from methods.components import build_tiny_components
    from methods.sbv2 import SBv2Generator, write_model_card

    build_tiny_components(seed=3).unet.save_pretrained(tmp_path, safe_serialization=True)
    write_model_card(tmp_path, base="tiny", base_seed=3)
    gen = SBv2Generator(weights=str(tmp_path))
    gen.load("cpu", torch.float32)
    reference = make("sd-turbo", size="tiny", weights_seed=3)  # the same networks built in memory
    z = noise_for(gen, range(2))
    torch.testing.assert_close(gen.generate(z, PROMPTS), reference.generate(z, PROMPTS))
    info = gen.describe()
    assert info["weights"] == "random" and info["sources"]["base"] == "tiny"  # a toy base: never comparable
    assert info["sources"]["unet"]["path"] == str(tmp_path.resolve())


def test_sbv2_uses_the_x0_constant_its_card_records(tmp_path):
    """A student trained with SwiftBrush's fixed alpha_T = 0.0047 is evaluated with it; without one in the card
    the scheduler's alpha_bar_999 is used, as the SBv2 release does."""
    from bench.model_card import write_model_card
    from methods.components import SD_SCHEDULER_CONFIG, build_tiny_components
    from methods.sbv2 import SBv2Generator

    build_tiny_components(seed=3).unet.save_pretrained(tmp_path, safe_serialization=True)
    write_model_card(tmp_path, base="tiny", base_seed=3, alpha_T=0.0047)
    fixed = SBv2Generator(weights=str(tmp_path))
    fixed.load("cpu", torch.float32)
    assert fixed.alpha_bar == 0.0047 and fixed.describe()["alpha_T_source"] == "fixed"
    write_model_card(tmp_path, base="tiny", base_seed=3)
    plain = SBv2Generator(weights=str(tmp_path))
    plain.load("cpu", torch.float32)
    from diffusers import DDPMScheduler

    by_hand = float(DDPMScheduler.from_config(SD_SCHEDULER_CONFIG).alphas_cumprod[999])
    assert plain.alpha_bar == pytest.approx(by_hand, rel=1e-7) and plain.alpha_bar != 0.0047


def test_sbv2_rejects_non_safetensors_weights(tmp_path):
    from methods.components import build_tiny_components

    build_tiny_components().unet.save_pretrained(tmp_path, safe_serialization=False)
    (tmp_path / "bench_model.json").write_text('{"base": "tiny"}')
    with pytest.raises(BenchError, match="safetensors"):
        make("sbv2", weights=tmp_path)


# -- a local diffusers pipeline directory ----------------------------------------------------------------
def _save_tiny_pipeline(path: Path) -> None:
    from diffusers import StableDiffusionPipeline
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    from methods.components import build_tiny_components

    bpe = SimpleTokenizer()
    vocab = dict(bpe.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = sorted(bpe.bpe_ranks, key=bpe.bpe_ranks.get)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77)
    parts = build_tiny_components(seed=5)
    pipe = StableDiffusionPipeline(
        vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=tokenizer, unet=parts.unet,
        scheduler=parts.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path / "pipe", safe_serialization=True)


def test_diffusers_method_runs_a_local_pipeline(tmp_path):
    _save_tiny_pipeline(tmp_path)
    gen = make("diffusers", model=tmp_path / "pipe", steps=2, guidance=3.0, scheduler="euler")
    images = gen.generate(noise_for(gen, range(2)), PROMPTS)
    assert images.shape == (2, 3, 64, 64)
    info = gen.describe()
    assert info["scheduler"] == "EulerDiscreteScheduler" and info["steps"] == 2 and info["guidance"] == 3.0
    assert info["sources"]["pipeline"]["path"] == str((tmp_path / "pipe").resolve())
    assert info["weights"] == "pretrained"


# -- errors: one line, exit status 2 ---------------------------------------------------------------------
BAD = [
    (["--method", "sd-turbo", "--method-args", "gidance=2"], "has no option"),
    (["--method", "sd-turbo", "--method-args", "vae=medium"], "is not one of"),
    (["--method", "sd-turbo", "--method-args", "compile=maybe"], "not a valid bool"),
    (["--method", "sd-turbo", "--method-args", "size=tiny,weights=some/repo"], "size=tiny"),
    (["--method", "sd-turbo", "--method-args", "weights=not a repo"], "hub id"),
    (["--method", "sd21", "--method-args", "size=tiny,steps=0"], "steps=0"),
    (["--method", "sd21", "--method-args", "scheduler=magic"], "is not one of"),
    (["--method", "sbv2"], "needs weights="),
    (["--method", "sbv2", "--method-args", "weights=/no/such/student"], "no such directory"),
    (["--method", "diffusers"], "needs model="),
    (["--method", "sd-turboo"], "did you mean"),
    (["--method", "tiny", "--iters", "0"], "--iters"),
    (["--method", "tiny", "--height", "100"], "--height"),
    (["--method", "tiny", "--method-args", "guidance"], "key=value"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path):
    rc = main(["latency", *argv, "--device", "cpu", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("bench: error:") and "\n" not in err
    assert message in err


@pytest.mark.parametrize(
    "name,repo",
    [("sd-turbo", "stabilityai/sd-turbo"), ("swiftbrush", "thuanz123/swiftbrush"),
     ("instaflow", "XCLIU/instaflow_0_9B_from_sd_1_5"), ("sd21", "stabilityai/stable-diffusion-2-1-base")],
)
def test_offline_missing_weights_fail_fast_with_download_command(name, repo, monkeypatch, capsys, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    rc = main(["latency", "--method", name, "--device", "cpu", "--out", str(tmp_path / "x.json")])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert rc == 2 and elapsed < 20
    assert "\n" not in err and f"hf download {repo}" in err and "weights=" in err
    assert not (tmp_path / "x.json").exists()


def test_offline_missing_student_base_names_the_base(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from methods.components import build_tiny_components

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    build_tiny_components().unet.save_pretrained(tmp_path / "student", safe_serialization=True)
    with pytest.raises(BenchError, match=r"hf download stabilityai/sd-turbo.*base="):
        make("sbv2", weights=tmp_path / "student")
