"""A student directory as training exports it and ``sbv2`` and merging read it, read and written in one place.

Layout::

    config.json                          UNet config (diffusers)
    diffusion_pytorch_model.safetensors  UNet weights; a LoRA student is fused into full weights
    bench_model.json                     the card (:mod:`bench.model_card`)
    lora/                                (LoRA students) the unfused adapter: adapter_model.safetensors +
                                         adapter_config.json, which records how to rebuild its base
                                         (:mod:`methods.student_base`)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.model_card import read_model_card
from bench.run_dir import follow_umask
from methods.student_base import StudentBase, StudentSpec

UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
LORA_DIR = "lora"
LORA_WEIGHTS = "adapter_model.safetensors"
LORA_CONFIG = "adapter_config.json"

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def fuse_lora(unet: Any) -> dict[str, Any]:
    """Merge every LoRA layer of ``unet`` into its base weights; return the plain (adapter-free) state dict."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in unet.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge(safe_merge=True)
    state = {}
    for key, value in unet.state_dict().items():
        if ".lora_" in key:
            continue
        state[key.replace(".base_layer.", ".")] = value
    return state


def load_lora_weights(unet: Any, trained: dict[str, Any]) -> None:
    """Copy adapter tensors (named as in ``unet.named_parameters()``) into ``unet``'s LoRA parameters."""
    import torch

    params = {n: p for n, p in unet.named_parameters() if "lora_" in n}
    if set(params) != set(trained):
        missing, extra = sorted(set(params) - set(trained)), sorted(set(trained) - set(params))
        raise BenchError(f"LoRA weights do not fit the base model ({len(missing)} missing, {len(extra)} unexpected, "
                         f"e.g. {(missing or extra)[0]})")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(trained[name])


def fused_lora_student(base: StudentSpec, rank: int, alpha: int, targets: str,
                       trained: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(UNet config, fused fp32 state dict) of a LoRA student (``rank``, ``alpha``, ``targets``) on ``base`` given
    its trained adapter tensors."""
    from methods.student_base import add_lora, load_student_unet

    unet = load_student_unet(base).float()
    add_lora(unet, rank, alpha, targets)
    load_lora_weights(unet, trained)
    return dict(unet.config), fuse_lora(unet)


def save_unet(unet_config: dict[str, Any], state: dict[str, Any], output_dir: str | Path, dtype: str = "fp32") -> Path:
    """Write ``config.json`` + ``diffusion_pytorch_model.safetensors`` (checked against the config)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    torch_dtype = getattr(torch, _DTYPES[dtype])
    unet.load_state_dict({k: v.to(torch_dtype) for k, v in state.items()}, strict=True, assign=True)
    unet.save_pretrained(str(out), safe_serialization=True)
    follow_umask(out / "config.json")
    for weights in out.glob("diffusion_pytorch_model*.safetensors*"):
        follow_umask(weights)
    return out


def load_lora_dir(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fuse an adapter directory written by training (``training.export.save_lora_dir``) into its rebuilt base:
    (UNet config, fp32 state dict)."""
    from safetensors.torch import load_file

    d = Path(directory)
    try:
        meta = json.loads((d / LORA_CONFIG).read_text())
        base = StudentBase(**dict(meta["base"]))
        rank, alpha, targets = int(meta["rank"]), int(meta["alpha"]), str(meta["targets"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{d} is not a LoRA directory written by this package ({type(exc).__name__}: {exc})") from None
    return fused_lora_student(base, rank, alpha, targets, load_file(str(d / LORA_WEIGHTS)))


def read_unet_weights(d: Path) -> dict[str, Any]:
    """The UNet state dict of an export directory (one safetensors file or an indexed set of shards)."""
    from safetensors.torch import load_file

    single = d / UNET_WEIGHTS
    if single.is_file():
        return load_file(str(single))
    index = d / f"{UNET_WEIGHTS}.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, Any] = {}
        for name in files:
            state.update(load_file(str(d / name)))
        return state
    raise BenchError(f"{d} has no {UNET_WEIGHTS}; expected an exported student (diffusers UNet directory)")


def lora_adapter_dir(weights: str | None) -> Path | None:
    """The directory when ``weights`` is a LoRA adapter written by training (no UNet config of its own)."""
    if not weights:
        return None
    d = Path(weights)
    return d if (d / LORA_CONFIG).is_file() and not (d / "config.json").is_file() else None


def load_model(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(UNet config, state dict, bench_model.json or None) of an export or LoRA directory."""
    d = Path(path)
    if not d.is_dir():
        raise BenchError(f"model directory {str(d)!r} does not exist")
    if lora_adapter_dir(str(d)) is not None:
        config, state = load_lora_dir(d)
        meta = (read_model_card(d.parent) or None) if d.name == LORA_DIR else None
        return config, state, meta
    if not (d / "config.json").is_file():
        if (d / "unet" / "config.json").is_file():
            d = d / "unet"
        else:
            raise BenchError(f"{d} is neither an exported student (config.json + {UNET_WEIGHTS}) nor a LoRA directory")
    config = json.loads((d / "config.json").read_text())
    return config, read_unet_weights(d), read_model_card(d) or None
