"""``bench interpolate``: images along a slerp (or lerp) between two noises or two prompts (paper Figs. 13, 14).

``--mode noise``: one prompt; per seed s, noise A is sample 0's noise of seed s and noise B is sample 1's
(:func:`bench.sample_noise.sample_noise`, the noise ``bench run`` gives samples 0 and 1 with ``--seed s``).
``--mode prompt``: one noise (sample 0 of seed s); the text encoder's output for ``--prompt`` and ``--prompt-b``
(the whole token-embedding sequence the denoiser consumes) is interpolated. Writes ``grid.png`` (rows = seeds,
columns = steps, labelled: :mod:`bench.interp_grid`), ``images/seed-<s>-step-<k>.png`` and ``interpolate.json``
(what was done, and where the images sit in the grid) into ``--out``; ``bench report`` collects it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.commands.base import function_command
from bench.devices import DTYPES
from bench.errors import BenchError
from bench.interp import RECORD_FILE
from bench.options import parse_kv

GAP = 2
#: Most images per row and rows (seeds) of a grid; each row is generated as one batch.
MAX_STEPS = 64
MAX_SEEDS = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="generator name (see `bench list methods`)")
    p.add_argument("--method-args", default="", metavar="K=V,...", help="options of the method")
    p.add_argument("--mode", required=True, choices=("noise", "prompt"), help="what is interpolated")
    p.add_argument("--prompt", required=True, help="the prompt (prompt mode: the prompt at step 0)")
    p.add_argument("--prompt-b", default=None, help="prompt mode: the prompt at the last step")
    p.add_argument("--steps", type=int, default=8, help="images per row, both ends included (default: 8)")
    p.add_argument("--seeds", default="0", metavar="S,S,...", help="one row per seed (default: 0)")
    p.add_argument("--interp", default="slerp", choices=("slerp", "lerp"), help="default: slerp")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: interpolations/<method>-<mode>)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="generator precision (default: fp32)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")


def _check(args: argparse.Namespace) -> list[int]:
    if not 2 <= args.steps <= MAX_STEPS:
        raise BenchError(f"--steps must be from 2 (both ends) to {MAX_STEPS}, got {args.steps}")
    if args.mode == "prompt" and not args.prompt_b:
        raise BenchError("--mode prompt needs --prompt-b, the prompt at the last step")
    if args.mode == "noise" and args.prompt_b:
        raise BenchError("--prompt-b is for --mode prompt; noise mode keeps one prompt")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--seeds {args.seeds!r} must be a comma list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise BenchError(f"--seeds {args.seeds!r} must name distinct seeds, e.g. 0,1,2")
    if len(seeds) > MAX_SEEDS:
        raise BenchError(f"--seeds names {len(seeds)} seeds, more than {MAX_SEEDS} (one grid row each)")
    return seeds


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds anything but an earlier interpolation (``--overwrite`` replaces only
    that), with one line."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; choose a folder")
    if not out.is_dir() or not any(not p.name.startswith(".") for p in out.iterdir()):
        return
    try:
        ours = json.loads((out / RECORD_FILE).read_text(encoding="utf-8")).get("kind") == "interpolate"
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise BenchError(f"--out {out} is not empty and holds no {RECORD_FILE} of an earlier interpolation, so it is "
                         "never written into; choose another folder")
    if not overwrite:
        raise BenchError(f"--out {out} holds an earlier interpolation; choose another folder or pass --overwrite")


def _clear(out: Path) -> None:
    """Remove the files an earlier interpolation wrote in ``out``."""
    for name in (RECORD_FILE, "grid.png"):
        (out / name).unlink(missing_ok=True)
    for image in (out / "images").glob("seed-*-step-*.png"):
        image.unlink()


def inputs(gen: Any, mode: str, seed: int, prompt: str, prompt_b: str | None, ts: list[float],
           how: str) -> tuple[Any, Any]:
    """(noises (steps, *noise_shape) float32, conditioning for the steps) of one row."""
    import torch

    from bench.interp import interpolate
    from bench.sample_noise import sample_noise

    z0 = sample_noise(seed, 0, gen.noise_shape)[None]
    if mode == "noise":
        noises = torch.cat(interpolate(z0, sample_noise(seed, 1, gen.noise_shape)[None], ts, how))
        return noises, gen.encode_prompts([prompt] * len(ts))
    ca, cb = gen.encode_prompts([prompt]), gen.encode_prompts([prompt_b])
    if not isinstance(ca, torch.Tensor):
        raise BenchError(f"method {gen.name!r} conditions on {type(ca).__name__}, not one embedding tensor; prompt "
                         "interpolation needs a method whose text encoder returns a tensor")
    return z0.repeat(len(ts), *[1] * (z0.ndim - 1)), torch.cat(interpolate(ca, cb, ts, how))


def run(args: argparse.Namespace) -> int:
    from bench import plugins
    from bench.devices import resolve_device, resolve_dtype
    from bench.locking import lock_directory

    seeds = _check(args)
    out = Path(args.out or f"interpolations/{args.method}-{args.mode}")
    check_out(out, args.overwrite)
    gen = plugins.current().methods.get(args.method).build(**parse_kv(args.method_args))
    device = resolve_device(args.device)
    gen.load(device, resolve_dtype(args.dtype))
    with lock_directory(out, "bench interpolate"):
        check_out(out, args.overwrite)
        _clear(out)
        return _write(args, gen, device, seeds, out)


def _write(args: argparse.Namespace, gen: Any, device: Any, seeds: list[int], out: Path) -> int:
    import numpy as np
    import torch

    from bench.devices import hardware_summary
    from bench.images import encode_png, to_uint8
    from bench.interp import PARALLEL_TOL, steps
    from bench.interp_grid import draw_grid
    from bench.run_dir import atomic_write_bytes, atomic_write_json

    ts = steps(args.steps)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, files = [], []
    with torch.no_grad():
        for seed in seeds:
            noises, cond = inputs(gen, args.mode, seed, args.prompt, args.prompt_b, ts, args.interp)
            images = to_uint8(gen.decode(gen.denoise(noises.to(gen.device, gen.dtype), cond)))
            for k, image in enumerate(images):
                name = f"images/seed-{seed}-step-{k}.png"
                atomic_write_bytes(out / name, encode_png(image))
                files.append(name)
            rows.append(images)
    noise_rule = ("noise A of seed s = sample_noise(s, 0), noise B = sample_noise(s, 1) (bench.sample_noise: the noise "
                  "of samples 0 and 1 of a run with --seed s)" if args.mode == "noise" else
                  "one noise per seed s: sample_noise(s, 0); the text encoder outputs of prompt and prompt_b are "
                  "interpolated")
    described = gen.describe()
    record = {"kind": "interpolate", "mode": args.mode, "interp": args.interp, "method": args.method,
              "method_args": gen.args, "generator": described, "weights": described.get("weights", "unknown"),
              "prompt": args.prompt, "prompt_b": args.prompt_b, "seeds": seeds, "steps": args.steps, "t": ts,
              "noise": noise_rule,
              "slerp": f"per sample, flattened, float32; norm interpolated linearly; lerp when |cos| > 1 - "
                       f"{PARALLEL_TOL:g} or a vector is zero", "dtype": args.dtype, "images": files,
              "hardware": hardware_summary(device)}
    canvas, origin = draw_grid(rows, record, GAP)
    atomic_write_bytes(out / "grid.png", encode_png(np.asarray(canvas)))
    record["grid"] = {"file": "grid.png", "rows": "seeds", "columns": "steps", "cell": list(rows[0].shape[1:3]),
                      "gap": GAP, "origin": list(origin)}
    atomic_write_json(out / RECORD_FILE, record)
    print(f"interpolate: {len(seeds)} x {args.steps} images ({args.mode}, {args.interp}) in {out}; grid: "
          f"{out / 'grid.png'}")
    print(json.dumps({"grid": str(out / "grid.png"), "record": str(out / RECORD_FILE)}))
    return 0


InterpolateCommand = function_command(
    "images along a slerp between two noises or two prompts (paper Figs. 13 and 14)",
    add_arguments, run,
)
