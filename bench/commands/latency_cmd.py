"""``bench latency``: per-stage inference latency and peak memory under the paper's protocol (section 7.5).

One inference is text encoding + denoiser forward(s) + VAE decode. Defaults follow the paper: fp16 (on CUDA),
batch 1, 5 warm-up inferences, then 50 timed inferences repeated 10 times. The record is printed (``--json``)
and written to ``results/perf/latency-<method>-<device>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.commands.base import function_command
from bench.devices import DTYPES, slug
from bench.errors import BenchError
from bench.options import parse_kv

DEFAULT_PROMPT = "A photo of a cat reading a book in a sunlit library"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, help="generator name (see `bench list methods`)")
    p.add_argument("--method-args", default="", metavar="K=V,...", help="options of the method, e.g. weights=random")
    p.add_argument("--batch-size", type=int, default=1, help="images per inference (default: 1)")
    p.add_argument("--warmup", type=int, default=5, help="untimed inferences first (default: 5)")
    p.add_argument("--iters", type=int, default=50, help="timed inferences per repeat (default: 50)")
    p.add_argument("--repeats", type=int, default=10, help="repeats of the timed inferences (default: 10)")
    p.add_argument("--height", type=int, default=None, help="image height in pixels (default: the method's)")
    p.add_argument("--width", type=int, default=None, help="image width in pixels (default: the method's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--dtype", default=None, choices=list(DTYPES),
                   help="precision (default: fp16 on CUDA as in the paper, fp32 on the CPU)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt used for every inference")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", default=None, help="JSON file to write (default: results/perf/latency-<method>-<device>.json; an "
                   "existing one only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing latency record at the output path")
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")


def _check(args: argparse.Namespace) -> None:
    for flag in ("batch_size", "iters", "repeats"):
        if getattr(args, flag) < 1:
            raise BenchError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        raise BenchError(f"--warmup must be 0 or more, got {args.warmup}")
    for flag in ("height", "width"):
        value = getattr(args, flag)
        if value is not None and (value < 8 or value % 8):
            raise BenchError(f"--{flag} {value}: give a positive multiple of 8 (e.g. 512)")


def device_name(device: Any) -> str:
    """The GPU's marketing name on CUDA, else the CPU model (or architecture)."""
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def noise_for(generator: Any, batch: int, height: int | None, width: int | None, seed: int) -> Any:
    """Per-sample noise (bench.sample_noise) shaped for the requested image size."""
    from bench.sample_noise import batch_noise

    channels, lat_h, lat_w = generator.noise_shape
    img_h, img_w = generator.image_size
    factor = img_h // lat_h
    if height or width:
        h, w = height or img_h, width or img_w
        if h % factor or w % factor:
            raise BenchError(f"--height/--width must be multiples of {factor} for method {generator.name!r}")
        lat_h, lat_w = h // factor, w // factor
    return batch_noise(seed, range(batch), (channels, lat_h, lat_w), device=generator.device, dtype=generator.dtype)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the generator, time it and return the JSON record."""
    _check(args)
    from bench import plugins
    from bench.devices import hardware_summary, resolve_device, resolve_dtype
    from bench.provenance import package_versions

    entry = plugins.current().methods.get(args.method)
    generator = entry.build(**parse_kv(args.method_args))
    device = resolve_device(args.device)
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    dtype = resolve_dtype(dtype_name)

    import torch

    from bench.timing import measure_latency

    generator.load(device, dtype)
    noise = noise_for(generator, args.batch_size, args.height, args.width, args.seed)
    prompts = [args.prompt] * args.batch_size
    with torch.inference_mode():
        timing = measure_latency(generator, noise, prompts, args.warmup, args.iters, args.repeats)
    described = generator.describe()
    versions = package_versions(("torch", "diffusers", "transformers", "sbv2-bench"))
    _, lat_h, lat_w = noise.shape[1:]
    factor = generator.image_size[0] // generator.noise_shape[1]
    from bench.results import LATENCY_SCHEMA

    return {
        "schema": LATENCY_SCHEMA,
        "kind": "latency",
        "method": args.method,
        "method_args": generator.args,
        "weights": described.get("weights"),
        "device_name": device_name(device),
        "device": str(device),
        "dtype": dtype_name,
        "protocol": {
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "iters": args.iters,
            "repeats": args.repeats,
            "height": lat_h * factor,
            "width": lat_w * factor,
            "inference": "text encoder + denoiser + decoder",
            "prompt": args.prompt,
            "seed": args.seed,
        },
        "nfe": generator.num_function_evaluations,
        "latency_ms": timing["total_ms"]["mean"],
        "per_image_ms": timing["total_ms"]["mean"] / args.batch_size,
        **timing,
        "torch": versions.get("torch"),
        "diffusers": versions.get("diffusers"),
        "transformers": versions.get("transformers"),
        "bench": versions.get("sbv2-bench"),
        "hardware": hardware_summary(device),
        "generator": described,
    }


def table(record: dict[str, Any]) -> str:
    """A short human-readable summary of a latency record."""
    p = record["protocol"]
    lines = [
        f"{record['method']} on {record['device_name']} ({record['dtype']}, weights {record['weights']}, "
        f"batch {p['batch_size']}, {p['height']}x{p['width']}, {p['warmup']} warm-up + {p['repeats']}x{p['iters']} "
        f"timed, {record['timer']})",
        f"{'stage':<14}{'mean ms':>10}{'median':>10}{'std':>9}{'min':>9}{'max':>9}",
    ]
    rows = [*record["stages_ms"].items(), ("total", record["total_ms"])]
    for name, s in rows:
        lines.append(f"{name:<14}{s['mean']:>10.2f}{s['median']:>10.2f}{s['std']:>9.2f}{s['min']:>9.2f}{s['max']:>9.2f}")
    peak = record.get("peak_memory_mib")
    if peak is not None:
        lines.append(f"peak memory: {peak:.0f} MiB ({record['memory_kind']})")
    return "\n".join(lines)


def output_path(args: argparse.Namespace) -> Path:
    """Where the record goes: ``--out``, else ``results/perf/latency-<method>-<device>.json``."""
    if args.out:
        return Path(args.out)
    from bench.devices import resolve_device

    return Path("results/perf") / f"latency-{slug(args.method)}-{slug(device_name(resolve_device(args.device)))}.json"


def check_output(out: Path, overwrite: bool) -> None:
    """An existing file is replaced only with ``overwrite`` and only when it is a latency record (one line
    otherwise), so published records and unrelated files are never lost."""
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give a JSON file name")
    if not out.exists():
        return
    from bench.results import load_latency

    try:
        load_latency(out)
    except BenchError:
        raise BenchError(f"{out} exists and is not a `bench latency` record, so it is never replaced; choose "
                         "another --out") from None
    if not overwrite:
        raise BenchError(f"{out} already holds a latency record; pass --overwrite to replace it, or --out FILE")


def run(args: argparse.Namespace) -> int:
    from bench.run_dir import atomic_write_bytes

    _check(args)
    out = output_path(args)
    check_output(out, args.overwrite)  # before minutes of timing
    record = measure(args)
    check_output(out, args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, default=str)
    atomic_write_bytes(out, (text + "\n").encode())
    record["written_to"] = str(out)
    print(text if args.json else f"{table(record)}\nwritten to {out}")
    return 0


LatencyCommand = function_command(
    "time one inference stage by stage (paper protocol), with peak memory",
    add_arguments, run,
    description=("Per-stage inference latency and peak memory under the paper's protocol (section "
                 "7.5): fp16 on CUDA, batch 1, 5 warm-up inferences, then 50 timed inferences repeated"
                 " 10 times."),
)
