"""Building the networks of a distillation run: teacher (+ LoRA teacher), student, decoders, CLIP/HPS scorers.

Sources, by ``teacher``:

* a hub id or local diffusers pipeline directory (``stabilityai/stable-diffusion-2-1-base`` by default): loaded
  with ``from_pretrained(use_safetensors=True)``; with ``HF_HUB_OFFLINE=1`` only the local cache is used and a
  missing model fails with a one-line message naming what to download;
* ``tiny``: :func:`methods.components.build_tiny_components` (seeded, offline);
* ``random-sd21``: the SD 2.1-base architecture with seeded random weights (benchmarks; nothing downloaded).

The LoRA teacher is a LoRA adapter on the teacher's UNet: with the adapter disabled the UNet *is* the frozen
teacher, so one copy of the weights serves both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.hub_errors import offline
from bench.model_card import read_model_card
from methods.student_base import (
    SYNTHETIC,
    add_lora,
    load_pretrained,
    load_student_unet,
    random_sd21,
    student_source,
    synthetic_unet,
)
from training.config import TrainConfig


def required_repos(config: TrainConfig) -> dict[str, list[tuple[str, ...]]]:
    """Hub repositories (not local directories) the run loads, each with files (any one of a tuple) that must
    be cached for it to load offline."""
    need: dict[str, list[tuple[str, ...]]] = {}
    pipeline = [("unet/config.json",), ("text_encoder/config.json",), ("vae/config.json",),
                ("scheduler/scheduler_config.json",)]
    if config.teacher not in SYNTHETIC and not Path(config.teacher).is_dir():
        need[config.teacher] = pipeline
    repo, _ = student_source(config)
    if repo not in SYNTHETIC and not Path(repo).is_dir() and repo != config.teacher:
        need[repo] = [("unet/config.json",), ("scheduler/scheduler_config.json",)]
    if config.teacher in SYNTHETIC:
        return need
    if (config.clip_loss or config.hps_loss) and config.loss_decoder == "taesd" and not Path(config.taesd).is_dir():
        need[config.taesd] = [("config.json",)]
    if config.clip_loss and config.clip_pretrained != "random":
        from training.clip_loss import open_clip_hub_repo

        clip_repo = open_clip_hub_repo(config.clip_model, config.clip_pretrained)
        if clip_repo:
            need[clip_repo] = [("open_clip_model.safetensors", "open_clip_pytorch_model.bin")]
    if config.hps_loss:
        from training.config import HPSV2

        need[HPSV2] = [(config.hps_checkpoint,)]
    return need


def check_cached(config: TrainConfig) -> None:
    """Offline, fail at once (one line) naming every hub repository missing from the local cache."""
    if not offline():
        return
    from huggingface_hub import try_to_load_from_cache

    missing = []
    for repo, files in required_repos(config).items():
        revision = {config.teacher: config.teacher_revision}.get(repo)
        if repo != config.teacher and repo == student_source(config)[0]:
            revision = config.student_revision
        for alternatives in files:
            if not any(isinstance(try_to_load_from_cache(repo, name, cache_dir=config.cache_dir, revision=revision), str)
                       for name in alternatives):
                missing.append(repo)
                break
    if missing:
        commands = "; ".join(f"huggingface-cli download {r}" for r in missing)
        raise BenchError(f"HF_HUB_OFFLINE is set and these models are not in the local cache: {', '.join(missing)}; "
                         f"download them once while online ({commands}) or point teacher/student_init/taesd at "
                         "local copies")


def _scheduler_config(config: TrainConfig, repo: str, key: str, revision: str | None = None) -> dict[str, Any]:
    from diffusers import DDPMScheduler

    from methods.components import SD_SCHEDULER_CONFIG

    if repo in SYNTHETIC:
        return dict(SD_SCHEDULER_CONFIG)
    return dict(load_pretrained(DDPMScheduler, repo, "scheduler", "noise scheduler", key, config.cache_dir,
                                revision).config)


def export_base(config: TrainConfig) -> tuple[str, int | None]:
    """``(base, base_seed)`` recorded in ``bench_model.json``: where a loader takes VAE and text encoder from."""
    repo, _ = student_source(config)
    if repo in SYNTHETIC:
        return repo, config.model_seed
    card = read_model_card(repo) if Path(repo).is_dir() else {}
    if card:
        return card.get("base", repo), card.get("base_seed")
    return repo, None


def load_teacher_unet(config: TrainConfig, device: Any = None) -> Any:
    from diffusers import UNet2DConditionModel

    if config.teacher in SYNTHETIC:
        return synthetic_unet(config.teacher, config.model_seed, device)
    return load_pretrained(UNet2DConditionModel, config.teacher, "unet", "teacher UNet", "teacher", config.cache_dir,
                 config.teacher_revision, use_safetensors=True)


def cast(module: Any, dtype: Any) -> Any:
    """``module.to(dtype)`` without diffusers' warning about modules to keep in float32 (there are none here)."""
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        return module.to(dtype=dtype)
    finally:
        dlogging.set_verbosity(level)


