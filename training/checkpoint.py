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
import re
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.run_dir import atomic_write_bytes, follow_umask

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
    """Exponential moving average of named tensors, kept in float32.

    ``rule="official"`` is diffusers' ``EMAModel`` with its default settings (what SwiftBrush's ``--use_ema``
    builds): update k (k = 1, 2, ...) uses decay ``min(decay, (1 + s) / (10 + s))`` with s = k - 1, and s = 0
    gives decay 0, so the first update copies the weights. ``rule="fixed"``: ``decay`` from the first update.
    The shadow is ``shadow - (1 - d) * (shadow - value)``, the update EMAModel makes.
    """

    def __init__(self, tensors: dict[str, Any], decay: float, rule: str = "official") -> None:
        if rule not in ("official", "fixed"):
            raise BenchError(f"ema_rule={rule!r} is not one of official, fixed")
        self.decay = float(decay)
        self.rule = rule
        self.shadow = {n: p.detach().float().clone() for n, p in tensors.items()}

    def decay_at(self, update: int) -> float:
        """The decay of the ``update``-th update (1-based)."""
        if self.rule == "fixed":
            return self.decay
        s = update - 1
        return 0.0 if s <= 0 else min(self.decay, (1 + s) / (10 + s))

    def update(self, tensors: dict[str, Any], update: int) -> None:
        """Fold in ``tensors`` as the ``update``-th update (the trainer passes its step count, so a resumed run
        continues the same schedule)."""
        import torch

        one_minus = 1.0 - self.decay_at(update)
        with torch.no_grad():
            for name, p in tensors.items():
                shadow = self.shadow[name]
                shadow.sub_(one_minus * (shadow - p.detach().float()))


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


#: LR schedules whose value at a step does not depend on the total number of steps.
STEP_FREE_LR = ("constant", "constant_with_warmup")


def extension_blocker(config: dict[str, Any]) -> str | None:
    """Why a run with these settings cannot be continued past its ``max_steps`` as if it had been started with a
    larger one (None: it can). The CLIP/HPS weights decay over ``max_steps`` unless their schedule is
    ``constant``, and most LR schedules are functions of the total number of steps."""
    if config.get("lr_scheduler") not in STEP_FREE_LR:
        return f"its learning rate follows lr_scheduler={config.get('lr_scheduler')}, a function of max_steps"
    for loss in ("clip", "hps"):
        if config.get(f"{loss}_loss") and config.get(f"{loss}_schedule") != "constant":
            return (f"its {loss.upper()} loss weight decays over max_steps ({loss}_schedule="
                    f"{config.get(f'{loss}_schedule')})")
    return None


def check_same_settings(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    """Refuse (one line) to resume when any setting that changes the math differs from the checkpoint's.

    ``max_steps`` may grow when nothing else depends on it (:func:`extension_blocker`): the longer run is then
    exactly what a fresh run of that length computes."""
    for key in sorted(current):
        if key in RESUMABLE_CHANGES:
            continue
        if key == "max_steps" and key in saved and saved[key] != current[key]:
            blocker = extension_blocker(current)
            if blocker is None and current[key] > saved[key]:
                continue
            why = f": {blocker}" if blocker else " (max_steps can only grow)"
            raise BenchError(f"cannot resume from {where} with max_steps={current[key]} (it was trained towards "
                             f"{saved[key]}){why}; resume with max_steps={saved[key]} or start a new --output-dir")
        if key not in saved:
            raise BenchError(f"cannot resume from {where}: it records no {key} (written by another version); "
                             "start a new --output-dir")
        if saved[key] != current[key]:
            raise BenchError(f"cannot resume from {where}: it was trained with {key}={saved[key]!r}, this run has "
                             f"{key}={current[key]!r}; resume with the same setting or start a new --output-dir")


def write_state(directory: Path, step: int, config: dict[str, Any], inputs: dict[str, Any] | None = None) -> None:
    """``training_state.json``: the step, every setting, and ``inputs`` (what the settings only name: the content
    fingerprints of the prompt list and image pairs, and the number of processes)."""
    data = {"step": step, "config": config, "inputs": inputs or {}}
    atomic_write_bytes(directory / STATE_FILE, json.dumps(data, indent=1).encode())


def input_fingerprints(prompts: list[str] | None, pairs: list[tuple[Path, str]] | None,
                       world_size: int) -> dict[str, Any]:
    """What the settings only name, by content: sha256 of the prompt list as loaded (normalised, in order) and of
    the image pairs (captions, image names and sizes), and the number of processes."""
    import hashlib

    def digest(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()

    out: dict[str, Any] = {"world_size": world_size}
    if prompts is not None:
        out["prompts_sha256"] = digest(list(prompts))
    if pairs is not None:
        out["pairs_sha256"] = digest([f"{p.name}\t{p.stat().st_size if p.exists() else -1}\t{c}" for p, c in pairs])
    return out


def check_same_inputs(saved: dict[str, Any] | None, current: dict[str, Any], where: Path) -> None:
    """Refuse (one line) to resume when the prompt list's or image pairs' content, or the number of processes,
    differs from the checkpoint's (a file edited under the same path is a different run)."""
    what = {"prompts_sha256": "the prompt list's content changed (same settings, other prompts)",
            "pairs_sha256": "the image-text pairs changed",
            "world_size": "it ran on {saved} process(es), this launch has {current}"}
    if saved is None:
        raise BenchError(f"cannot resume from {where}: it records no input fingerprints (written by another "
                         "version); start a new --output-dir")
    for key in sorted(current):
        if saved.get(key) != current[key]:
            reason = what.get(key, key).format(saved=saved.get(key), current=current[key])
            raise BenchError(f"cannot resume from {where}: {reason}; resume with the same inputs or start a new "
                             "--output-dir")


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
