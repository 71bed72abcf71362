"""The UNet a student starts from, rebuilt from the settings training records (its teacher, ``student_init``,
revisions, ``model_seed``, ``cache_dir``), and the LoRA adapters training adds to it.

Training builds its student from these; reading a LoRA student's ``lora/`` directory (:mod:`methods.student_dir`)
rebuilds the same base from the settings its ``adapter_config.json`` records, so one loader serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.errors import BenchError
from bench.hub_errors import offline

#: Teachers built from code with seeded weights (no download): toy size, and SD 2.1-base size (benchmarks).
SYNTHETIC = ("tiny", "random-sd21")
#: Seed offset of a synthetic student that does not start from the teacher.
STUDENT_SEED_OFFSET = 1000
#: ``student_init`` names -> hub repository holding a diffusers pipeline (the UNet is in ``unet/``).
STUDENT_INITS = {"sd-turbo": "stabilityai/sd-turbo", "swiftbrush": "thuanz123/swiftbrush"}
#: LoRA target sets by name -> the UNet module names the adapter wraps.
LORA_TARGETS = {
    "qv": ["to_q", "to_v"],
    "attn": ["to_q", "to_k", "to_v", "to_out.0"],
    "all": [
        "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
        "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
    ],
}


class StudentSpec(Protocol):
    """What rebuilds a student's initial UNet (training's run config has these fields)."""

    teacher: str
    teacher_revision: str | None
    student_init: str
    student_revision: str | None
    model_seed: int
    cache_dir: str | None


@dataclass(frozen=True)
class StudentBase:
    """The settings a LoRA student's ``adapter_config.json`` records under ``base`` (a :class:`StudentSpec`)."""

    teacher: str = "stabilityai/stable-diffusion-2-1-base"
    teacher_revision: str | None = None
    student_init: str = "sd-turbo"
    student_revision: str | None = None
    model_seed: int = 0
    cache_dir: str | None = None


#: Fields of :class:`StudentBase` (what ``adapter_config.json`` records to rebuild a LoRA student's base).
LORA_BASE_FIELDS = ("teacher", "teacher_revision", "student_init", "student_revision", "model_seed", "cache_dir")


def load_pretrained(cls: Any, repo: str, subfolder: str | None, what: str, key: str, cache_dir: str | None,
                    revision: str | None = None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` with offline handling; failures become a one-line :class:`BenchError`."""
    local = Path(repo).is_dir()
    args: dict[str, Any] = {"cache_dir": cache_dir, "local_files_only": offline() and not local, **kwargs}
    if subfolder:
        args["subfolder"] = subfolder
    if revision:
        args["revision"] = revision
    try:
        return cls.from_pretrained(repo, **args)
    except Exception as exc:
        where = f"{repo}/{subfolder}" if subfolder else repo
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if local:
            hint = f"check the directory or set {key} to another model"
        else:
            note = " (offline mode is on, so only the local cache was searched)" if offline() else ""
            hint = f"download it once while online with `huggingface-cli download {repo}`{note}, or set {key}"
        raise BenchError(f"cannot load the {what} from {where} [{type(exc).__name__}: {reason}]; {hint}") from None


def _unet_dir_is_flat(path: str) -> bool:
    """True for an exported student directory (a bare diffusers UNet with ``config.json`` at the top)."""
    return Path(path, "config.json").is_file() and not Path(path, "unet").is_dir()


def student_source(config: StudentSpec) -> tuple[str, str | None]:
    """(repository or directory, subfolder) that the student starts from (``(teacher, None)`` if synthetic)."""
    init = config.student_init
    if init != "teacher" and Path(init).is_dir():
        return init, None if _unet_dir_is_flat(init) else "unet"
    if config.teacher in SYNTHETIC:
        return config.teacher, None
    if init == "teacher":
        return config.teacher, "unet"
    return STUDENT_INITS.get(init, init), "unet"


def random_sd21(part: str, seed: int, device: Any = None) -> Any:
    """One SD 2.1-base network (``unet``, ``text_encoder`` or ``vae``) with seeded random weights, built on
    ``device`` (seeds as in :func:`methods.loading.random_networks`: text encoder ``seed``, UNet ``seed + 1``,
    VAE ``seed + 2``)."""
    import torch

    from methods.components import seeded
    from methods.configs import SD21_TEXT_ENCODER_CONFIG, SD21_UNET_CONFIG, SD_VAE_CONFIG

    def build() -> Any:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        with torch.device(device if device is not None else "cpu"):
            if part == "unet":
                return UNet2DConditionModel(**SD21_UNET_CONFIG)
            if part == "text_encoder":
                return CLIPTextModel(CLIPTextConfig(**SD21_TEXT_ENCODER_CONFIG))
            return AutoencoderKL(**SD_VAE_CONFIG)

    return seeded(seed + {"text_encoder": 0, "unet": 1, "vae": 2}[part], build)


def synthetic_unet(kind: str, seed: int, device: Any = None) -> Any:
    """A seeded UNet: the toy one of :mod:`methods.components` or the SD 2.1-base architecture."""
    from methods.components import build_tiny_components

    if kind == "tiny":
        return build_tiny_components(seed).unet
    return random_sd21("unet", seed, device)


def load_student_unet(config: StudentSpec, device: Any = None) -> Any:
    """The student's initial UNet (plain: no adapters). A synthetic stand-in for hub students of toy teachers."""
    from diffusers import UNet2DConditionModel

    repo, subfolder = student_source(config)
    if repo in SYNTHETIC:
        offset = 0 if config.student_init == "teacher" else STUDENT_SEED_OFFSET
        return synthetic_unet(repo, config.model_seed + offset, device)
    revision = config.teacher_revision if config.student_init == "teacher" else config.student_revision
    return load_pretrained(UNet2DConditionModel, repo, subfolder, "student UNet", "student_init", config.cache_dir,
                           revision, use_safetensors=True)


def lora_config(rank: int, alpha: int, targets: str) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=True, target_modules=list(LORA_TARGETS[targets]))


def add_lora(unet: Any, rank: int, alpha: int, targets: str, seed: int = 0) -> Any:
    """Freeze ``unet`` and add a trainable fp32 LoRA adapter (LoRA ``B`` starts at zero: no change at step 0).

    The ``A`` matrices are drawn from a generator seeded with ``seed`` (peft draws them from torch's global
    generator, which is left as it was).
    """
    from methods.components import seeded

    unet.requires_grad_(False)
    seeded(seed, lambda: unet.add_adapter(lora_config(rank, alpha, targets)))
    for name, param in unet.named_parameters():
        if "lora_" in name:
            param.requires_grad_(True)
            param.data = param.data.float()
    return unet
