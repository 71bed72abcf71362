"""What produced a result: package versions, git commit, hardware."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions every result records.
TRACKED_PACKAGES = (
    "sbv2-bench",
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "open_clip_torch",
    "clean-fid",
    "accelerate",
    "peft",
    "numpy",
    "scipy",
    "pillow",
    "safetensors",
    "huggingface_hub",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the source checkout (with ``-dirty`` when modified), or None outside git."""
    where = Path(path) if path else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def provenance(device: Any = None) -> dict[str, Any]:
    """Versions, commit and (when a device is given) hardware, for config.json and results.json."""
    info: dict[str, Any] = {"packages": package_versions(), "git_commit": git_commit()}
    if device is not None:
        from bench.devices import hardware_summary

        info["hardware"] = hardware_summary(device)
    return info