def trainable_state(module: Any) -> dict[str, Any]:
    """The trainable parameters of ``module`` by name (what checkpoints and the EMA hold)."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def lora_deltas(unet: Any) -> dict[str, Any]:
    """The fused weight change ``scale * B @ A`` of every LoRA layer, keyed by the plain UNet's weight name."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    out = {}
    with torch.no_grad():
        for name, module in unet.named_modules():
            if isinstance(module, BaseTunerLayer):
                deltas = [module.get_delta_weight(a) for a in module.active_adapters if a in module.lora_A]
                if deltas:
                    out[f"{name}.weight"] = sum(deltas[1:], deltas[0]).float()
    return out


def lora_seeds(config: TrainConfig) -> tuple[int, int]:
    """Seeds of the LoRA ``A`` initialisation of (LoRA teacher, student), derived from the run's ``seed``."""
    from training.prompts import derived_seed

    return derived_seed(config.seed, 0x10A7), derived_seed(config.seed, 0x57D7)


@dataclass
class DistillModels:
    """The networks of a run, on the CPU in their final dtypes (the trainer moves them to its device)."""

    tokenize: Callable[[Any], Any]
    text_encoder: Any
    teacher: Any
    student: Any
    vae: Any
    loss_decoder: Any
    clip: Any
    hps: Any
    alphas_cumprod: Any
    teacher_prediction: str
    student_prediction: str
    base: str
    base_seed: int | None


def weight_dtype(mixed_precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision, torch.float32)


def _student_scheduler(config: TrainConfig, teacher_sched: dict[str, Any]) -> dict[str, Any]:
    repo, subfolder = student_source(config)
    if repo == config.teacher or repo in SYNTHETIC:
        return teacher_sched
    if subfolder is None:  # an exported student: its card records the prediction type
        return {"prediction_type": read_model_card(repo).get("prediction_type", "epsilon")}
    return _scheduler_config(config, repo, "student_init", config.student_revision)


def _text_and_vae(config: TrainConfig, device: Any) -> tuple[Any, Any, Any]:
    """(tokenize, text encoder, VAE) of the teacher."""
    from diffusers import AutoencoderKL

    from methods.components import build_tiny_components, hf_tokenizer, open_clip_tokenizer

    if config.teacher == "tiny":
        parts = build_tiny_components(config.model_seed)
        return parts.tokenize, parts.text_encoder, parts.vae
    if config.teacher == "random-sd21":
        seed = config.model_seed
        return open_clip_tokenizer(77), random_sd21("text_encoder", seed, device), random_sd21("vae", seed, device)
    from transformers import CLIPTextModel, CLIPTokenizer

    rev = config.teacher_revision
    cache = config.cache_dir
    tokenizer = load_pretrained(CLIPTokenizer, config.teacher, "tokenizer", "tokenizer", "teacher", cache, rev)
    text_encoder = load_pretrained(CLIPTextModel, config.teacher, "text_encoder", "text encoder", "teacher", cache,
                                   rev, use_safetensors=True)
    vae = load_pretrained(AutoencoderKL, config.teacher, "vae", "VAE", "teacher", cache, rev, use_safetensors=True)
    return hf_tokenizer(tokenizer), text_encoder, vae


