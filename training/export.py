"""Exporting a trained student as a diffusers UNet directory that the ``sbv2`` method loads (the directory's
format is read and written by :mod:`methods.student_dir`).

Layout of an export directory::

    config.json                          UNet config (diffusers)
    diffusion_pytorch_model.safetensors  UNet weights; a LoRA student is fused into full weights
    bench_model.json                     {"base": "tiny" | hub id, "base_seed": int | null, ...}
    lora/                                (LoRA students) the unfused adapter: adapter_model.safetensors +
                                         adapter_config.json, which records how to rebuild its base. With an
                                         EMA export the fused weights are base + EMA(B @ A), which no rank-r
                                         adapter holds: ``lora/`` then keeps the raw (non-EMA) adapter and
                                         both its config and bench_model.json say ``"ema": false`` for it

``base`` names where a loader takes the VAE, text encoder and scheduler from: ``tiny`` means
``methods.components.build_tiny_components(base_seed)``, anything else is a hub id / pipeline directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.model_card import RECIPE_FIELDS, write_model_card
from methods.student_base import LORA_BASE_FIELDS
from methods.student_dir import LORA_CONFIG, LORA_DIR, LORA_WEIGHTS, fused_lora_student, save_unet
from training.checkpoint import save_tensors as _save_tensors
from training.config import TrainConfig, resolved_alpha_T


def student_state(config: TrainConfig, trained: dict[str, Any], live: Any = None,
                  delta: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(UNet config, full fp32 state dict) of the student from its trained tensors.

    ``trained``: full weights (full students) or adapter tensors (LoRA students). ``delta``: fused LoRA weight
    changes (the EMA of ``B @ A``) added to the base weights instead of ``trained``. ``live`` is the student
    module when it is at hand (avoids loading the initial weights again).
    """
    from methods.student_base import load_student_unet

    if config.student_mode == "lora" and delta is None:
        return fused_lora_student(config, config.student_lora_rank, config.student_lora_alpha,
                                  config.student_lora_targets, trained)
    unet = live if live is not None else load_student_unet(config)
    state = {k: v.detach().float().cpu().clone() for k, v in unet.state_dict().items()}
    update = trained if delta is None else delta
    unknown = set(update) - set(state)
    if unknown:
        raise BenchError(f"trained tensors do not fit the student UNet (e.g. {sorted(unknown)[0]})")
    for k, v in update.items():
        state[k] = v.detach().float().cpu() if delta is None else state[k] + v.detach().float().cpu()
    return dict(unet.config), state


