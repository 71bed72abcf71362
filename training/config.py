"""Training configuration: one flat dataclass, named presets, TOML files and ``--set key=value`` overrides.

Precedence (later wins): dataclass defaults < preset < ``--config FILE.toml`` < ``--set key=value`` < explicit
command-line flags such as ``--max-steps``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from methods.student_base import LORA_TARGETS
from training.limits import validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

SD21_BASE = "stabilityai/stable-diffusion-2-1-base"
SD_TURBO = "stabilityai/sd-turbo"
SWIFTBRUSH = "thuanz123/swiftbrush"
TAESD = "madebyollin/taesd"
HPSV2 = "xswu/HPSv2"

#: Built-in prompt list, used by the ``tiny`` preset and the benchmark (``prompts = ["builtin:demo"]``).
DEMO_PROMPTS = "builtin:demo"

#: The SwiftBrush trainer's hard-coded cumulative alpha at t = 999 (the scheduler's value is 0.004660).
SWIFTBRUSH_ALPHA_T = 0.0047


@dataclass
class TrainConfig:
    """Everything that defines a distillation run. Field names are the ``--set`` / TOML keys."""

    preset: str = "tiny"
    seed: int = 0

    # -- models -------------------------------------------------------------------------------------
    #: Frozen teacher: a hub id or local diffusers pipeline directory, ``"tiny"`` (seeded toy networks) or
    #: ``"random-sd21"`` (SD 2.1-base architecture, seeded random weights: benchmarks only).
    teacher: str = SD21_BASE
    teacher_revision: str | None = None
    #: Student initialisation: ``sd-turbo``, ``swiftbrush``, ``teacher``, or a hub id / local pipeline dir.
    student_init: str = "sd-turbo"
    student_revision: str | None = None
    #: Seed of the random weights of ``tiny`` / ``random-sd21`` models.
    model_seed: int = 0
    cache_dir: str | None = None
    #: Frozen teacher weights: ``mixed`` = cast to the mixed-precision dtype (half the memory of fp32),
    #: ``fp32`` = kept in float32 and run under autocast (the SwiftBrush trainer).
    teacher_precision: str = "mixed"
    #: Cumulative alpha in the student's x0 = (z - sqrt(1 - a) eps) / sqrt(a). None: 0.0047 for
    #: ``student_init = swiftbrush`` (the SwiftBrush trainer's constant), else the scheduler's alpha_bar_999.
    student_alpha_T: float | None = None

    # -- VSD ----------------------------------------------------------------------------------------
    guidance_scale: float = 4.5
    t_min: int = 20
    t_max: int = 980
    weighting: str = "sigma2"
    loss_reduction: str = "mean"
    #: ``swiftbrush`` (the official trainer): the LoRA teacher's VSD prediction also gets classifier-free
    #: guidance; its diffusion loss draws t from [0, 1000), drops the caption for the empty prompt with
    #: probability 0.1 and weights prediction and target by sqrt(alpha_bar_t). ``prolificdreamer`` (DMD style):
    #: conditional LoRA prediction, t from [t_min, t_max], captions always, plain epsilon MSE.
    lora_teacher: str = "swiftbrush"
    lora_teacher_rank: int = 64
    lora_teacher_alpha: int = 128
    #: The ``swiftbrush`` LoRA teacher's caption dropout (probability 0.1): ``batch`` (the official trainer:
    #: one draw per batch empties every caption of the batch together) or ``sample`` (one draw per sample).
    null_prompt: str = "batch"
    lora_teacher_targets: str = "qv"
    lora_teacher_lr: float = 1e-3
    #: LoRA-teacher updates after each student update (1 = strict alternation).
    lora_teacher_steps: int = 1

    # -- student ------------------------------------------------------------------------------------
    #: ``full`` (scheme A) or ``lora`` (scheme B; fused into full weights on export).
    student_mode: str = "full"
    student_lora_rank: int = 256
    student_lora_alpha: int = 512
    student_lora_targets: str = "all"
    student_lr: float = 1e-6

    # -- optimisation -------------------------------------------------------------------------------
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    max_steps: int = 10000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = True
    allow_tf32: bool = True

    # -- clamped CLIP loss (scheme B) ---------------------------------------------------------------
    clip_loss: bool = False
    clip_weight: float = 0.1
    clip_tau: float = 0.35
    clip_schedule: str = "linear"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    #: Decoder of the student's latents for the CLIP / HPS losses: ``taesd`` (TinyVAE) or ``vae``.
    loss_decoder: str = "taesd"
    taesd: str = TAESD

    # -- optional HPSv2 loss (Table 9) --------------------------------------------------------------
    hps_loss: bool = False
    hps_weight: float = 0.1
    hps_tau: float = 0.30
    hps_schedule: str = "linear"
    hps_checkpoint: str = "HPS_v2_compressed.pt"

    # -- optional image regularisation on real image-text pairs -----------------------------------
    image_reg: bool = False
    image_reg_data: list[str] = field(default_factory=list)
    image_reg_weight: float = 0.25
    image_reg_batch_size: int = 1

    # -- EMA ----------------------------------------------------------------------------------------
    ema: bool = False
    #: The EMA's largest decay; ``ema_rule``: ``official`` (SwiftBrush's --use_ema, diffusers' EMAModel: warms up
    #: from a copy of the weights) or ``fixed`` (see :class:`training.checkpoint.EMA`).
    ema_decay: float = 0.9999
    ema_rule: str = "official"
    export_ema: bool = True

    # -- data ---------------------------------------------------------------------------------------
    prompts: list[str] = field(default_factory=list)
    prompt_field: str | None = None
    dedup: bool = True
    sample_prompts: list[str] = field(default_factory=list)

    # -- bookkeeping --------------------------------------------------------------------------------
    checkpoint_every: int = 1000
    checkpoints_total_limit: int | None = 3
    sample_every: int = 1000
    num_samples: int = 4
    log_every: int = 10
    log_with: str = "auto"
    progress_bar: bool = True
    export_dtype: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES: dict[str, tuple[Any, ...]] = {
    "weighting": ("sigma2", "uniform"),
    "lora_teacher": ("swiftbrush", "prolificdreamer"),
    "ema_rule": ("official", "fixed"),
    "null_prompt": ("batch", "sample"),
    "teacher_precision": ("mixed", "fp32"),
    "loss_reduction": ("mean", "sum"),
    "student_mode": ("full", "lora"),
    "lora_teacher_targets": tuple(LORA_TARGETS),
    "student_lora_targets": tuple(LORA_TARGETS),
    "lr_scheduler": ("constant", "constant_with_warmup", "linear", "cosine"),
    "mixed_precision": ("no", "fp16", "bf16"),
    "clip_schedule": ("linear", "cosine", "constant"),
    "hps_schedule": ("linear", "cosine", "constant"),
    "loss_decoder": ("taesd", "vae"),
    "log_with": ("auto", "tensorboard", "csv"),
    "export_dtype": ("fp32", "fp16", "bf16"),
}

_SCHEME_A = {
    "teacher": SD21_BASE,
    "student_init": "sd-turbo",
    "student_mode": "full",
    "student_lr": 1e-6,
    "batch_size": 16,
    "mixed_precision": "bf16",
    "gradient_checkpointing": True,
    # the official trainer's LoRA teacher (guided VSD prediction, alpha_bar-weighted loss) on to_q / to_v
    "lora_teacher": "swiftbrush",
    "lora_teacher_targets": "qv",
    "lora_teacher_rank": 64,
    "lora_teacher_alpha": 128,  # SBv2 paper: rank 64, scaling 128
    "ema": True,  # --use_ema in the official recipe
    # frozen teacher cast to bf16 (the official trainer keeps it fp32 under autocast; teacher_precision=fp32):
    # SD 2.1's 865M UNet parameters take 1.7 GB instead of 3.5 GB per GPU
    "teacher_precision": "mixed",
}

PRESETS: dict[str, dict[str, Any]] = {
    # SBv2 model A: SD-Turbo initialisation, full fine-tune, VSD only.
    "sbv2-a": dict(_SCHEME_A),
    # SBv2 model B: LoRA student (rank 256, alpha 512) + clamped CLIP loss through TAESD.
    "sbv2-b": {**_SCHEME_A, "student_mode": "lora", "clip_loss": True},
    # SwiftBrush (v1): the student starts from the teacher itself, full fine-tune, VSD only; LoRA teacher
    # rank 64, alpha 108 (SwiftBrush README), x0 with the trainer's hard-coded alpha_T = 0.0047.
    "swiftbrush": {**_SCHEME_A, "student_init": "teacher", "lora_teacher_alpha": 108,
                   "student_alpha_T": SWIFTBRUSH_ALPHA_T},
    # Toy-size SD-architecture networks with seeded weights: offline, seconds per step on a CPU.
    "tiny": {
        "teacher": "tiny",
        "student_init": "teacher",
        "student_mode": "lora",
        "student_lora_rank": 4,
        "student_lora_alpha": 8,
        "lora_teacher_rank": 4,
        "lora_teacher_alpha": 8,
        "student_lr": 1e-4,
        "clip_loss": True,
        "clip_pretrained": "random",
        "batch_size": 2,
        "max_steps": 20,
        "mixed_precision": "no",
        "gradient_checkpointing": False,
        "checkpoint_every": 10,
        "sample_every": 10,
        "num_samples": 2,
        "log_every": 1,
        "prompts": [DEMO_PROMPTS],
        "ema": True,
        "ema_decay": 0.9,
    },
}

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _unknown_key(key: str, where: str) -> BenchError:
    close = difflib.get_close_matches(key, list(_FIELDS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `python -m training presets --show tiny` for all keys"
    return BenchError(f"{where}: unknown setting {key!r}; {hint}")


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(underlying type, optional?) of a field's annotation."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def coerce(key: str, value: Any, where: str = "setting") -> Any:
    """Convert ``value`` (a TOML value or a ``--set`` string) to the type of field ``key``; check choices."""
    if key not in _FIELDS:
        raise _unknown_key(key, where)
    kind, optional = _base_type(_HINTS[key])
    bad = BenchError(f"{where}: {key}={value!r} is not a valid {getattr(kind, '__name__', kind)}")
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    if typing.get_origin(kind) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise bad
        out: Any = [str(v) for v in value]
    elif kind is bool:
        if isinstance(value, bool):
            out = value
        elif str(value).lower() in ("1", "true", "yes", "on"):
            out = True
        elif str(value).lower() in ("0", "false", "no", "off"):
            out = False
        else:
            raise bad
    elif kind is int:
        if isinstance(value, bool):
            raise bad
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if as_float != int(as_float):
            raise bad
        out = int(as_float)
    elif kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad from None
    else:
        out = str(value)
    if key in CHOICES and out not in CHOICES[key]:
        raise BenchError(f"{where}: {key}={out!r} is not one of {', '.join(map(str, CHOICES[key]))}")
    return out


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x,y"]`` -> ``{"a": "1", "b": "x,y"}``; TOML literals (``[..]``, quoted strings) are parsed."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--set {item!r} is not of the form key=value; write e.g. --set student_lr=1e-5")
        raw = raw.strip()
        value: Any = raw
        if raw[:1] in "[\"'":
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                raise BenchError(f"--set {key}: {raw!r} is not a valid TOML value") from None
        out[key] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, or the keys of a ``[train]`` table."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return data


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    **explicit: Any,
) -> TrainConfig:
    """Resolve a :class:`TrainConfig` from a preset, a TOML file, ``--set`` overrides and explicit flags."""
    file_values = read_toml(config_file) if config_file else {}
    name = preset or file_values.get("preset")
    if not name:
        raise BenchError(f"no preset given; pass --preset with one of {', '.join(PRESETS)}")
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=2, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(PRESETS)}"
        raise BenchError(f"unknown preset {name!r}: {hint}")
    values: dict[str, Any] = {**PRESETS[name], "preset": name}
    for source, layer in (("config file", file_values), ("--set", overrides or {})):
        for key, value in layer.items():
            if key == "preset" and source == "config file":
                continue
            values[key] = coerce(key, value, source)
    for key, value in explicit.items():
        if value is not None:
            values[key] = coerce(key, value, f"--{key.replace('_', '-')}")
    config = TrainConfig(**values)
    validate(config)
    return config


def resolved_alpha_T(config: TrainConfig) -> float | None:
    """The student's x0 constant: ``student_alpha_T``, else 0.0047 for SwiftBrush students, else None (scheduler)."""
    if config.student_alpha_T is not None:
        return float(config.student_alpha_T)
    return SWIFTBRUSH_ALPHA_T if config.student_init == "swiftbrush" else None


def to_toml(config: TrainConfig) -> str:
    """Serialise a config to TOML that :func:`read_toml` reads back (``None`` is written as ``"none"``)."""
    lines = []
    for key, value in config.to_dict().items():
        if value is None:
            text = '"none"'
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif isinstance(value, list):
            text = "[" + ", ".join(json.dumps(str(v)) for v in value) + "]"
        else:
            text = json.dumps(str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
