"""Per-image generation latency at batch size 1, measured on the run's own generator."""

from __future__ import annotations

from bench.metrics.base import Metric, MetricContext, MetricResult
from bench.options import Option


class Latency(Metric):
    """Mean end-to-end latency (text encoder + denoiser + decoder) of one image, in milliseconds."""

    name = "latency"
    keys = ("latency_ms",)
    needs_reference = False
    needs_generator = True
    higher_is_better = {"latency_ms": False}
    bootstrap = False  # a timing of the generator, not a mean over the evaluated samples
    options = {"warmup": Option(5, int, minimum=0), "iters": Option(50, int, minimum=1),
               "repeats": Option(1, int, minimum=1)}

    def compute(self, ctx: MetricContext) -> MetricResult:
        from bench.sample_noise import batch_noise
        from bench.timing import measure_latency

        gen = ctx.generator
        noise = batch_noise(0, [0], gen.noise_shape, device=gen.device, dtype=gen.dtype)
        record = measure_latency(gen, noise, ctx.prompts[:1], self.args["warmup"], self.args["iters"],
                                 self.args["repeats"])
        info = {"comparable": False, "note": "measured inside the run; use `bench latency` for the paper protocol",
                "device": str(gen.device), "dtype": str(gen.dtype), **record}
        return MetricResult({"latency_ms": record["total_ms"]["mean"]}, info)
