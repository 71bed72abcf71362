"""The numeric range of each training setting and the checks across settings, each failing with one line."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError

if TYPE_CHECKING:
    from training.config import TrainConfig

#: Numeric settings and their allowed ranges: (low, high, low inclusive, high inclusive); None = unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "seed": (0, None, True, True),
    "model_seed": (0, None, True, True),
    "student_alpha_T": (0.0, 1.0, False, False),
    "guidance_scale": (0.0, None, True, True),
    "lora_teacher_rank": (1, None, True, True),
    "lora_teacher_alpha": (0.0, None, False, True),
    "lora_teacher_lr": (0.0, None, False, True),
    "lora_teacher_steps": (1, None, True, True),
    "student_lora_rank": (1, None, True, True),
    "student_lora_alpha": (0.0, None, False, True),
    "student_lr": (0.0, None, False, True),
    "batch_size": (1, None, True, True),
    "gradient_accumulation_steps": (1, None, True, True),
    "max_steps": (1, None, True, True),
    "adam_beta1": (0.0, 1.0, True, False),
    "adam_beta2": (0.0, 1.0, True, False),
    "adam_weight_decay": (0.0, None, True, True),
    "adam_epsilon": (0.0, None, False, True),
    "max_grad_norm": (0.0, None, True, True),
    "lr_warmup_steps": (0, None, True, True),
    "clip_weight": (0.0, None, True, True),
    "clip_tau": (-1.0, 1.0, True, True),
    "hps_weight": (0.0, None, True, True),
    "hps_tau": (-1.0, 1.0, True, True),
    "image_reg_weight": (0.0, None, True, True),
    "image_reg_batch_size": (1, None, True, True),
    "ema_decay": (0.0, 1.0, True, False),
    "checkpoint_every": (0, None, True, True),
    "checkpoints_total_limit": (1, None, True, True),
    "sample_every": (0, None, True, True),
    "num_samples": (1, None, True, True),
    "log_every": (0, None, True, True),
}


def _check_range(key: str, value: Any) -> None:
    low, high, low_in, high_in = RANGES[key]
    if value is None:
        return
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'[' if low_in else '('}{lo}, {hi}{']' if high_in else ')'}"
        raise BenchError(f"{key} must be in {interval}, got {value}")


def validate(config: TrainConfig) -> None:
    """Range and cross-field checks, each failing with a one-line :class:`BenchError`."""
    for key in RANGES:
        _check_range(key, getattr(config, key))
    if not 0 <= config.t_min <= config.t_max <= 999:
        raise BenchError(f"need 0 <= t_min <= t_max <= 999, got t_min={config.t_min}, t_max={config.t_max}")
    if config.image_reg and not config.image_reg_data:
        raise BenchError("image_reg is on but image_reg_data lists no files; --set image_reg_data=pairs.jsonl")
