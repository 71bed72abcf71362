"""``python -m training`` end to end on the ``tiny`` preset: train, checkpoint, resume, export, load, merge."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.cli import main

WEIGHTS = "diffusion_pytorch_model.safetensors"
QUIET = ["progress_bar=false"]


def distill(out: Path, *settings: str, steps: int = 4, resume: str | None = None) -> int:
    argv = ["distill", "--preset", "tiny", "--output-dir", str(out), "--max-steps", str(steps),
            "--set", *QUIET, *settings]
    return main([*argv, "--resume", resume] if resume else argv)


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


# export_ema=false: the export is the fused adapter, comparable with lora/ (EMA exports: test_training_official)
SCHEME_B = ("checkpoint_every=2", "checkpoints_total_limit=2", "sample_every=2", "export_ema=false")
SCHEME_A = ("student_mode=full", "clip_loss=false", "ema=false", "log_with=csv", "student_lr=1e-3",
            "gradient_accumulation_steps=2")


pytestmark = pytest.mark.usefixtures("one_thread_module")  # the toy networks train faster on one thread


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scheme B (tiny preset: LoRA student, clamped CLIP loss via TAESD, EMA) for 4 steps; scheme A for 2."""
    root = tmp_path_factory.mktemp("training")
    assert distill(root / "b", *SCHEME_B) == 0
    assert distill(root / "a", *SCHEME_A, steps=2) == 0
    return {"a": root / "a", "b": root / "b"}


