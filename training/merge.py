"""Weight interpolation of two students: ``theta = lambda * theta_A + (1 - lambda) * theta_B``.

Every floating-point tensor is interpolated in float32 and stored in model A's dtype; other tensors must be
equal in both. Inputs are export directories (a diffusers UNet: ``config.json`` + safetensors weights, sharded
or not) or LoRA adapter directories (``lora/`` of a LoRA-student export), which are fused into their base first.
Keys and shapes must match exactly; any mismatch is a one-line error (exit status 2).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from training.export import (
    BENCH_MODEL_FILE,
    LORA_CONFIG,
    LORA_DIR,
    UNET_WEIGHTS,
    load_lora_dir,
    read_bench_model,
    save_unet,
)


def _read_unet_weights(d: Path) -> dict[str, Any]:
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


def load_model(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(UNet config, state dict, bench_model.json or None) of an export or LoRA directory."""
    d = Path(path)
    if not d.is_dir():
        raise BenchError(f"model directory {str(d)!r} does not exist")
    if (d / LORA_CONFIG).is_file() and not (d / "config.json").is_file():
        config, state = load_lora_dir(d)
        meta = read_bench_model(d.parent) if d.name == LORA_DIR else None
        return config, state, meta
    if not (d / "config.json").is_file():
        if (d / "unet" / "config.json").is_file():
            d = d / "unet"
        else:
            raise BenchError(f"{d} is neither an exported student (config.json + {UNET_WEIGHTS}) nor a LoRA directory")
    config = json.loads((d / "config.json").read_text())
    return config, _read_unet_weights(d), read_bench_model(d)


def merge_state_dicts(a: dict[str, Any], b: dict[str, Any], lam: float) -> dict[str, Any]:
    """``lam * a + (1 - lam) * b`` for floating tensors (computed in float32, stored in ``a``'s dtype)."""
    import torch

    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        example = f"{only_a[0]!r} only in A" if only_a else f"{only_b[0]!r} only in B"
        raise BenchError(f"the models have different tensors ({len(only_a)} only in A, {len(only_b)} only in B, "
                         f"e.g. {example}); both must have the same architecture")
    out: dict[str, Any] = {}
    for key in sorted(a):
        ta, tb = a[key], b[key]
        if tuple(ta.shape) != tuple(tb.shape):
            raise BenchError(f"tensor {key!r} has shape {tuple(ta.shape)} in A but {tuple(tb.shape)} in B; "
                             "both models must have the same architecture")
        if ta.is_floating_point() and tb.is_floating_point():
            merged = lam * ta.to(torch.float32) + (1.0 - lam) * tb.to(torch.float32)
            out[key] = merged.to(ta.dtype)
        elif ta.is_floating_point() != tb.is_floating_point() or not torch.equal(ta, tb):
            raise BenchError(f"non-floating tensor {key!r} differs between A and B; cannot interpolate it")
        else:
            out[key] = ta.clone()
    return out


def merge_models(a: str | Path, b: str | Path, lam: float, output_dir: str | Path) -> Path:
    """Interpolate models ``a`` and ``b`` into ``output_dir`` (an export directory like the inputs)."""
    if not math.isfinite(lam):
        raise BenchError(f"--lambda must be a finite number, got {lam}")
    out = Path(output_dir)
    if out.resolve() in (Path(a).resolve(), Path(b).resolve()):
        raise BenchError("--output-dir must differ from the input models")
    config_a, state_a, meta_a = load_model(a)
    config_b, state_b, meta_b = load_model(b)
    arch = {k: v for k, v in config_a.items() if not k.startswith("_")}
    arch_b = {k: v for k, v in config_b.items() if not k.startswith("_")}
    if json.dumps(arch, sort_keys=True, default=list) != json.dumps(arch_b, sort_keys=True, default=list):
        diff = sorted(k for k in set(arch) | set(arch_b) if arch.get(k) != arch_b.get(k))
        raise BenchError(f"the UNet configs differ in {', '.join(diff[:5])}; both must have the same architecture")
    merged = merge_state_dicts(state_a, state_b, lam)
    dtype = {"torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(str(next(iter(merged.values())).dtype), "fp32")
    save_unet(config_a, merged, out, dtype)
    meta = dict(meta_a or meta_b or {})
    meta.pop("lora", None)
    if meta_a and meta_b and (meta_a.get("base"), meta_a.get("base_seed")) != (meta_b.get("base"), meta_b.get("base_seed")):
        print(f"training: warning: A's base is {meta_a.get('base')!r}, B's is {meta_b.get('base')!r}; "
              "the merged model keeps A's")
    meta["merge"] = {"a": str(Path(a).resolve()), "b": str(Path(b).resolve()), "lambda": lam}
    meta["dtype"] = dtype
    if meta.get("base") is None:
        print("training: warning: neither input has a bench_model.json; the merged model records no base")
    (out / BENCH_MODEL_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    stale = out / LORA_DIR
    if stale.is_dir():
        shutil.rmtree(stale)
    return out
