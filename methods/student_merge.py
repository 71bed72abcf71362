"""Weight interpolation of two students into a new student directory (``python -m training merge``, and
``bench sweep-merge --save-merged`` through the ``sbv2`` method): ``theta = lambda * theta_A + (1 - lambda) * theta_B``.

Every floating-point tensor is interpolated in float32 and stored in model A's dtype; other tensors must be
equal in both (:func:`bench.state_interpolation.interpolate_state_dicts`). Inputs are export directories (a
diffusers UNet: ``config.json`` + safetensors weights, sharded or not) or LoRA adapter directories (``lora/`` of a
LoRA-student export), which are fused into their base first (:mod:`methods.student_dir`).
Keys and shapes must match exactly; any mismatch is a one-line error (exit status 2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.model_card import write_model_card
from methods.student_dir import load_model, save_unet


def scheduler_alpha_T() -> float:
    """alpha_bar at t = 999 of the SD noise schedule (the value a student without a fixed alpha_T uses), as the
    scheduler computes it in float32."""
    from diffusers import DDPMScheduler

    from methods.components import SD_SCHEDULER_CONFIG

    return float(DDPMScheduler(**SD_SCHEDULER_CONFIG).alphas_cumprod[999])


def merged_alpha_T(card_a: dict[str, Any], card_b: dict[str, Any], lam: float) -> dict[str, Any]:
    """The x0 constant of ``lam * A + (1 - lam) * B`` for its card, merged as ``bench sweep-merge`` merges it
    (:func:`bench.state_interpolation.interpolate_constants`): A's own at lambda = 1, B's own at lambda = 0, else
    ``lam * a_A + (1 - lam) * a_B`` where a student without a fixed one (``alpha_T: null``) counts with the SD
    schedule's alpha_bar_999. Two students that both use the schedule's value keep ``null``."""
    from bench.state_interpolation import interpolate_constants

    a, b = card_a.get("alpha_T"), card_b.get("alpha_T")
    if a is None and b is None:
        return {"alpha_T": None, "alpha_T_source": "scheduler"}
    if lam in (0.0, 1.0):
        chosen = card_a if lam == 1.0 else card_b
        return {"alpha_T": chosen.get("alpha_T"), "alpha_T_source": chosen.get("alpha_T_source", "fixed")}
    value = scheduler_alpha_T()
    merged = interpolate_constants({"alpha_T": value if a is None else float(a)},
                                   {"alpha_T": value if b is None else float(b)}, lam)["alpha_T"]
    return {"alpha_T": merged, "alpha_T_source": "merged", "alpha_T_merge": {"a": a, "b": b, "lambda": lam}}


def merge_models(a: str | Path, b: str | Path, lam: float, output_dir: str | Path, overwrite: bool = False) -> Path:
    """Interpolate models ``a`` and ``b`` into ``output_dir`` (an export directory like the inputs).

    ``output_dir`` must not overlap either input; an existing non-empty one is replaced only with
    ``overwrite``; the result is staged next to it and renamed into place.
    """
    from bench.state_interpolation import interpolate_state_dicts
    from methods.student_output import check_no_overlap, staged_output

    if not math.isfinite(lam):
        raise BenchError(f"--lambda must be a finite number, got {lam}")
    check_no_overlap(output_dir, [a, b])
    config_a, state_a, meta_a = load_model(a)
    config_b, state_b, meta_b = load_model(b)
    arch = {k: v for k, v in config_a.items() if not k.startswith("_")}
    arch_b = {k: v for k, v in config_b.items() if not k.startswith("_")}
    if json.dumps(arch, sort_keys=True, default=list) != json.dumps(arch_b, sort_keys=True, default=list):
        diff = sorted(k for k in set(arch) | set(arch_b) if arch.get(k) != arch_b.get(k))
        raise BenchError(f"the UNet configs differ in {', '.join(diff[:5])}; both must have the same architecture")
    merged = interpolate_state_dicts(state_a, state_b, lam)
    dtype = {"torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(str(next(iter(merged.values())).dtype), "fp32")
    meta = dict(meta_a or meta_b or {})
    for key in ("lora", "lora_ema"):
        meta.pop(key, None)
    if meta_a and meta_b and (meta_a.get("base"), meta_a.get("base_seed")) != (meta_b.get("base"), meta_b.get("base_seed")):
        print(f"training: warning: A's base is {meta_a.get('base')!r}, B's is {meta_b.get('base')!r}; "
              "the merged model keeps A's")
    meta["merge"] = {"a": str(Path(a).resolve()), "b": str(Path(b).resolve()), "lambda": lam}
    meta.update(merged_alpha_T(meta_a or {}, meta_b or {}, lam))
    # what the merged model is: this merge of the two recipes (not A's recipe, which the rest of the card copies)
    meta["recipe"] = {"merge": {"lambda": lam, "a": (meta_a or {}).get("recipe"), "b": (meta_b or {}).get("recipe")}}
    meta["dtype"] = dtype
    if meta.get("base") is None:
        print("training: warning: neither input has a bench_model.json; the merged model records no base")
    with staged_output(output_dir, overwrite) as tmp:
        save_unet(config_a, merged, tmp, dtype)
        write_model_card(tmp, meta)
    return Path(output_dir)
