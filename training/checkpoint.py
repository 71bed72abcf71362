"""Checkpoints of a distillation run, written and read without pickle.

A ``checkpoint-<step>/`` directory holds safetensors and JSON only::

    student.safetensors, lora_teacher.safetensors   trainable tensors by parameter name
    student_ema.safetensors                         the EMA (full students: weights; LoRA students: B·A deltas)
    optimizer_{student,lora_teacher}.safetensors    AdamW moments; their param groups in optimizers.json
    schedulers.json                                 learning-rate scheduler states
    training_state.json                             step and the full resolved settings

No random-generator state is stored: every draw of a step comes from a generator seeded by (seed, step, ...).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.store import atomic_write_bytes, umask

STUDENT_FILE = "student.safetensors"
LORA_TEACHER_FILE = "lora_teacher.safetensors"
EMA_FILE = "student_ema.safetensors"
STATE_FILE = "training_state.json"
OPTIMIZER_FILE = "optimizer_{}.safetensors"
OPTIMIZERS_JSON = "optimizers.json"
SCHEDULERS_JSON = "schedulers.json"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

#: Settings that do not change the numbers a run computes: they may differ on --resume.
RESUMABLE_CHANGES = frozenset({
    "preset", "cache_dir", "checkpoint_every", "checkpoints_total_limit", "sample_every", "num_samples",
    "sample_prompts", "log_every", "log_with", "progress_bar", "export_dtype", "export_ema", "gradient_checkpointing",
})


class EMA:
    """Exponential moving average of named tensors, kept in float32."""

    def __init__(self, tensors: dict[str, Any], decay: float) -> None:
        self.decay = float(decay)
        self.shadow = {n: p.detach().float().clone() for n, p in tensors.items()}

    def update(self, tensors: dict[str, Any]) -> None:
        import torch

        with torch.no_grad():
            for name, p in tensors.items():
                self.shadow[name].lerp_(p.detach().float(), 1.0 - self.decay)


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the ``checkpoint-<step>`` directories under ``output_dir``, oldest first."""
    root = Path(output_dir)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = CHECKPOINT_RE.match(child.name)
            if m and child.is_dir() and (child / STATE_FILE).is_file():
                found.append((int(m.group(1)), child))
    return sorted(found)