def _loss_decoder(config: TrainConfig, vae: Any, device: Any) -> Any:
    from diffusers import AutoencoderTiny

    if config.loss_decoder == "vae":
        return vae
    if config.teacher in SYNTHETIC:
        from methods.loading import random_taesd

        return random_taesd(config.model_seed, "tiny" if config.teacher == "tiny" else "full", device)
    return load_pretrained(AutoencoderTiny, config.taesd, None, "TAESD decoder", "taesd", config.cache_dir,
                           use_safetensors=True)


def build_models(config: TrainConfig, device: Any = None) -> DistillModels:
    """Build (or load) every network of the run and set trainability and dtypes.

    ``device`` only speeds up building synthetic full-size networks (they are created there directly).
    """
    import torch

    from training.clip_loss import build_alignment_loss, build_hps_loss
    from training.vsd import alphas_cumprod_from_config

    check_cached(config)
    dtype = weight_dtype(config.mixed_precision)
    teacher_sched = _scheduler_config(config, config.teacher, "teacher", config.teacher_revision)
    student_sched = _student_scheduler(config, teacher_sched)
    tokenize, text_encoder, vae = _text_and_vae(config, device)
    teacher = load_teacher_unet(config, device)
    student = copy.deepcopy(teacher) if config.student_init == "teacher" else load_student_unet(config, device)

    cast(text_encoder.requires_grad_(False).eval(), dtype)
    cast(vae.requires_grad_(False).eval(), dtype)
    cast(teacher, dtype if config.teacher_precision == "mixed" else torch.float32)
    teacher_seed, student_seed = lora_seeds(config)
    add_lora(teacher, config.lora_teacher_rank, config.lora_teacher_alpha, config.lora_teacher_targets, teacher_seed)
    if config.student_mode == "lora":
        cast(student, dtype)
        add_lora(student, config.student_lora_rank, config.student_lora_alpha, config.student_lora_targets,
                 student_seed)
    else:
        cast(student.requires_grad_(True), torch.float32)
    if config.gradient_checkpointing:
        teacher.enable_gradient_checkpointing()
        student.enable_gradient_checkpointing()
    teacher.train()
    student.train()

    loss_decoder = clip = hps = None
    if config.clip_loss or config.hps_loss:
        loss_decoder = _loss_decoder(config, vae, device)
        cast(loss_decoder.requires_grad_(False).eval(), dtype)
        if config.gradient_checkpointing and getattr(loss_decoder, "_supports_gradient_checkpointing", False):
            loss_decoder.enable_gradient_checkpointing()
    synthetic = config.teacher in SYNTHETIC
    if config.clip_loss:
        name = "tiny" if config.teacher == "tiny" else config.clip_model
        clip = build_alignment_loss(name, "random" if synthetic else config.clip_pretrained, config.clip_tau,
                                    seed=config.model_seed + 5, cache_dir=config.cache_dir)
        clip.model.to(dtype)
    if config.hps_loss:
        hps = build_hps_loss(config.hps_checkpoint, config.hps_tau, seed=config.model_seed,
                             tiny=config.teacher == "tiny", random_weights=config.teacher == "random-sd21",
                             cache_dir=config.cache_dir)
        hps.model.to(dtype)

    base, base_seed = export_base(config)
    return DistillModels(
        tokenize=tokenize,
        text_encoder=text_encoder,
        teacher=teacher,
        student=student,
        vae=vae,
        loss_decoder=loss_decoder,
        clip=clip,
        hps=hps,
        alphas_cumprod=alphas_cumprod_from_config(teacher_sched).to(torch.float64),
        teacher_prediction=teacher_sched.get("prediction_type", "epsilon"),
        student_prediction=student_sched.get("prediction_type", "epsilon"),
        base=base,
        base_seed=base_seed,
    )
