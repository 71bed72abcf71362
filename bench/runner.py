"""A run: one generator on one suite with its metrics, in one run directory.

:class:`Run` resolves and checks everything a run needs before anything heavy happens (names, options, prompt
counts, data), then :meth:`Run.execute` takes the run directory's lock and runs the stages in order:
:func:`~bench.run_stages.plan` (identity check, loading, config.json, which chunks to make),
:func:`~bench.run_stages.generate` (images, streamed features, journals), :func:`~bench.run_stages.gather`
(ranks report; the manifest), :func:`~bench.run_score.score` (the metrics) and the results file
(:func:`~bench.run_score.build_results`). The modules of the stages say what each does.

A run never joins a process group itself: the command (or the caller of :class:`~bench.session.Session`)
does, and hands the session its :class:`~bench.distributed.Distributed`.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plugins
from bench.bootstrap import check_groups
from bench.errors import BenchError
from bench.external import ExternalImages
from bench.generator import Generator
from bench.metrics.base import Metric, check_sample_count
from bench.results import Results
from bench.run_dir import RunStore
from bench.run_features import Network
from bench.run_request import RunRequest, check_batch_against_limit, check_run_sizes
from bench.run_score import build_results, score
from bench.run_stages import gather, generate, plan
from bench.suites.base import Suite, cut_long_prompts
from bench.timing import Timings

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
            metrics.append(entry.build(**opts))  # a Metric named as registered (the registry checks both)
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
        # option -> content of the input it names: a renamed folder with the same content is the same run
        args = {key: files[str(path.resolve())]["sha256"] for key, path in self.generator.path_options()
                if str(path.resolve()) in files}
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
        """The stages, each timed under ``stage/<name>``; results.json is written by the main process."""
        timings = Timings()
        t0 = time.perf_counter()
        with timings.time("stage/plan"):
            planned = plan(self, timings)
        with timings.time("stage/generate"):
            made = generate(self, planned, timings)
        with timings.time("stage/gather"):
            gathered = gather(self, made, timings)
        if gathered is None:
            return None
        with timings.time("stage/score"):
            scores = score(self, gathered, made.features, timings, planned.workers)
        made.features.clear()  # the features held for scoring are not needed any more
        results = build_results(self, planned, gathered, scores, timings, time.perf_counter() - t0)
        self.store.write_results(results.to_dict())
        return results

    def truncated(self) -> dict[str, int] | None:
        """Prompts the generator's text encoder cuts: said once (main process) and recorded in config.json."""
        got = self.generator.truncated_prompts([it.prompt for it in self.items])
        if got is None:
            return None
        count, limit = got
        if count and self.dist.is_main:
            print(f"bench: warning: {count} of {len(self.items)} prompts are longer than the text encoder's {limit} "
                  "tokens and are cut by its tokenizer (config.json: prompts_truncated)", file=sys.stderr)
        return {"count": count, "token_limit": limit}
