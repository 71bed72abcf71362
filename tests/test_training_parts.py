"""Configuration, prompt datasets and the clamped CLIP loss of the training module (no model training here)."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from bench.errors import BenchError
from training.clip_loss import AlignmentLoss, build_alignment_loss, clamped_loss, loss_weight
from training.config import PRESETS, build_config, parse_set, read_toml, to_toml
from training.prompts import PromptStream, load_image_text_pairs, load_prompts


# -- configuration --------------------------------------------------------------------------------------
def test_presets_carry_the_paper_settings():
    a, b, sb = build_config("sbv2-a"), build_config("sbv2-b"), build_config("swiftbrush")
    for c in (a, b, sb):
        assert (c.guidance_scale, c.lora_teacher_rank, c.lora_teacher_lr) == (4.5, 64, 1e-3)
        assert (c.lora_teacher, c.lora_teacher_targets, c.ema) == ("swiftbrush", "qv", True)
        assert (c.student_lr, c.batch_size, c.mixed_precision, c.teacher_precision) == (1e-6, 16, "bf16", "mixed")
    assert (a.lora_teacher_alpha, b.lora_teacher_alpha, sb.lora_teacher_alpha) == (128, 128, 108)
    assert (a.student_alpha_T, sb.student_alpha_T) == (None, 0.0047)
    assert (a.student_init, a.student_mode, a.clip_loss) == ("sd-turbo", "full", False)
    assert (b.student_init, b.student_mode, b.student_lora_rank, b.student_lora_alpha) == ("sd-turbo", "lora", 256, 512)
    assert (b.clip_loss, b.clip_tau, b.clip_weight, b.clip_model, b.loss_decoder) == (True, 0.35, 0.1, "ViT-B-32", "taesd")
    assert sb.student_init == "teacher"
    assert build_config("tiny").teacher == "tiny"
    assert set(PRESETS) == {"sbv2-a", "sbv2-b", "swiftbrush", "tiny"}


def test_precedence_preset_file_set_flag(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "sbv2-b"\n[train]\nstudent_lr = 2e-6\nmax_steps = 50\nprompts = ["a.txt", "b.jsonl"]\n')
    assert read_toml(path)["student_lr"] == 2e-6
    c = build_config(None, path, parse_set(["max_steps=70", "ema=true", "checkpoints_total_limit=none"]), max_steps=90)
    assert c.preset == "sbv2-b" and c.student_mode == "lora"  # from the preset named in the file
    assert c.student_lr == 2e-6 and c.prompts == ["a.txt", "b.jsonl"]
    assert c.max_steps == 90 and c.ema is True and c.checkpoints_total_limit is None
    again = tmp_path / "again.toml"
    again.write_text(to_toml(c))
    assert build_config(None, again) == c  # the saved config.toml of a run reproduces it


def test_set_parsing_and_errors():
    assert parse_set(["prompts=a.txt,b.csv"]) == {"prompts": "a.txt,b.csv"}
    assert parse_set(['prompts=["x y.txt"]']) == {"prompts": ["x y.txt"]}
    assert build_config("tiny", overrides=parse_set(["prompts=a.txt,b.csv"])).prompts == ["a.txt", "b.csv"]
    with pytest.raises(BenchError, match="did you mean student_lr"):
        build_config("tiny", overrides={"studen_lr": "1"})
    with pytest.raises(BenchError, match="not one of"):
        build_config("tiny", overrides={"student_mode": "half"})
    with pytest.raises(BenchError, match="not a valid int"):
        build_config("tiny", overrides={"batch_size": "2.5"})
    with pytest.raises(BenchError, match="unknown preset"):
        build_config("sbv3")
    with pytest.raises(BenchError, match="key=value"):
        parse_set(["oops"])
    with pytest.raises(BenchError, match="t_min"):
        build_config("tiny", overrides={"t_min": "990"})


# -- prompts ----------------------------------------------------------------------------------------------
def test_prompt_files_mixed_and_deduplicated(tmp_path):
    (tmp_path / "a.txt").write_text("a red fox\n\n  a  red fox  \nthe moon\n")
    (tmp_path / "jdb.jsonl").write_text(
        json.dumps({"img_path": "x.jpg", "prompt": "the moon"}) + "\n" + json.dumps({"prompt": "a ship"}) + "\n"
    )
    (tmp_path / "laion.csv").write_text("url,TEXT\nhttp://x,a castle\nhttp://y,\"a ship\"\n")
    with gzip.open(tmp_path / "more.txt.gz", "wt") as fh:
        fh.write("a robot\n")
    files = [tmp_path / n for n in ("a.txt", "jdb.jsonl", "laion.csv", "more.txt.gz")]
    assert load_prompts(files) == ["a red fox", "the moon", "a ship", "a castle", "a robot"]
    assert len(load_prompts(files, dedup=False)) == 8
    (tmp_path / "bad.jsonl").write_text(json.dumps({"url": "x"}) + "\n")
    with pytest.raises(BenchError, match="prompt_field"):
        load_prompts([tmp_path / "bad.jsonl"])
    assert load_prompts([tmp_path / "bad.jsonl"], field="url") == ["x"]
    with pytest.raises(BenchError, match="does not exist"):
        load_prompts([tmp_path / "missing.txt"])


def test_batches_are_a_function_of_seed_and_step():
    prompts = [f"p{i}" for i in range(10)]
    stream = PromptStream(prompts, seed=3, batch_size=4, accumulation=2, num_processes=2)
    again = PromptStream(prompts, seed=3, batch_size=4, accumulation=2, num_processes=2)
    assert stream.batch(7, 1, 1) == again.batch(7, 1, 1)  # no history needed: resumable at any step
    # one epoch (10 prompts) visits every prompt once, in a shuffled order
    seen = [p for step in range(2) for micro in range(2) for rank in range(2) for p in stream.batch(step, micro, rank)]
    assert sorted(seen[:10]) == sorted(prompts) and seen[:10] != prompts
    assert PromptStream(prompts, seed=4, batch_size=10).batch(0) != PromptStream(prompts, seed=3, batch_size=10).batch(0)


def test_image_text_pairs(tmp_path):
    (tmp_path / "pairs.csv").write_text("file_name,caption\nimg/0.png,a cat\n")
    assert load_image_text_pairs([tmp_path / "pairs.csv"]) == [(tmp_path / "img/0.png", "a cat")]
    (tmp_path / "p.txt").write_text("x\n")
    with pytest.raises(BenchError, match="JSONL"):
        load_image_text_pairs([tmp_path / "p.txt"])


# -- clamped CLIP loss --------------------------------------------------------------------------------------
def test_clamped_loss_is_zero_above_tau_and_linear_below():
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    angle = torch.tensor([0.1, 1.2, 1.5], requires_grad=True)  # cos = 0.995, 0.362, 0.0707
    image = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    loss = clamped_loss(image, text, tau=0.35)
    expected = torch.clamp(0.35 - torch.cos(angle.detach()), min=0)
    assert torch.allclose(loss.detach(), expected)
    values = loss.detach()
    assert float(values[0]) == 0.0 and float(values[1]) == 0.0 and float(values[2]) > 0
    loss.sum().backward()
    assert float(angle.grad[0]) == 0.0 and float(angle.grad[1]) == 0.0  # no pull once aligned beyond tau
    assert float(angle.grad[2]) != 0.0


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_clip_weight_decays_to_zero_at_the_last_step(schedule):
    total = 25
    weights = [loss_weight(s, total, 0.1, schedule) for s in range(total)]
    assert weights[0] == pytest.approx(0.1)
    assert weights[-1] == 0.0
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))
    assert loss_weight(5, total, 0.1, "constant") == 0.1


def test_alignment_loss_backpropagates_to_images():
    scorer = build_alignment_loss("tiny", "random", tau=0.35, seed=0)
    assert isinstance(scorer, AlignmentLoss)
    images = torch.rand(2, 3, 48, 40, requires_grad=True)
    loss = AlignmentLoss(scorer.model, scorer.tokenize, 2.0, scorer.image_size, scorer.mean, scorer.std)
    out = loss(images, ["a cat", "a dog"])  # tau = 2 > any cosine: the loss is always active
    assert out.shape == (2,) and bool((out.detach() > 0).all())
    out.sum().backward()
    assert images.grad is not None and float(images.grad.abs().sum()) > 0
    never = AlignmentLoss(scorer.model, scorer.tokenize, -2.0, scorer.image_size, scorer.mean, scorer.std)
    assert float(never(images, ["a cat", "a dog"]).detach().sum()) == 0.0
