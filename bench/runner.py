"""A run: resolve method, suite and metrics, generate what is missing, score, write results.json."""

from __future__ import annotations

import datetime as _dt
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import plugins
from bench.errors import BenchError
from bench.store import RunStore

RESULTS_SCHEMA = "sbv2-bench/results/v1"


@dataclass
class RunRequest:
    """Everything ``bench run`` takes; see ``python -m bench run --help``."""

    method: str
    suite: str
    method_args: dict[str, Any] = field(default_factory=dict)
    suite_args: dict[str, Any] = field(default_factory=dict)
    metric_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "runs"
    run_name: str | None = None
    limit: int | None = None
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    dtype: str = "fp32"
    metrics: Sequence[str] | None = None
    overwrite: bool = False

    def run_dir(self) -> Path:
        name = self.run_name or f"{self.suite}-{self.method}"
        return Path(self.out) / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def image_flag(image: np.ndarray) -> str | None:
    """``"nan"``, ``"black"`` or ``"constant"`` for a broken float image (3, H, W) in [0, 1], else None."""
    if not np.isfinite(image).all():
        return "nan"
    if image.max() <= 1.0 / 255.0:
        return "black"
    if float(np.ptp(image)) == 0.0:
        return "constant"
    return None


def encode_image(image_uint8: np.ndarray, fmt: str) -> bytes:
    """uint8 (H, W, 3) -> PNG or JPEG (quality 95) bytes."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image_uint8).save(buf, format="PNG")
    else:
        Image.fromarray(image_uint8).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


class Run:
    """One evaluation run; :meth:`execute` does the work and returns the results dictionary."""

    def __init__(self, request: RunRequest) -> None:
        self.req = request
        if request.batch_size < 1:
            raise BenchError(f"--batch-size must be at least 1, got {request.batch_size}")
        if request.limit is not None and request.limit < 1:
            raise BenchError(f"--limit must be at least 1, got {request.limit}")
        reg = plugins.current()
        # Resolve every name first, so a typo fails before anything heavy happens.
        self.method_entry = reg.methods.get(request.method)
        self.suite_entry = reg.suites.get(request.suite)
        self.suite = self.suite_entry.build(**request.suite_args)
        names = list(request.metrics) if request.metrics is not None else list(self.suite.default_metrics)
        metric_entries = [reg.metrics.get(n) for n in names]
        unknown_args = set(request.metric_args) - set(names)
        if unknown_args:
            raise BenchError(f"--metric-args names metric {sorted(unknown_args)[0]!r}, which this run does not use "
                             f"(metrics: {', '.join(names)})")
        self.metrics = []
        for entry in metric_entries:
            opts = {**self.suite.metric_options().get(entry.name, {}), **request.metric_args.get(entry.name, {})}
            self.metrics.append(entry.build(**opts))
        self.generator = self.method_entry.build(**request.method_args)
        items = self.suite.prompts()
        if not items:
            raise BenchError(f"suite {request.suite!r} has no prompts")
        if request.limit is not None:
            if request.limit > len(items):
                raise BenchError(f"--limit {request.limit} is larger than the {len(items)} prompts of suite "
                                 f"{request.suite!r}; use at most {len(items)}")
            items = items[: request.limit]
        self.items = items
        self.store = RunStore(request.run_dir())

    def config(self) -> dict[str, Any]:
        from bench.provenance import provenance

        req = self.req
        return {
            "method": req.method,
            "method_args": self.generator.args,
            "suite": req.suite,
            "suite_args": self.suite.args,
            "protocol": self.suite.protocol(),
            "metrics": {m.name: m.args for m in self.metrics},
            "seed": req.seed,
            "noise": "sample i: torch.randn(float32, CPU generator seeded with blake2b('<seed>:<i>')[:8])",
            "dtype": req.dtype,
            "device": req.device,
            "batch_size": req.batch_size,
            "limit": req.limit,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **provenance(),
        }

    def execute(self) -> dict[str, Any]:
        from bench.devices import hardware_summary, resolve_device, resolve_dtype

        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        device, dtype = resolve_device(self.req.device), resolve_dtype(self.req.dtype)
        config = self.config()
        config["hardware"] = hardware_summary(device)
        resumed = self.store.open(config, overwrite=self.req.overwrite)
        done = self.store.verified_manifest()
        todo = [it for it in self.items if it.index not in done]

        t = time.perf_counter()
        self.generator.load(device, dtype)
        config["generator"] = self.generator.describe()
        self.store.open(config)
        timing["load"] = time.perf_counter() - t

        t = time.perf_counter()
        self._generate(todo)
        timing["generation"] = time.perf_counter() - t

        manifest = self.store.read_manifest()
        flags = [manifest[it.index].get("flag") for it in self.items]
        values, info, timing["metrics"] = self._score()
        timing["total"] = time.perf_counter() - t0
        results = self._results(config, values, info, flags, len(todo), resumed, timing)
        self.store.write_results(results)
        return results

    def _generate(self, todo: Sequence[Any]) -> None:
        from tqdm.auto import tqdm

        from bench.metrics.preprocess import to_uint8
        from bench.seeding import batch_noise, sample_seed

        gen = self.generator
        if not todo:
            return
        with tqdm(total=len(todo), desc=f"generate {self.req.method}", unit="img", dynamic_ncols=True) as bar:
            for batch in _chunks(todo, self.req.batch_size):
                idx = [it.index for it in batch]
                noise = batch_noise(self.req.seed, idx, gen.noise_shape, device=gen.device, dtype=gen.dtype)
                images = gen.generate(noise, [it.prompt for it in batch]).float().cpu().numpy()
                as_uint8 = to_uint8(images)
                for it, img, img8 in zip(batch, images, as_uint8, strict=True):
                    row = {"index": it.index, "prompt": it.prompt, "group": it.group, "seed": self.req.seed,
                           "sample_seed": sample_seed(self.req.seed, it.index), "flag": image_flag(img)}
                    data = encode_image(img8, self.suite.image_format)
                    self.store.save_image(self.suite.image_path(it.index), data, row)
                bar.update(len(batch))

    def _score(self) -> tuple[dict[str, float], dict[str, Any], float]:
        from bench.features import FeatureStore

        t = time.perf_counter()
        fs = FeatureStore(self.store, self.suite, [it.index for it in self.items], self.generator.device)
        ctx = _Context(fs, self.items, self.generator)
        values: dict[str, float] = {}
        info: dict[str, Any] = {}
        for metric in self.metrics:
            tm = time.perf_counter()
            result = metric.compute(ctx)
            values.update(result.values)
            info[metric.name] = {**result.info, "comparable": result.comparable,
                                 "seconds": round(time.perf_counter() - tm, 3)}
        return values, info, time.perf_counter() - t

    def _results(self, config: dict[str, Any], values: dict[str, float], info: dict[str, Any],
                 flags: list[str | None], generated: int, resumed: bool, timing: dict[str, float]) -> dict[str, Any]:
        gen_weights = config["generator"].get("weights", "pretrained")
        metric_weights = {i.get("weights", "pretrained") for i in info.values() if "weights" in i}
        all_weights = {gen_weights} | metric_weights
        weights = all_weights.pop() if len(all_weights) == 1 else "mixed"
        reasons = []
        if gen_weights != "pretrained":
            reasons.append(f"generator weights are {gen_weights}")
        random_metrics = [n for n, i in info.items() if i.get("weights") == "random"]
        if random_metrics:
            reasons.append(f"metric networks with random weights: {', '.join(random_metrics)}")
        if not self.suite.comparable:
            reasons.append(f"suite {self.suite.name!r} is not a published protocol")
        if self.req.limit is not None:
            reasons.append(f"--limit {self.req.limit} evaluates a subset")
        counts = {k: sum(1 for f in flags if f == k) for k in ("nan", "black", "constant")}
        return {
            "schema": RESULTS_SCHEMA,
            "run_dir": str(self.store.path),
            "method": self.req.method,
            "suite": self.req.suite,
            "num_samples": len(self.items),
            "metrics": values,
            "metric_info": info,
            "weights": weights,
            "comparable": not reasons,
            "not_comparable_because": reasons,
            "images": {"total": len(flags), "generated_this_run": generated, "resumed": resumed,
                       "flagged": counts, "flagged_total": sum(counts.values())},
            "timing_s": {k: round(v, 3) for k, v in timing.items()},
            "config": config,
        }


@dataclass
class _Context:
    """The :class:`bench.metrics.base.MetricContext` of a run."""

    features: Any
    items: Sequence[Any]
    generator: Any

    @property
    def prompts(self) -> list[str]:
        return [it.prompt for it in self.items]

    @property
    def groups(self) -> list[str] | None:
        groups = [it.group for it in self.items]
        return groups if any(g is not None for g in groups) else None

    @property
    def device(self) -> Any:
        return self.generator.device

    def image_features(self, extractor: dict[str, Any], which: str) -> np.ndarray:
        return self.features.image_features(extractor, which)

    def text_features(self, extractor: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        return self.features.text_features(extractor, texts)