def test_tiny_run_writes_checkpoints_logs_samples_and_export(runs):
    b = runs["b"]
    assert sorted(p.name for p in b.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    rows = list(csv.DictReader(open(b / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for key in ("loss_vsd", "loss_lora", "loss_clip", "clip_weight", "lr_student", "lr_lora_teacher"):
        assert key in rows[0]
    assert float(rows[0]["clip_weight"]) == pytest.approx(0.1) and float(rows[-1]["clip_weight"]) == 0.0
    assert (b / "samples" / "step-000002.png").is_file() and (b / "samples" / "step-000004.png").is_file()
    assert list((b / "logs").rglob("events.out.tfevents*")), "TensorBoard events missing"
    card = json.loads((b / "bench_model.json").read_text())
    assert (card["base"], card["base_seed"], card["student_mode"], card["steps"]) == ("tiny", 0, "lora", 4)
    assert (b / "config.json").is_file() and (b / "lora" / "adapter_model.safetensors").is_file()

    from methods.components import build_tiny_components

    initial = build_tiny_components(0).unet.state_dict()
    for run in (runs["a"], b):
        exported = tensors(run / WEIGHTS)
        assert set(exported) == set(initial)  # a plain UNet: the LoRA is fused, no adapter keys
        assert any(not torch.equal(exported[k], initial[k]) for k in initial), f"{run.name}: training changed nothing"


def test_resumed_run_ends_with_the_same_weights(runs, tmp_path):
    b, resumed = runs["b"], tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(b / "checkpoint-2", resumed / "checkpoint-2")
    assert distill(resumed, *SCHEME_B[:1], "checkpoints_total_limit=1", "sample_every=2", "export_ema=false",
                   resume="latest") == 0
    assert_same(tensors(resumed / WEIGHTS), tensors(b / WEIGHTS))
    for name in ("student.safetensors", "lora_teacher.safetensors", "student_ema.safetensors"):
        assert_same(tensors(resumed / "checkpoint-4" / name), tensors(b / "checkpoint-4" / name))
    assert sorted(p.name for p in resumed.glob("checkpoint-*")) == ["checkpoint-4"]  # the cap on kept checkpoints
    rows = list(csv.DictReader(open(resumed / "metrics.csv")))
    original = list(csv.DictReader(open(b / "metrics.csv")))[2:]
    assert [r["loss_vsd"] for r in rows] == [r["loss_vsd"] for r in original]


def test_export_loads_as_sbv2_generator_and_matches_the_unfused_student(runs):
    from methods.onestep import x0_from_prediction
    from methods.sbv2 import SBv2Generator
    from methods.student_base import add_lora, load_student_unet
    from methods.student_dir import load_lora_weights
    from training.config import build_config

    b = runs["b"]
    gen = SBv2Generator(weights=str(b))
    gen.load("cpu", torch.float32)
    assert_same({k: v for k, v in gen.unet.state_dict().items()}, tensors(b / WEIGHTS))
    noise = torch.randn(2, *gen.noise_shape, generator=torch.Generator().manual_seed(0))
    prompts = ["a red fox in the snow", "a lighthouse at dawn"]
    cond = gen.encode_prompts(prompts)
    fused_x0 = gen.denoise(noise, cond)

    config = build_config("tiny")
    student = add_lora(load_student_unet(config), config.student_lora_rank, config.student_lora_alpha,
                       config.student_lora_targets)
    load_lora_weights(student, tensors(b / "lora" / "adapter_model.safetensors"))
    with torch.no_grad():
        t = torch.full((2,), 999)
        pred = student(noise, t, encoder_hidden_states=cond).sample
    unfused_x0 = x0_from_prediction(noise, pred, gen.alpha_bar)
    assert torch.allclose(fused_x0, unfused_x0, rtol=1e-4, atol=1e-3)
    images = gen.generate(noise, prompts)
    assert images.shape == (2, 3, 64, 64) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_export_command_reproduces_the_final_export(runs, tmp_path):
    assert main(["export", "--run", str(runs["b"]), "--checkpoint", "4", "--no-ema", "--output-dir",
                 str(tmp_path / "e")]) == 0
    assert_same(tensors(tmp_path / "e" / WEIGHTS), tensors(runs["b"] / WEIGHTS))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left behind


def test_merge_is_exact_tensor_by_tensor(runs, tmp_path):
    a, b = runs["a"], runs["b"]
    assert main(["merge", "--a", str(a), "--b", str(b), "--lambda", "0.3", "--output-dir", str(tmp_path / "ab")]) == 0
    ta, tb, merged = tensors(a / WEIGHTS), tensors(b / WEIGHTS), tensors(tmp_path / "ab" / WEIGHTS)
    assert set(merged) == set(ta)
    for key in ta:
        assert torch.equal(merged[key], 0.3 * ta[key] + (1 - 0.3) * tb[key]), key
    card = json.loads((tmp_path / "ab" / "bench_model.json").read_text())
    assert card["merge"]["lambda"] == 0.3 and card["base"] == "tiny"
    # a LoRA directory is fused onto its base first: same result as merging the fused export
    assert main(["merge", "--a", str(a), "--b", str(b / "lora"), "--lambda", "0.3", "--output-dir",
                 str(tmp_path / "ab2")]) == 0
    assert_same(tensors(tmp_path / "ab2" / WEIGHTS), merged)


def test_merge_rejects_mismatched_models(runs, tmp_path, capsys):
    a = runs["a"]
    state = tensors(a / WEIGHTS)
    for name, edit in (("missing", lambda s: s.pop(sorted(s)[0])),
                       ("shape", lambda s: s.update({k: s[k][:1].contiguous() for k in [sorted(s)[1]]}))):
        bad = tmp_path / name
        bad.mkdir()
        shutil.copy(a / "config.json", bad / "config.json")
        changed = dict(state)
        edit(changed)
        save_file(changed, str(bad / WEIGHTS))
        capsys.readouterr()
        code = main(["merge", "--a", str(a), "--b", str(bad), "--lambda", "0.5", "--output-dir", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert ("different tensors" if name == "missing" else "shape") in err
    assert main(["merge", "--a", str(a), "--b", str(tmp_path / "nope"), "--lambda", "0.5",
                 "--output-dir", str(tmp_path / "y")]) == 2


def test_merge_and_export_never_touch_their_inputs(runs, tmp_path, capsys):
    a, b = runs["a"], runs["b"]
    before = {p: p.stat().st_mtime_ns for p in b.rglob("*") if p.is_file()}
    cases = [
        ["merge", "--a", str(b / "lora"), "--b", str(a), "--lambda", "0.5", "--output-dir", str(b)],  # parent
        ["merge", "--a", str(a), "--b", str(b), "--lambda", "0.5", "--output-dir", str(b / "sub")],  # child
        ["merge", "--a", str(a), "--b", str(b), "--lambda", "0.5", "--output-dir", str(a)],  # same
        ["export", "--run", str(b), "--output-dir", str(b / "exported")],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "overlaps" in err, err
    assert {p: p.stat().st_mtime_ns for p in b.rglob("*") if p.is_file()} == before
    assert (b / "lora" / "adapter_model.safetensors").is_file()
    out = tmp_path / "ab"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["merge", "--a", str(a), "--b", str(b), "--lambda", "0.5", "--output-dir", str(out)]
    assert main(argv) == 2 and (out / "keep.txt").is_file()  # not empty and not a model: never replaced
    assert main([*argv, "--overwrite"]) == 2 and (out / "keep.txt").is_file()
    (out / "keep.txt").unlink()
    assert main(argv) == 0
    assert main(argv) == 2  # a model: replaced only with --overwrite
    assert main([*argv, "--overwrite"]) == 0 and (out / WEIGHTS).is_file()
    from bench.run_dir import umask

    assert oct((out / WEIGHTS).stat().st_mode & 0o777) == oct(0o666 & ~umask())  # not forced to 0600


@pytest.mark.parametrize("preset", ["sbv2-a", "sbv2-b", "swiftbrush"])
def test_real_presets_fail_offline_in_one_line(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["distill", "--preset", preset, "--output-dir", str(tmp_path / "run"), "--max-steps", "1",
                 "--set", f"cache_dir={tmp_path / 'empty-cache'}", "prompts=builtin:demo"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "stabilityai/stable-diffusion-2-1-base" in err and "download" in err
    if preset != "swiftbrush":
        assert "stabilityai/sd-turbo" in err
    if preset == "sbv2-b":
        assert "madebyollin/taesd" in err


def test_cli_usage_errors_are_one_line(runs, tmp_path, capsys):
    cases = [
        ["distill", "--preset", "tiny", "--output-dir", str(tmp_path / "r"), "--resume", str(tmp_path / "nope")],
        ["distill", "--preset", "tiny", "--output-dir", str(runs["b"])],  # has checkpoints but no --resume
        ["distill", "--preset", "tiny", "--output-dir", str(tmp_path / "r"), "--set", "student_lr=fast"],
        ["distill", "--preset", "tiny", "--output-dir", str(tmp_path / "r"), "--set", "prompts=/no/such/file.txt"],
        ["merge", "--a", "x", "--b", "y", "--lambda", "half", "--output-dir", "z"],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("training: error:") and len(err.splitlines()) == 1, err


def test_lora_teacher_starts_as_the_teacher(tmp_path):
    """Without guidance the first VSD gradient is exactly zero: the LoRA teacher's adapter starts at zero."""
    from training.config import build_config
    from training.trainer import Trainer

    config = build_config("tiny", overrides={"guidance_scale": 1.0, "clip_loss": False, "ema": False,
                                             "log_with": "csv", "progress_bar": False})
    trainer = Trainer(config, tmp_path)
    trainer.setup()
    first = trainer.train_step()
    assert first["loss_vsd"] == 0.0 and first["grad_norm_student"] == 0.0
    assert first["loss_lora"] > 0  # the LoRA teacher itself is trained from the first step
    assert trainer.train_step()["loss_vsd"] > 0  # after one LoRA update the two teachers differ
