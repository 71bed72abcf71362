"""The official SwiftBrush behaviour of the trainer, its reproducibility and its safety rails."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.cli import main

WEIGHTS = "diffusion_pytorch_model.safetensors"
LONG_PROMPT = " ".join(f"word{i}" for i in range(90))  # about 180 BPE tokens: over the 77-token limit


pytestmark = pytest.mark.usefixtures("one_thread_module")  # the toy networks train faster on one thread


def trainer_for(tmp_path: Path, **overrides):
    from training.config import build_config
    from training.trainer import Trainer

    settings = {"clip_loss": False, "ema": False, "log_with": "csv", "progress_bar": False, **overrides}
    trainer = Trainer(build_config("tiny", overrides=settings), tmp_path)
    trainer.setup()
    return trainer


def perturb_lora_teacher(trainer, scale: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in trainer.teacher.named_parameters():
            if "lora_B" in name:
                p.copy_(scale * torch.randn(p.shape, generator=gen))


def guided(teacher, x_t, t, cond, uncond, scale, adapters: bool):
    (teacher.enable_adapters if adapters else teacher.disable_adapters)()
    try:
        u = teacher(x_t, t, encoder_hidden_states=uncond.expand(x_t.shape[0], -1, -1)).sample
        c = teacher(x_t, t, encoder_hidden_states=cond).sample
    finally:
        teacher.enable_adapters()
    return u + scale * (c - u)


# -- the VSD gradient and the LoRA-teacher loss ----------------------------------------------------------
def test_vsd_gradient_with_guided_lora_teacher_equals_autograd_by_hand(tmp_path):
    from methods.components import SD_SCHEDULER_CONFIG
    from training.models import trainable_state
    from training.vsd import alphas_cumprod_from_config

    trainer = trainer_for(tmp_path)
    perturb_lora_teacher(trainer)
    student, teacher = trainer.student_module(), trainer.teacher
    params = trainable_state(student)
    z = torch.randn((2, *trainer.latent_shape), generator=torch.Generator().manual_seed(1))
    cond, uncond = trainer.encode(["a red fox", "a lighthouse"]), trainer.encode([""])

    trainer.vsd_loss(trainer.student_x0(student, z, cond), cond, trainer.generator(0, 0, 0)).backward()
    got = {n: p.grad.clone() for n, p in params.items()}
    student.zero_grad(set_to_none=True)

    gen = trainer.generator(0, 0, 0)
    t = torch.randint(20, 981, (2,), generator=gen)
    noise = torch.randn((2, *trainer.latent_shape), generator=gen)
    a = alphas_cumprod_from_config(SD_SCHEDULER_CONFIG).float()[t].view(-1, 1, 1, 1)
    x0 = trainer.student_x0(student, z, cond)
    with torch.no_grad():
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        eps_teacher = guided(teacher, x_t, t, cond, uncond, 4.5, adapters=False)
        eps_lora = guided(teacher, x_t, t, cond, uncond, 4.5, adapters=True)
        eps_lora_cond = teacher(x_t, t, encoder_hidden_states=cond).sample
    ((x0 * ((1 - a) * (eps_teacher - eps_lora))).sum() / x0.numel()).backward()
    assert any(float(g.abs().max()) > 0 for g in got.values())
    for name, p in params.items():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)
    # the conditional-only LoRA prediction (lora_teacher=prolificdreamer) would give another gradient
    assert not torch.allclose(eps_lora, eps_lora_cond, atol=1e-4)


@pytest.mark.parametrize("lora_teacher", ["swiftbrush", "prolificdreamer"])
def test_first_student_gradient_is_zero_only_with_the_guided_lora_teacher(tmp_path, lora_teacher):
    first = trainer_for(tmp_path, lora_teacher=lora_teacher).train_step()
    if lora_teacher == "swiftbrush":  # adapter B = 0: LoRA teacher == teacher, both guided
        assert first["loss_vsd"] == 0.0 and first["grad_norm_student"] == 0.0
    else:  # guided teacher minus conditional LoRA teacher: not zero
        assert first["loss_vsd"] > 0 and first["grad_norm_student"] > 0


@pytest.mark.parametrize("rule", ["batch", "sample"])
def test_lora_teacher_loss_is_alpha_bar_weighted_with_seeded_empty_prompts(tmp_path, rule):
    """``batch`` (default, the official trainer): one draw empties the whole batch's captions together;
    ``sample``: one draw per sample."""
    from methods.components import SD_SCHEDULER_CONFIG
    from training.vsd import alphas_cumprod_from_config

    trainer = trainer_for(tmp_path, seed=3, **({} if rule == "batch" else {"null_prompt": "sample"}))
    assert trainer.config.null_prompt == rule
    b = 20
    x0 = torch.randn((b, *trainer.latent_shape), generator=torch.Generator().manual_seed(2))
    cond, uncond = trainer.encode([f"prompt {i}" for i in range(b)]), trainer.encode([""])
    alphas = alphas_cumprod_from_config(SD_SCHEDULER_CONFIG).float()

    def draws(step):  # t ~ U{0..999} (not [t_min, t_max]), noise, then the drop draw(s)
        gen = trainer.generator(step, 0, 1)
        t = torch.randint(0, 1000, (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        return t, noise, torch.rand(1 if rule == "batch" else b, generator=gen).expand(b) < 0.1

    wanted = (lambda d: bool(d.all())) if rule == "batch" else (lambda d: 0 < int(d.sum()) < b)
    dropped = next(s for s in range(400) if wanted(draws(s)[2]))
    for step in (dropped, next(s for s in range(400) if not draws(s)[2].any())):
        t, noise, drop = draws(step)
        with torch.no_grad():
            loss = trainer.lora_teacher_loss(x0, cond, trainer.generator(step, 0, 1))
            a = alphas[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise

            def by_hand(c, x_t=x_t, t=t, a=a, noise=noise):
                pred = trainer.teacher(x_t, t, encoder_hidden_states=c).sample
                return ((a.sqrt() * pred - a.sqrt() * noise) ** 2).mean()

            expected = by_hand(torch.where(drop[:, None, None], uncond.expand(b, -1, -1), cond))
            captions_only = by_hand(cond)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-8)
        assert bool(torch.isclose(loss, captions_only, rtol=1e-6, atol=0)) == (not drop.any())


# -- reproducibility, resume, pickle-free checkpoints ------------------------------------------------------
def distill(out: Path, *settings: str, steps: int = 2, resume: str | None = None) -> int:
    argv = ["distill", "--preset", "tiny", "--output-dir", str(out), "--max-steps", str(steps),
            "--set", "progress_bar=false", "sample_every=0", "log_with=csv", *settings]
    return main([*argv, "--resume", resume] if resume else argv)


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeded")
    prompts = root / "prompts.txt"
    prompts.write_text(f"a red fox\na lighthouse at dawn\n{LONG_PROMPT}\n")
    runs = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        runs[name] = root / name
        assert distill(runs[name], f"seed={seed}", f"prompts={prompts}") == 0
    return runs


def test_same_seed_same_export_other_seed_other_export(seeded_runs):
    first, again, other = (load_file(str(seeded_runs[k] / WEIGHTS)) for k in ("first", "again", "other"))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_truncated_prompts_are_counted(seeded_runs):
    from training.prompts import count_truncated

    info = json.loads((seeded_runs["first"] / "run_info.json").read_text())
    assert (info["prompts"], info["prompts_truncated"], info["token_limit"]) == (3, 1, 77)
    assert json.loads((seeded_runs["first"] / "bench_model.json").read_text())["prompts_truncated"] == 1
    assert count_truncated(["short", LONG_PROMPT, "é" * 80]) == 2


def test_resume_with_changed_settings_is_refused(seeded_runs, capsys):
    run = seeded_runs["first"]
    prompts = run.parent / "prompts.txt"
    for steps, extra in ((3, ()), (2, ("lora_teacher=prolificdreamer",))):
        capsys.readouterr()
        assert distill(run, "seed=0", f"prompts={prompts}", *extra, steps=steps, resume="latest") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("max_steps=2" in err if steps == 3 else "lora_teacher" in err), err


def test_planted_pickles_in_a_checkpoint_never_run(seeded_runs, tmp_path):
    class Payload:
        def __init__(self, marker: Path) -> None:
            self.marker = marker

        def __reduce__(self):
            return (Path.touch, (self.marker,))

    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()  # the payload does run when unpickled

    marker = tmp_path / "pwned"
    ckpt = seeded_runs["other"] / "checkpoint-2"
    for name in ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl", "optimizer.bin",
                 "scheduler.bin", "pytorch_model.bin"):
        (ckpt / name).write_bytes(pickle.dumps(Payload(marker)))
    prompts = seeded_runs["other"].parent / "prompts.txt"
    assert distill(seeded_runs["other"], "seed=1", f"prompts={prompts}", resume="latest") == 0
    assert not marker.exists()


def test_ema_export_of_a_lora_student_is_base_plus_ema_delta(seeded_runs, tmp_path):
    from methods.student_base import load_student_unet
    from training.config import build_config

    run = seeded_runs["first"]
    assert main(["export", "--run", str(run), "--output-dir", str(tmp_path / "e")]) == 0
    exported = load_file(str(tmp_path / "e" / WEIGHTS))
    delta = load_file(str(run / "checkpoint-2" / "student_ema.safetensors"))
    base = load_student_unet(build_config("tiny")).state_dict()
    assert delta and set(delta) < set(base)
    for key, value in base.items():
        torch.testing.assert_close(exported[key], value + delta.get(key, 0), rtol=0, atol=1e-6)
    assert_equal_files = load_file(str(run / WEIGHTS))  # the run's own export: the same EMA weights
    assert all(torch.equal(assert_equal_files[k], exported[k]) for k in exported)
    card = json.loads((tmp_path / "e" / "bench_model.json").read_text())
    assert card["ema"] is True and card["lora_ema"] is False


# -- the x0 constant of the generators -----------------------------------------------------------------
def test_swiftbrush_generator_uses_0_0047_and_sbv2_the_scheduler():
    from bench import plugins
    from methods.onestep import x0_from_prediction

    scheduler_value = None
    for name in ("swiftbrush", "sbv2"):
        gen = plugins.current().methods.get(name).build(size="tiny")
        gen.load(torch.device("cpu"), torch.float32)
        z = torch.randn((1, *gen.noise_shape), generator=torch.Generator().manual_seed(0))
        cond = gen.encode_prompts(["a cat"])
        with torch.no_grad():
            eps = gen.unet(z, torch.tensor([999]), encoder_hidden_states=cond).sample
        scheduler_value = float(gen.scheduler.alphas_cumprod[999])
        expected = 0.0047 if name == "swiftbrush" else scheduler_value
        assert gen.alpha_bar == expected and gen.describe()["alpha_T"] == expected
        torch.testing.assert_close(gen.denoise(z, cond), x0_from_prediction(z, eps, expected), rtol=1e-5, atol=1e-4)
    assert abs(scheduler_value - 0.004660) < 1e-6


def test_training_x0_constant_follows_the_student():
    from training.config import build_config, resolved_alpha_T

    assert resolved_alpha_T(build_config("swiftbrush")) == 0.0047
    assert resolved_alpha_T(build_config("sbv2-a")) is None  # the scheduler's alpha_bar_999
    assert resolved_alpha_T(build_config("sbv2-a", overrides={"student_init": "swiftbrush"})) == 0.0047


# -- one-line errors: launch, locks, settings, outputs -----------------------------------------------------
def test_mislaunched_multi_process_run_stops():
    from bench.errors import BenchError
    from training.trainer import check_launch

    check_launch(1, {})
    check_launch(2, {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"})
    for env in ({"WORLD_SIZE": "2"}, {"LOCAL_WORLD_SIZE": "4"}):
        with pytest.raises(BenchError, match="no process group"):
            check_launch(1, env)


def test_second_distill_into_a_locked_directory_stops(tmp_path, capsys):
    from bench.locking import lock_directory

    with lock_directory(tmp_path / "run", "training distill"):
        capsys.readouterr()
        assert distill(tmp_path / "run") == 2
        err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"process {os.getpid()}" in err, err
    assert not list((tmp_path / "run").glob("checkpoint-*"))


@pytest.mark.parametrize("setting", ["student_lr=-1", "student_lora_rank=0", "lora_teacher_alpha=0",
                                     "adam_beta2=1", "guidance_scale=nan", "student_alpha_T=1.5", "seed=-1"])
def test_out_of_range_settings_are_one_line(setting, tmp_path, capsys):
    assert distill(tmp_path / "r", setting) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("training: error:") and len(err.splitlines()) == 1
    assert setting.split("=")[0] in err


def test_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert distill(tmp_path / "file") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a directory" in err, err