def save_lora_dir(config: TrainConfig, trained: dict[str, Any], output_dir: str | Path, ema: bool = False) -> Path:
    """Write the unfused adapter and what rebuilds its base into ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_tensors(trained, out / LORA_WEIGHTS)
    meta = {
        "ema": ema,
        "rank": config.student_lora_rank,
        "alpha": config.student_lora_alpha,
        "targets": config.student_lora_targets,
        "base": {k: getattr(config, k) for k in LORA_BASE_FIELDS},
    }
    (out / LORA_CONFIG).write_text(json.dumps(meta, indent=1) + "\n")
    return out


def training_losses(config: TrainConfig) -> list[dict[str, Any]]:
    """The networks the student was trained against beyond its teacher (read by bench to flag metrics that
    score with the same network)."""
    out: list[dict[str, Any]] = []
    if config.clip_loss:
        out.append({"loss": "clip", "network": "open_clip", "model": config.clip_model,
                    "pretrained": config.clip_pretrained})
    if config.hps_loss:
        out.append({"loss": "hps", "network": "hps", "model": "ViT-H-14", "checkpoint": config.hps_checkpoint})
    return out


def export_student(
    config: TrainConfig,
    trained: dict[str, Any],
    output_dir: str | Path,
    meta: dict[str, Any],
    live: Any = None,
    delta: dict[str, Any] | None = None,
) -> Path:
    """Save the student (fused if LoRA), ``bench_model.json`` and, for LoRA students, the adapter.

    ``delta`` (LoRA students): fused EMA deltas exported instead of the adapter; ``lora/`` keeps ``trained``.
    """
    from training.models import export_base

    unet_config, state = student_state(config, trained, live, delta)
    out = save_unet(unet_config, state, output_dir, config.export_dtype)
    base, base_seed = export_base(config)
    alpha_T = resolved_alpha_T(config)
    info = {
        "base": base,
        "base_seed": base_seed,
        "format": "diffusers-unet",
        "timestep": 999,
        "prediction_type": "epsilon",
        "alpha_T": alpha_T,
        "alpha_T_source": "scheduler" if alpha_T is None else "fixed",
        "teacher": config.teacher,
        "student_init": config.student_init,
        "student_mode": config.student_mode,
        "lora_teacher": config.lora_teacher,
        "scheme": "B" if config.student_mode == "lora" else "A",
        "preset": config.preset,
        "dtype": config.export_dtype,
        "losses": training_losses(config),
        "recipe": {name: getattr(config, name) for name in RECIPE_FIELDS},
        **meta,
    }
    if config.student_mode == "lora":
        save_lora_dir(config, trained, out / LORA_DIR, ema=bool(meta.get("ema")) and delta is None)
        info["lora"] = LORA_DIR
        info["lora_ema"] = bool(meta.get("ema")) and delta is None
    write_model_card(out, **info)
    return out


def export_trainer(trainer: Any) -> Path:
    """Export a finished :class:`training.trainer.Trainer` into its output directory (public API only)."""
    acc, cfg = trainer.accelerator, trainer.config
    if acc.is_main_process:
        use_ema = trainer.ema is not None and cfg.export_ema
        raw = trainer.trained_state(ema=False)
        lora = cfg.student_mode == "lora"
        trained = trainer.trained_state(ema=True) if use_ema and not lora else raw
        delta = trainer.trained_state(ema=True) if use_ema and lora else None
        meta = {"steps": trainer.step, "ema": use_ema, "prediction_type": trainer.models.student_prediction,
                "prompts_truncated": getattr(trainer, "truncated", None)}
        export_student(cfg, trained, trainer.output_dir, meta, live=None if lora else trainer.student_module(),
                       delta=delta)
    acc.wait_for_everyone()
    return trainer.output_dir


def export_checkpoint(run_dir: str | Path, checkpoint: str, output_dir: str | Path, ema: bool = True,
                      overwrite: bool = False) -> Path:
    """Export a ``checkpoint-<step>`` of a run (``checkpoint`` = ``latest``, a step number or a path) into a new
    ``output_dir`` (never inside the run; an existing non-empty one only with ``overwrite``)."""

    from methods.student_output import check_no_overlap, staged_output
    from training.checkpoint import EMA_FILE, STUDENT_FILE, load_tensors, read_state, resolve_checkpoint
    from training.config import build_config, read_toml

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise BenchError(f"{run} is not a training output directory (no config.toml)")
    check_no_overlap(output_dir, [run])
    values = read_toml(run / "config.toml")
    config = build_config(values.pop("preset", None), overrides=values)
    spec = f"checkpoint-{checkpoint}" if str(checkpoint).isdigit() else checkpoint
    path = resolve_checkpoint(spec, run)
    if path is None:
        raise BenchError(f"{run} has no checkpoints")
    check_no_overlap(output_dir, [path])
    use_ema = ema and (path / EMA_FILE).is_file()
    raw = load_tensors(path / STUDENT_FILE)
    lora = config.student_mode == "lora"
    trained = load_tensors(path / EMA_FILE) if use_ema and not lora else raw
    delta = load_tensors(path / EMA_FILE) if use_ema and lora else None
    step = read_state(path)["step"]
    with staged_output(output_dir, overwrite) as tmp:
        export_student(config, trained, tmp, {"steps": step, "ema": use_ema, "checkpoint": str(path)}, delta=delta)
    return Path(output_dir)
