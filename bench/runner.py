"""A run: one generator on one suite with its metrics, in one run directory.

What :meth:`Run.execute` does, in order:

1. The main process checks that the run directory holds nothing or a run with the same identity (else it
   refuses, unless ``--overwrite``) and writes config.json; every process waits for that verdict.
2. The generator is loaded (once per session). The suite's samples are cut into chunks of ``--batch-size``
   consecutive samples; chunk ``c`` belongs to rank ``c % world_size`` (see :mod:`bench.distributed`). Each
   rank checks its chunks' finished images against the sha256 in the manifest and journals.
3. Each rank generates its chunks that miss anything, in order, each chunk as one batch (so a chunk's images
   never depend on what else ran), and hands them to a :class:`~bench.sink.Sink`, which writes the images,
   streams them through the metrics' feature networks and journals the chunk.
4. All ranks report; the main process folds the journals into manifest.jsonl, computes every metric once
   (streamed features are read from their files; anything missing is computed from the saved images) and
   writes results.json (:mod:`bench.results`) with a time budget of the stages.

A run never joins a process group itself: the command (or the caller of :class:`~bench.session.Session`)
does, and hands the session its :class:`~bench.distributed.Distributed`.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.bootstrap import Recording, attach_interval, check_groups
from bench.errors import BenchError
from bench.external import ExternalImages, read_chunks
from bench.feature_files import GeneratedFeatures
from bench.generator import Generator
from bench.images import to_uint8_and_flags
from bench.metrics.base import Metric, check_sample_count, result_key
from bench.results import Results, comparability, flag_summary, ordered_timings, weights_verdict
from bench.run_dir import RunStore
from bench.run_features import FeatureStore, Network, RunContext, chunks, default_workers
from bench.run_request import RunRequest, check_batch_against_limit, check_run_sizes
from bench.sink import Sink
from bench.suites.base import Suite, cut_long_prompts
from bench.timing import StageTimer, Timings
from bench.trained_on import flag as flag_trained_on

if TYPE_CHECKING:
    from bench.session import Session


#: Longest prompt kept whole; longer ones are cut (the CLIP tokenizers see at most 77 tokens anyway) and counted.
MAX_PROMPT_CHARS = 1000


class Run:
    """One evaluation run; :meth:`execute` does the work and returns the :class:`~bench.results.Results`
    (None on ranks other than the main one).

    ``generator`` and ``suite`` may be objects already built (the Python API); otherwise they are built from
    the request's names and options. Everything expensive and shareable comes from ``session``.
    """

    def __init__(self, request: RunRequest, session: Session, generator: Generator | None = None,
                 suite: Suite | None = None) -> None:
        self.req = request
        self.session = session
        self.dist = session.dist
        check_run_sizes(request.batch_size, request.limit, request.workers)
        check_groups(request.bootstrap)
        reg = plugins.current()
        # Resolve every name first, so a typo fails before anything heavy happens.
        if generator is None:
            reg.methods.get(request.method)
        self.suite = suite if suite is not None else reg.suites.get(request.suite).build(**request.suite_args)
        self.metrics = self._build_metrics(reg)
        # Every feature network is resolved now: an unknown one fails before any image is generated.
        self.networks = self._networks()
        items = self.suite.prompts()
        if not items:
            raise BenchError(f"suite {request.suite!r} has no prompts")
        items, self.prompts_cut = cut_long_prompts(items, MAX_PROMPT_CHARS)
        self.all_items = items
        if request.limit is not None:
            if request.limit > len(items):
                raise BenchError(f"--limit {request.limit} is larger than the {len(items)} prompts of suite "
                                 f"{request.suite!r}; use at most {len(items)}")
            items = items[: request.limit]
            check_batch_against_limit(request.batch_size, len(items), len(self.all_items))
        self.items = items
        for metric in self.metrics:  # too few samples: refused now, not after generation
            check_sample_count(metric.name, "generated", len(items), metric.min_samples())
        self.suite.check_data(any(m.needs_reference for m in self.metrics))
        # Loaded last: a bad option, prompt file or data root fails without waiting for the weights.
        self.generator = generator if generator is not None else session.generator(request.method,
                                                                                   request.method_args)
        if isinstance(self.generator, ExternalImages):  # only the samples that have an image; no latency
            self.metrics, self.items = self.generator.plan_run(self.metrics, self.items, self.all_items,
                                                               request.metrics is not None, request.run_dir())
        self.store = RunStore(request.run_dir())

    def _build_metrics(self, reg: Any) -> list[Metric]:
        req = self.req
        names = list(req.metrics) if req.metrics is not None else list(self.suite.default_metrics)
        entries = [reg.metrics.get(n) for n in names]
        unknown_args = set(req.metric_args) - set(names)
        if unknown_args:
            raise BenchError(f"--metric-args names metric {sorted(unknown_args)[0]!r}, which this run does not use "
                             f"(metrics: {', '.join(names)})")
        metrics = []
        for entry in entries:
            opts = {**self.suite.metric_options().get(entry.name, {}), **req.metric_args.get(entry.name, {})}
            metric = entry.build(**opts)
            if not isinstance(metric, Metric):
                raise BenchError(f"metric {entry.name!r} of plug-in {entry.plugin!r} is not a bench Metric; fix or "
                                 "uninstall that plug-in")
            metric.name = entry.name  # the registered name keys its results
            metrics.append(metric)
        return metrics

    def _networks(self) -> list[Network]:
        out: dict[str, Network] = {}
        transform = self.suite.preprocess()
        for metric in self.metrics:
            for spec in metric.feature_specs():
                net = Network(spec, self.session.extractor(spec), transform)
                out.setdefault(net.key, net)
        return list(out.values())

    def config(self) -> dict[str, Any]:
        from bench.provenance import provenance

        req = self.req
        return {
            "method": req.method,
            "method_args": self.generator.args,
            "suite": req.suite,
            "suite_args": self.suite.identity_args(),
            "data": self.suite.location_args(),
            "protocol": self.suite.protocol(),
            "metrics": {m.name: m.args for m in self.metrics},
            "seed": req.seed,
            "noise": "sample i: torch.randn(float32, CPU generator seeded with blake2b('<seed>:<i>')[:8])",
            "chunking": "chunks of batch_size consecutive samples; chunk c generated as one batch on rank "
                        "c % world_size; a shorter last chunk is padded to batch_size when the generator runs "
                        "at a fixed batch shape (compile, CUDA graphs)",
            "dtype": req.dtype,
            "device": req.device,
            "batch_size": req.batch_size,
            "limit": req.limit,
            "save_images": req.save_images,
            "world_size": self.dist.world_size,
            "inputs": self.inputs(),
            "prompts_cut": {"count": self.prompts_cut, "max_chars": MAX_PROMPT_CHARS},
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **provenance(),
        }

    def inputs(self) -> dict[str, Any]:
        """Content fingerprints of what changes the images: the prompt list and every local file or folder the
        generator reads (part of the run's identity, so replacing a student under the same path is noticed),
        and which generator option names which of them (so a student moved elsewhere is the same input)."""
        from bench.fingerprint import path_fingerprint
        from bench.suites.prompt_lists import prompts_digest

        own = [self.store.path]  # a run directory inside a weights folder is not part of it
        files = {str(p): path_fingerprint(p, exclude=own) for p in self.generator.input_paths()}
        args = {}  # option -> content of the input it names: a renamed folder with the same content is the same run
        for key, value in self.generator.args.items():
            if isinstance(value, str) and value:
                resolved = str(Path(value).expanduser().resolve())
                if resolved in files:
                    args[key] = files[resolved]["sha256"]
        return {"prompts_sha256": prompts_digest([it.prompt for it in self.all_items]), "files": files,
                "args": args}

    # -- the run ----------------------------------------------------------------------------------
    def execute(self) -> Results | None:
        """Run under an exclusive lock of the run directory (held by the main process; released by the kernel if
        it dies), so a second run into the same directory stops at once with one line."""
        from bench.locking import lock_directory

        if not self.dist.is_main:
            return self._execute()
        self._check_target()
        with lock_directory(self.store.path, "bench run"):
            return self._execute()

    def _check_target(self) -> None:
        """Refuse (before anything is written) a run directory that is, or holds, a file or folder the generator
        or the suite reads (weights, a prompt file, a data root), or that holds something other than a bench run."""
        target = self.store.path.resolve()
        data = [Path(v).expanduser().resolve() for v in self.suite.location_args().values()
                if isinstance(v, str) and v and Path(v).expanduser().exists()]
        for path in [*self.generator.input_paths(), *data]:
            if path == target or target in path.parents:
                raise BenchError(f"run directory {self.store.path} is (or holds) {path}, an input of this run; "
                                 "choose another --out or --run-name")
        self.store.check_kind()

    def _execute(self) -> Results | None:
        from bench.devices import hardware_summary

        timings = Timings()
        t0 = time.perf_counter()
        dist = self.dist
        device, dtype = self.session.device, self.session.dtype(self.req.dtype)
        with timings.time("orchestration/open"):
            config = self.config()
            config["hardware"] = hardware_summary(device)
            error = None
            if dist.is_main:
                try:
                    self.store.check(config, overwrite=self.req.overwrite)
                except BenchError as exc:
                    error = str(exc)
            dist.agree(error)

        # The directory becomes this run's only once the generator has loaded: a run that fails to load (no
        # weights, a typo in a path) leaves nothing that would refuse the corrected command.
        with timings.time("load"):
            self.session.load(self.generator, dtype)
        config["generator"] = self.generator.describe()
        config["prompts_truncated"] = self._truncated()
        with timings.time("orchestration/open"):
            error, resumed = None, False
            if dist.is_main:
                try:
                    resumed = self.store.open(config, overwrite=self.req.overwrite)
                except BenchError as exc:
                    error = str(exc)
            resumed = bool(dist.agree(error, resumed)[0])

        # Chunks are cut from the suite's full prompt list, so a chunk that --limit cuts short is still generated
        # as its full batch (only the wanted part is kept): a --limit run is an exact prefix of the full run.
        wanted = {it.index for it in self.items}
        mine = [(full, part) for k, full in enumerate(chunks(self.all_items, self.req.batch_size))
                if k % dist.world_size == dist.rank and (part := [it for it in full if it.index in wanted])]
        workers = self.req.workers or default_workers()
        with timings.time("orchestration/verify"):
            done = self._verified([it for _, part in mine for it in part], workers)
        todo = [(full, part) for full, part in mine if any(it.index not in done for it in part)]
        if dist.is_main and done and todo:
            print(f"bench: resuming: {len(done)} finished image(s) verified, "
                  f"{sum(1 for _, p in todo for it in p if it.index not in done)} to generate", file=sys.stderr)

        sink = Sink(self.store, self.suite, self.req.seed, dist.rank, device, timings, workers, self.networks,
                    self.req.save_images, show_progress=dist.is_main)
        error = None
        try:
            if todo:
                sink.start(sum(len(part) for _, part in todo))
                self._generate(todo, done, sink, timings)
            sink.close()
        except BenchError as exc:
            sink.abort()
            error = str(exc)
        except BaseException:
            sink.abort()
            raise
        with timings.time("orchestration/sync"):
            reports = dist.agree(error, {"generated": sink.generated, "timings": timings.as_dict()})
        if not dist.is_main:
            return None
        for report in reports[1:]:  # the slowest rank sets the generation-phase figures
            for key, value in report["timings"].items():
                if value > timings.get(key):
                    timings.add(key, value - timings.get(key))
        generated = sum(r["generated"] for r in reports)

        with timings.time("orchestration/compact"):
            rows = self.store.compact()
        flags = [rows[it.index].get("flag") for it in self.items]
        values, info, reference = self._score(rows, timings, workers)
        flag_trained_on(info, self.metrics, config["generator"])
        results = self._results(config, values, info, reference, flags, generated, resumed, timings,
                                time.perf_counter() - t0)
        self.store.write_results(results.to_dict())
        return results

    def _truncated(self) -> dict[str, int] | None:
        """Prompts the generator's text encoder cuts: said once (main process) and recorded in config.json."""
        got = self.generator.truncated_prompts([it.prompt for it in self.items])
        if got is None:
            return None
        count, limit = got
        if count and self.dist.is_main:
            print(f"bench: warning: {count} of {len(self.items)} prompts are longer than the text encoder's {limit} "
                  "tokens and are cut by its tokenizer (config.json: prompts_truncated)", file=sys.stderr)
        return {"count": count, "token_limit": limit}

    def _verified(self, items: Sequence[Any], workers: int) -> dict[int, dict[str, Any]]:
        """Rows of ``items`` that are finished: the image file has the recorded sha256 (or, for runs made with
        --no-save-images, the features of every streamed network are kept)."""
        if not items:
            return {}
        candidates = self.store.read_candidates()
        kept: list[set[tuple[int, str]]] = []
        if not self.req.save_images:
            for net in self.networks:
                kept.append(set(GeneratedFeatures(self.store, net.key).load()))

        def check(it: Any) -> dict[str, Any] | None:
            for row in reversed(candidates.get(it.index, [])):
                if row.get("prompt") != it.prompt:
                    continue
                if self.store.file_ok(row):
                    return row
                if kept and all((it.index, row.get("sha256")) in k for k in kept):
                    return row
            return None

        with ThreadPoolExecutor(workers) as pool:
            found = list(pool.map(check, items))
        return {it.index: row for it, row in zip(items, found, strict=True) if row is not None}

    def _generate(self, todo: Sequence[tuple[Sequence[Any], list[Any]]], done: dict[int, dict[str, Any]],
                  sink: Sink, timings: Timings) -> None:
        """Generate each (full chunk, wanted part) as one batch and hand the wanted part to the sink."""
        import torch
        from tqdm.auto import tqdm

        from bench.sample_noise import batch_noise

        gen = self.generator
        dist = self.dist
        if isinstance(gen, ExternalImages):
            return read_chunks(gen, todo, done, sink, timings, self.req.workers or default_workers(), dist.is_main)
        staged = StageTimer(gen, timings)
        desc = f"generate {self.req.method}" + (f" [rank 0 of {dist.world_size}]" if dist.active else "")
        total = sum(len(part) for _, part in todo)
        with tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=not dist.is_main) as bar:
            for full, part in todo:
                sink.check()
                idx = [it.index for it in full]
                prompts = [it.prompt for it in full]
                pad = self.req.batch_size - len(full) if gen.fixed_batch else 0
                if pad > 0:  # the last chunk, at the compiled batch shape; the padding's images are dropped
                    idx += range(idx[-1] + 1, idx[-1] + 1 + pad)
                    prompts += prompts[-1:] * pad
                with sink.compute_lock, torch.no_grad():
                    start = time.perf_counter()
                    noise = batch_noise(self.req.seed, idx, gen.noise_shape, device=gen.device, dtype=gen.dtype)
                    images = staged(noise, prompts)
                    images8, flags = to_uint8_and_flags(images[: len(part)])
                    timings.add("generation", time.perf_counter() - start)
                    staged.collect()
                sink.submit(part, images8, flags, {it.index: done[it.index] for it in part if it.index in done})
                bar.update(len(part))

    # -- scoring ----------------------------------------------------------------------------------
    def _score(self, rows: dict[int, dict[str, Any]], timings: Timings,
               workers: int) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        fs = FeatureStore(self.session, self.store, self.suite, self.items, self.req.batch_size, timings=timings,
                          workers=workers, rows=rows)
        ctx = Recording(RunContext(fs, self.items, self.generator))
        values: dict[str, float] = {}
        info: dict[str, Any] = {}
        for metric in self.metrics:
            before = timings.total("features/") + timings.total("reference_features/") + timings.total("text_")
            start = time.perf_counter()
            self._check_reference_count(metric, ctx)
            result = metric.compute(ctx)
            elapsed = time.perf_counter() - start
            features = (timings.total("features/") + timings.total("reference_features/")
                        + timings.total("text_")) - before
            timings.add(f"metric/{metric.name}", max(0.0, elapsed - features))
            default = type(metric).name
            keys = {k: result_key(metric.name, default, k) for k in result.values}
            values.update({keys[k]: v for k, v in result.values.items()})
            directions = {keys[k]: d for k in result.values if (d := metric.direction(k)) is not None}
            info[metric.name] = {**result.info, "comparable": result.comparable, "seconds": round(elapsed, 3),
                                 "higher_is_better": directions}
            attach_interval(info[metric.name], metric, ctx, result.values, keys, self.req.bootstrap,
                            self.req.bootstrap_seed)
        return values, info, fs.reference_info

    @staticmethod
    def _check_reference_count(metric: Metric, ctx: Any) -> None:
        needs = metric.min_samples()
        if metric.needs_reference and needs.reference > 1:
            for spec in metric.feature_specs():
                check_sample_count(metric.name, "reference", len(ctx.image_features(spec, "reference")), needs)

    def _results(self, config: dict[str, Any], values: dict[str, float], info: dict[str, Any],
                 reference: dict[str, Any], flags: list[str | None], generated: int, resumed: bool,
                 timings: Timings, total: float) -> Results:
        gen_weights = config["generator"].get("weights", "pretrained")
        reasons = comparability(gen_weights, info, self.suite, self.req.limit, self.req.metric_args)
        images = {"total": len(flags), "generated_this_run": generated, "resumed": resumed,
                  **flag_summary([it.index for it in self.items], flags), "saved": self.req.save_images}
        if isinstance(self.generator, ExternalImages):
            reasons += self.generator.comparability_issues()
            images.update(self.generator.coverage())
        return Results(run_dir=str(self.store.path), method=self.req.method, suite=self.req.suite,
                       num_samples=len(self.items), metrics=values, metric_info=info,
                       weights=weights_verdict(gen_weights, info), comparable=not reasons,
                       not_comparable_because=reasons, images=images,
                       timing_s=ordered_timings(timings.as_dict(), total), config=config,
                       reference_features=reference or None)