def resolve_checkpoint(spec: str | None, output_dir: str | Path) -> Path | None:
    """``latest`` -> newest checkpoint of ``output_dir`` (None when there is none); a path -> that checkpoint."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(spec)
    if not path.is_dir() and (Path(output_dir) / spec).is_dir():
        path = Path(output_dir) / spec
    if not (path / STATE_FILE).is_file():
        raise BenchError(f"{spec!r} is not a checkpoint directory (no {STATE_FILE}); use --resume latest or a "
                         "checkpoint-<step> directory")
    return path


def follow_umask(path: str | Path) -> None:
    """Give ``path`` (and everything under it) the modes a plain ``open`` would: some writers force 0600."""
    mask = umask()
    root = Path(path)
    for item in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if not item.is_symlink():
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def save_tensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path))
    except (SafetensorError, OSError) as exc:  # a full disk, a folder that went away
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BenchError(f"cannot write {path} ({first}); free space or fix the output directory and resume with "
                         "--resume latest") from exc
    follow_umask(path)


def _damaged(directory: Path, what: str, exc: BaseException) -> BenchError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return BenchError(f"checkpoint {directory} is damaged: {what} cannot be read ({first}); resume from an earlier "
                      "checkpoint-<step> (--resume DIR) or delete this one")


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise BenchError(f"checkpoint {path.parent} has no {path.name}; it was not written by this trainer")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:  # truncated, garbage, wrong header
        raise _damaged(path.parent, path.name, exc) from exc


def load_into(params: dict[str, Any], path: Path, what: str) -> None:
    """Copy the tensors of ``path`` into ``params`` (same names and shapes, else a one-line error)."""
    import torch

    state = load_tensors(path)
    if set(state) != set(params):
        extra, missing = sorted(set(state) - set(params)), sorted(set(params) - set(state))
        raise BenchError(
            f"the {what} in {path.parent} does not match this run ({len(missing)} missing, {len(extra)} unexpected "
            f"tensors, e.g. {(missing or extra)[0]}); was it trained with other settings?"
        )
    with torch.no_grad():
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise BenchError(f"the {what} tensor {name} has shape {tuple(state[name].shape)} in the checkpoint, "
                                 f"{tuple(p.shape)} in this run")
            p.copy_(state[name])


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def save_optimizers(optimizers: dict[str, Any], directory: Path) -> None:
    """AdamW states: tensors to ``optimizer_<name>.safetensors``, param groups to ``optimizers.json``."""
    groups = {}
    for name, opt in optimizers.items():
        state = opt.state_dict()
        tensors = {f"{idx}.{key}": value for idx, per_param in state["state"].items()
                   for key, value in per_param.items()}
        save_tensors(tensors, directory / OPTIMIZER_FILE.format(name))
        groups[name] = _jsonable(state["param_groups"])
    atomic_write_bytes(directory / OPTIMIZERS_JSON, json.dumps(groups, indent=1).encode())


def load_optimizers(optimizers: dict[str, Any], directory: Path) -> None:
    try:
        groups = json.loads((directory / OPTIMIZERS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"checkpoint {directory} has no readable {OPTIMIZERS_JSON} ({exc})") from None
    for name, opt in optimizers.items():
        state: dict[int, dict[str, Any]] = {}
        try:
            for key, value in load_tensors(directory / OPTIMIZER_FILE.format(name)).items():
                idx, _, field = key.partition(".")
                state.setdefault(int(idx), {})[field] = value
            param_groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups[name]]
            opt.load_state_dict({"state": state, "param_groups": param_groups})
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise _damaged(directory, f"the {name} optimizer state", exc) from exc


def save_schedulers(schedulers: dict[str, Any], directory: Path) -> None:
    data = {name: _jsonable(s.state_dict()) for name, s in schedulers.items()}
    atomic_write_bytes(directory / SCHEDULERS_JSON, json.dumps(data, indent=1).encode())


def load_schedulers(schedulers: dict[str, Any], directory: Path) -> None:
    try:
        data = json.loads((directory / SCHEDULERS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"checkpoint {directory} has no readable {SCHEDULERS_JSON} ({exc})") from None
    for name, sched in schedulers.items():
        try:
            sched.load_state_dict(data[name])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _damaged(directory, f"the {name} scheduler state", exc) from exc


def check_same_settings(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Refuse (one line) to resume when any setting that changes the math differs from the checkpoint's."""
    for key in sorted(current):
        if key in RESUMABLE_CHANGES:
            continue
        if key not in saved:
            raise BenchError(f"cannot resume from {where}: it records no {key} (written by another version); "
                             "start a new --output-dir")
        if saved[key] != current[key]:
            raise BenchError(f"cannot resume from {where}: it was trained with {key}={saved[key]!r}, this run has "
                             f"{key}={current[key]!r}; resume with the same setting or start a new --output-dir")


def write_state(directory: Path, step: int, config: dict[str, Any]) -> None:
    atomic_write_bytes(directory / STATE_FILE, json.dumps({"step": step, "config": config}, indent=1).encode())


def read_state(directory: Path) -> dict[str, Any]:
    """The checkpoint's ``{"step": int, "config": {...}}``; one-line error when it is missing or damaged."""
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"checkpoint {directory} has no readable {STATE_FILE} ({exc})") from None
    if not (isinstance(state, dict) and isinstance(state.get("step"), int) and not isinstance(state["step"], bool)
            and state["step"] >= 0 and isinstance(state.get("config", {}), dict)):
        raise _damaged(directory, STATE_FILE, ValueError("no step number and settings"))
    return state
