"""Where a student UNet lives in a weights directory: the training module's layout or the SBv2 release's.

The SBv2 release loads ``UNet2DConditionModel.from_pretrained(DIR, subfolder="unet_ema")``; the training module
writes the UNet at the root of DIR (or under ``unet/``). ``subfolder="auto"`` takes ``unet_ema/`` when it holds
a ``config.json``, else ``unet/``, else the root; ``unet_ema``, ``unet`` and ``none`` (the root) force one.

Weights are read from ``diffusion_pytorch_model.safetensors``; with ``bin_weights=true`` a directory that only
has ``diffusion_pytorch_model.bin`` is read too, as a plain state dict (``torch.load(weights_only=True)``:
tensors only, never pickled code).
"""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from methods.loading import Snapshot, _load

SUBFOLDERS = ("auto", "unet_ema", "unet", "none")
#: Files a student directory may hold (hub download patterns).
STUDENT_FILES = tuple(f"{d}{name}" for d in ("", "unet/", "unet_ema/")
                      for name in ("config.json", "diffusion_pytorch_model.safetensors"))
BIN_FILES = tuple(f"{d}diffusion_pytorch_model.bin" for d in ("", "unet/", "unet_ema/"))


def student_subfolder(snap: Snapshot, choice: str = "auto") -> str | None:
    """The sub-directory holding the UNet (None: the root), per ``choice``."""
    if choice not in SUBFOLDERS:
        raise BenchError(f"subfolder={choice!r} is not one of {', '.join(SUBFOLDERS)}")
    if choice == "none":
        return None
    if choice != "auto":
        if not (snap.path / choice / "config.json").is_file():
            raise BenchError(f"weights={snap.ref} has no {choice}/config.json; pass subfolder=auto|unet_ema|unet|"
                             "none to say where the UNet is")
        return choice
    for name in ("unet_ema", "unet"):
        if (snap.path / name / "config.json").is_file():
            return name
    return None


def load_student_unet(snap: Snapshot, subfolder: str = "auto", bin_weights: bool = False) -> Any:
    """The student UNet from ``snap`` (layout and weight files: see the module docstring)."""
    from diffusers import UNet2DConditionModel

    sub = student_subfolder(snap, subfolder)
    folder = snap.path / sub if sub else snap.path
    has_safetensors = (folder / "diffusion_pytorch_model.safetensors").is_file()
    bin_file = folder / "diffusion_pytorch_model.bin"
    if has_safetensors or not bin_file.is_file():
        return _load("UNet", snap, lambda: UNet2DConditionModel.from_pretrained(snap.path, subfolder=sub,
                                                                                use_safetensors=True))
    if not bin_weights:
        raise BenchError(f"cannot load the UNet from {folder}: it has diffusion_pytorch_model.bin but no "
                         "safetensors file; pass --method-args bin_weights=true to read the .bin as a state dict "
                         "(torch.load with weights_only=True)")
    from bench.hub_errors import load_state_dict

    config = _load("UNet config", snap, lambda: UNet2DConditionModel.load_config(str(folder)))
    unet = UNet2DConditionModel.from_config(config)
    try:
        unet.load_state_dict(load_state_dict(bin_file), strict=True)
    except RuntimeError as exc:
        raise BenchError(f"{bin_file} does not fit the UNet of {folder / 'config.json'}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return unet.eval()
