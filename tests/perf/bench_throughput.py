"""Throughput and latency benchmark of the one-step path (SD-Turbo architecture, random weights).

Measures, in one process:

* the matrix-multiply rate of the device (bf16 8192^3 products on CUDA; fp32 on the CPU);
* FLOPs per image, per stage, counted with ``torch.utils.flop_counter`` (full VAE and TAESD decoders);
* batch-1 end-to-end latency (text encoder + UNet + decoder) under the paper's protocol, per variant;
* images per second at batch sizes 1, 8, 32 and 64, and the fraction of the hardware floor:
  FLOPs/image x images/s / matmul rate.

Variants: eager (SDPA attention), channels_last, CUDA graphs per stage, torch.compile, and the chunked VAE
decode, each with the full VAE decoder and TAESD. On a machine without CUDA it runs the toy-size networks so the
benchmark keeps working everywhere (the numbers then mean nothing). Run: ``python tests/perf/bench_throughput.py``
(``--help`` for options). It prints a table and writes JSON to ``--out`` (default: results/perf/).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROMPT = "A photo of a cat reading a book in a sunlit library"
TARGET_LATENCY_MS = 25.0
TARGET_FRACTION = 0.5

#: name -> method options (on top of weights=random / size=...); "vae" is added per decoder.
VARIANTS: dict[str, dict[str, Any]] = {
    "graphs": {"channels_last": True, "cuda_graphs": True},
    "eager": {},
    "channels_last": {"channels_last": True},
    "compile+graphs": {"channels_last": True, "cuda_graphs": True, "compile": True},
    "compile": {"compile": True},
    "compile+graphs-nchw": {"cuda_graphs": True, "compile": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--size", default="auto", choices=("auto", "full", "tiny"), help="auto: full on CUDA, else tiny")
    p.add_argument("--dtype", default=None, choices=("bf16", "fp16", "fp32"), help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--batches", default=None, help="throughput batch sizes (default: 1,8,32,64; 1,8 on the CPU)")
    p.add_argument("--compile-batches", default="1,64", help="batch sizes of the compiled variant (each shape "
                   "compiles)")
    p.add_argument("--variants", default=None, help=f"comma list of {', '.join(VARIANTS)} (default: all but "
                   "compile on the CPU)")
    p.add_argument("--decoders", default="full,tiny", help="VAE decoders to run: full, tiny or both")
    p.add_argument("--decode-chunk", type=int, default=0, help="decode at most this many latents at once (0: all)")
    p.add_argument("--skip-latency", action="store_true", help="measure throughput only")
    p.add_argument("--flops-json", default=None, help="reuse flops_per_image from an earlier run's JSON")
    p.add_argument("--latency-warmup", type=int, default=5)
    p.add_argument("--latency-iters", type=int, default=50)
    p.add_argument("--latency-repeats", type=int, default=10)
    p.add_argument("--throughput-seconds", type=float, default=1.5, help="approximate timed seconds per point")
    p.add_argument("--budget-s", type=float, default=480.0, help="skip remaining variants after this many seconds")
    p.add_argument("--out", default=None, help="output directory (default: results/perf, or $BENCH_PERF_OUT when set)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- measurements -------------------------------------------------------------------------------------------
def matmul_rate(device: Any, dtype: Any) -> dict[str, Any]:
    """Dense matrix-multiply TFLOP/s on random data (median of several timed products)."""
    import torch

    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10 if device.type == "cuda" else 3):
        times.append(timed(device, lambda: a @ b))
    best = statistics.median(times)
    return {"n": n, "dtype": str(dtype), "median_s": best, "tflops": 2 * n**3 / best / 1e12}


def timed(device: Any, fn: Any) -> float:
    """Seconds one call of ``fn`` takes (CUDA events on the GPU)."""
    import torch

    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def count_flops(gen: Any, noise: Any) -> dict[str, float]:
    """FLOPs of one batch-1 inference per stage (matrix products, convolutions and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, float] = {}
    counter = FlopCounterMode(display=False)
    with counter:
        cond = gen.encode_prompts([PROMPT])
    out["text_encoder"] = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        latents = gen.denoise(noise, cond)
    out["denoiser"] = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        gen.decode(latents)
    out["decoder"] = counter.get_total_flops()
    out["total"] = sum(out.values())
    return out


def throughput(gen: Any, batch: int, seconds: float, min_iters: int = 3) -> dict[str, Any]:
    """Images per second of full inferences (encode + denoise + decode) at ``batch``."""
    import torch

    from bench.sample_noise import batch_noise

    device = gen.device
    noise = batch_noise(0, range(batch), gen.noise_shape, device=device, dtype=gen.dtype)
    prompts = [PROMPT] * batch
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first = timed(device, lambda: gen.generate(noise, prompts))  # includes capture / compilation
    probe = timed(device, lambda: gen.generate(noise, prompts))
    iters = max(min_iters, min(200, math.ceil(seconds / max(probe, 1e-6))))

    def loop() -> None:
        for _ in range(iters):
            gen.generate(noise, prompts)

    total = timed(device, loop)
    record = {
        "batch": batch,
        "iters": iters,
        "ms_per_batch": total / iters * 1e3,
        "images_per_s": batch * iters / total,
        "first_call_s": first,
    }
    if device.type == "cuda":
        record["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def build(size: str, decoder: str, options: dict[str, Any], device: Any, dtype: Any, chunk: int) -> Any:
    from methods.sd_turbo import SDTurboGenerator

    args: dict[str, Any] = {"vae": decoder, **options}
    if size == "tiny":
        args["size"] = "tiny"
    else:
        args["weights"] = "random"
    if chunk:
        args["decode_chunk"] = chunk
    if device.type != "cuda":
        args.pop("cuda_graphs", None)
    gen = SDTurboGenerator(**args)
    gen.load(device, dtype)
    return gen


def free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    from bench.devices import resolve_device
    from bench.provenance import package_versions
    from bench.timing import measure_latency

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    size = args.size if args.size != "auto" else ("full" if cuda else "tiny")
    dtype_name = args.dtype or ("bf16" if cuda else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    batches = [int(b) for b in (args.batches or ("1,8,32,64" if cuda else "1,8")).split(",") if b.strip()]
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    compile_batches = [int(b) for b in args.compile_batches.split(",") if b.strip()]
    default_variants = list(VARIANTS) if cuda else ["eager", "channels_last"]
    out_dir = Path(args.out or os.environ.get("BENCH_PERF_OUT") or ROOT / "results" / "perf")
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else default_variants
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if not cuda:
        # the toy sizes need only a short run
        args.latency_iters = min(args.latency_iters, 3)
        args.latency_repeats = min(args.latency_repeats, 1)
        args.latency_warmup = min(args.latency_warmup, 1)
        args.throughput_seconds = min(args.throughput_seconds, 0.2)

    versions = package_versions(("torch", "diffusers", "transformers"))
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    log(f"device {name}, size {size}, dtype {dtype_name}, torch {versions['torch']}, diffusers {versions['diffusers']}")
    mm = matmul_rate(device, dtype if cuda else torch.float32)
    log(f"matmul {mm['tflops']:.3g} TFLOP/s ({mm['n']}^3 {mm['dtype']})")

    from bench.sample_noise import batch_noise

    results: dict[str, Any] = {
        "kind": "throughput",
        "device_name": name,
        "weights": "random",
        "note": "seeded random weights in the full SD 2.1-base / SD-Turbo architecture; images are meaningless, "
        "the compute is the real model's" if size == "full" else "toy-size networks: a smoke run, not a benchmark",
        "size": size,
        "dtype": dtype_name,
        "resolution": 512 if size == "full" else 64,
        "versions": versions,
        "matmul": mm,
        "flops_per_image": {},
        "latency": {},
        "throughput": {},
        "skipped": [],
        "graph_failures": {},
    }

    if args.flops_json:
        results["flops_per_image"] = json.loads(Path(args.flops_json).read_text())["flops_per_image"]
        results["flops_from"] = args.flops_json
    for decoder in [d for d in decoders if d not in results["flops_per_image"]]:
        gen = build(size, decoder, {}, device, dtype, 0)
        noise = batch_noise(0, [0], gen.noise_shape, device=device, dtype=dtype)
        flops = count_flops(gen, noise)
        results["flops_per_image"][decoder] = flops
        log(f"FLOPs/image ({decoder} VAE): " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in flops.items()))
        del gen
        free(device)

    for variant in variants:
        for decoder in decoders:
            key = f"{variant}/{decoder}"
            elapsed = time.perf_counter() - started
            if elapsed > args.budget_s:
                results["skipped"].append(f"{key} (time budget: {elapsed:.0f} s used)")
                log(f"skip {key}: budget")
                continue
            try:
                t0 = time.perf_counter()
                gen = build(size, decoder, VARIANTS[variant], device, dtype, args.decode_chunk)
                noise = batch_noise(0, [0], gen.noise_shape, device=device, dtype=dtype)
                if args.skip_latency:
                    lat = None
                else:
                    lat = measure_latency(
                        gen, noise, [PROMPT], args.latency_warmup, args.latency_iters, args.latency_repeats
                    )
                    results["latency"][key] = lat
            except Exception as exc:  # noqa: BLE001 - record and go on with the next variant
                results["skipped"].append(f"{key} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
                log(f"{key} failed: {type(exc).__name__}: {exc}")
                gen = None
                free(device)
                continue
            try:
                if lat is not None:
                    stages = ", ".join(f"{k} {v['mean']:.2f}" for k, v in lat["stages_ms"].items())
                    log(f"{key}: batch-1 latency mean {lat['total_ms']['mean']:.2f} ms, median "
                        f"{lat['total_ms']['median']:.2f} ms ({stages}), peak "
                        f"{lat.get('peak_memory_mib') or 0:.0f} MiB, setup+latency {time.perf_counter() - t0:.0f} s")
                points = {}
                flops = results["flops_per_image"][decoder]["total"]
                for batch in compile_batches if "compile" in variant else batches:
                    try:
                        point = throughput(gen, batch, args.throughput_seconds, 3 if cuda else 1)
                    except torch.cuda.OutOfMemoryError:
                        free(device)
                        points[str(batch)] = {"batch": batch, "error": "out of memory"}
                        log(f"{key} batch {batch}: out of memory")
                        continue
                    point["tflops"] = flops * point["images_per_s"] / 1e12
                    point["fraction_of_floor"] = point["tflops"] / mm["tflops"]
                    points[str(batch)] = point
                    log(f"{key} batch {batch}: {point['images_per_s']:.1f} img/s, "
                        f"{point['fraction_of_floor'] * 100:.1f}% of floor")
                results["throughput"][key] = points
                failures = getattr(gen, "graph_failures", dict)()
                if failures:
                    results["graph_failures"][key] = failures
                    log(f"{key}: CUDA graph capture fell back to eager for {failures}")
            except Exception as exc:  # noqa: BLE001 - record and go on with the next variant
                results["skipped"].append(f"{key} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
                log(f"{key} failed: {type(exc).__name__}: {exc}")
            finally:
                gen = None
                free(device)
            out = write(results, mm, out_dir, started)  # after every variant, so a cut-off run keeps its numbers

    out = write(results, mm, out_dir, started)
    print_table(results)
    log(f"written to {out}")
    return 0


def write(results: dict[str, Any], mm: dict[str, Any], out_dir: Path, started: float) -> Path:
    """Summarise and write the JSON record; returns its path."""
    summarize(results, mm)
    dev_slug = "".join(c if c.isalnum() else "-" for c in results["device_name"].lower()).strip("-")
    out = out_dir / f"throughput-{dev_slug}.json"
    results["wall_s"] = time.perf_counter() - started
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return out


def summarize(results: dict[str, Any], mm: dict[str, Any]) -> None:
    """Best latency and throughput per decoder, the floor, and whether the targets are met."""
    summary: dict[str, Any] = {}
    for decoder, flops in results["flops_per_image"].items():
        lats = {k: v["total_ms"]["mean"] for k, v in results["latency"].items() if k.endswith(f"/{decoder}")}
        points = [
            (k, p) for k, pts in results["throughput"].items() if k.endswith(f"/{decoder}")
            for p in pts.values() if "images_per_s" in p
        ]
        best_lat = min(lats.items(), key=lambda kv: kv[1]) if lats else None
        best_tp = max(points, key=lambda kp: kp[1]["images_per_s"]) if points else None
        floor = mm["tflops"] * 1e12 / flops["total"]
        summary[decoder] = {
            "gflops_per_image": flops["total"] / 1e9,
            "floor_images_per_s": floor,
            "best_latency_ms": best_lat[1] if best_lat else None,
            "best_latency_variant": best_lat[0] if best_lat else None,
            "best_images_per_s": best_tp[1]["images_per_s"] if best_tp else None,
            "best_throughput_variant": f"{best_tp[0]} batch {best_tp[1]['batch']}" if best_tp else None,
            "best_fraction_of_floor": best_tp[1]["fraction_of_floor"] if best_tp else None,
        }
    results["summary"] = summary
    full = summary.get("full", {})
    results["targets"] = {
        "latency_ms_at_most": TARGET_LATENCY_MS,
        "fraction_of_floor_at_least": TARGET_FRACTION,
        "latency_met": full.get("best_latency_ms") is not None and full["best_latency_ms"] <= TARGET_LATENCY_MS,
        "fraction_met": full.get("best_fraction_of_floor") is not None
        and full["best_fraction_of_floor"] >= TARGET_FRACTION,
        "applies_to": "full-size networks, full VAE decoder, on an H100",
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['device_name']} | {results['size']} | {results['dtype']} | weights random | matmul "
          f"{results['matmul']['tflops']:.3g} TFLOP/s")
    batches = sorted({int(b) for pts in results["throughput"].values() for b in pts})
    head = f"{'variant/decoder':<24}{'lat ms':>8}" + "".join(f"{'b' + str(b) + ' img/s':>12}" for b in batches)
    print(head + f"{'best %floor':>12}")
    for key, pts in results["throughput"].items():
        lat = results["latency"].get(key, {}).get("total_ms", {}).get("mean")
        row = f"{key:<24}{lat if lat is not None else float('nan'):>8.2f}"
        fracs = []
        for b in batches:
            p = pts.get(str(b), {})
            row += f"{p['images_per_s']:>12.1f}" if "images_per_s" in p else f"{'oom':>12}"
            if "fraction_of_floor" in p:
                fracs.append(p["fraction_of_floor"])
        print(row + f"{max(fracs) * 100 if fracs else float('nan'):>11.1f}%")
    for decoder, s in results["summary"].items():
        print(f"{decoder} VAE: {s['gflops_per_image']:.4g} GFLOP/image, floor {s['floor_images_per_s']:.0f} img/s; "
              f"best latency {s['best_latency_ms'] or float('nan'):.2f} ms ({s['best_latency_variant']}); best "
              f"{s['best_images_per_s'] or float('nan'):.1f} img/s = {(s['best_fraction_of_floor'] or 0) * 100:.1f}% "
              f"of floor ({s['best_throughput_variant']})")
    t = results["targets"]
    print(f"targets: latency <= {t['latency_ms_at_most']} ms: {t['latency_met']}; "
          f">= {t['fraction_of_floor_at_least'] * 100:.0f}% of floor: {t['fraction_met']}")
    for item in results["skipped"]:
        print(f"skipped: {item}")


if __name__ == "__main__":
    raise SystemExit(main())
