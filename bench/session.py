"""A session: what is expensive and shared between the runs of one process, and the public Python API.

A :class:`Session` holds the built feature networks (each built once), reference and text features (kept in
memory, and on disk in the cache directory), the generators it built from names and whether they are loaded,
and this process's place in a multi-process job. Evaluating N models on a suite in one session builds each
feature network once and computes the reference features once::

    from bench import Session

    session = Session(device="cuda")
    for model in (model_a, model_b):           # bench.generator.Generator objects, or method names
        results = session.evaluate(model, "coco30k", batch_size=64, dtype="bf16")
        print(results.metrics["fid"])

:func:`evaluate` does the same for one run with a session of its own. A session never joins a process group:
in a launched multi-process job, call :func:`bench.distributed.init` first and pass its result as ``dist``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bench.distributed import Distributed
from bench.errors import BenchError
from bench.run_options import check_evaluate_options, options_doc
from bench.run_request import RunRequest

if TYPE_CHECKING:
    from bench.generator import Generator
    from bench.metrics.base import FeatureSpec
    from bench.metrics.extractors import Extractor
    from bench.results import Results
    from bench.suites.base import Suite


class Session:
    """Shared state of the runs in one process; see the module docstring."""

    def __init__(self, device: str = "auto", dist: Distributed | None = None) -> None:
        self.device_name = device
        self.dist = dist or Distributed()
        self._device: Any = None
        self._extractors: dict[str, Extractor] = {}
        self._generators: dict[tuple[str, str], Generator] = {}
        self._loaded: dict[int, tuple[Generator, Any]] = {}
        #: Reference and text features by cache key (see :mod:`bench.run_features`).
        self.memory: dict[tuple[str, str], Any] = {}

    @property
    def device(self) -> Any:
        """This process's torch device (``cuda:<local rank>`` in a multi-GPU job)."""
        if self._device is None:
            from bench.devices import resolve_device

            self._device = self.dist.device(resolve_device(self.device_name))
        return self._device

    @staticmethod
    def dtype(name: str) -> Any:
        from bench.devices import resolve_dtype

        return resolve_dtype(name)

    def extractor(self, spec: FeatureSpec | Mapping[str, Any]) -> Extractor:
        """The feature network of ``spec``, built (lazily) once per session and placed on its device."""
        from bench.metrics.extractors import build_extractor

        ext = build_extractor(spec)
        if ext.key() not in self._extractors:
            self._extractors[ext.key()] = ext.to(self.device)
        return self._extractors[ext.key()]

    def generator(self, method: str, method_args: Mapping[str, Any] | None = None) -> Generator:
        """The generator registered as ``method`` with these options, built once per session."""
        from bench import plugins

        args = dict(method_args or {})
        key = (method, json.dumps(args, sort_keys=True, default=str))
        if key not in self._generators:
            self._generators[key] = plugins.current().methods.get(method).build(**args)
        return self._generators[key]

    def load(self, generator: Generator, dtype: Any) -> None:
        """Load ``generator`` onto the session's device in ``dtype`` unless it already is."""
        loaded = self._loaded.get(id(generator))
        if loaded is not None and loaded[0] is generator and loaded[1] == dtype:
            return
        generator.load(self.device, dtype)
        self._loaded[id(generator)] = (generator, dtype)

    def evaluate(self, generator: Generator | str, suite: Suite | str, **options: Any) -> Results | None:
        """Generate ``suite``'s images with ``generator`` and score them; the run's :class:`~bench.results.Results`
        (None on ranks other than the main one of a multi-process job).

        ``generator``: a method name (built with ``method_args``) or a built :class:`~bench.generator.Generator`;
        ``suite``: a suite name (built with ``suite_args``) or a built :class:`~bench.suites.base.Suite`.
        ``options``: those of ``python -m bench run`` (:class:`~bench.run_request.RunRequest`) but the device,
        which is the session's; an unknown one is a one-line error naming the closest. The run directory is
        resumable like the CLI's.
        """
        from bench.generator import Generator
        from bench.runner import Run
        from bench.suites.base import Suite

        check_evaluate_options(RunRequest, options)
        gen_obj = generator if isinstance(generator, Generator) else None
        suite_obj = suite if isinstance(suite, Suite) else None
        if gen_obj is not None and options.get("method_args"):
            raise BenchError("method_args apply to a method name; a built generator already has its options")
        if suite_obj is not None and options.get("suite_args"):
            raise BenchError("suite_args apply to a suite name; a built suite already has its options")
        if gen_obj is None and not isinstance(generator, str):
            raise BenchError(f"generator must be a method name or a bench Generator, not {type(generator).__name__}")
        if suite_obj is None and not isinstance(suite, str):
            raise BenchError(f"suite must be a suite name or a bench Suite, not {type(suite).__name__}")
        request = RunRequest(
            method=(gen_obj.name or type(gen_obj).__name__.lower()) if gen_obj is not None else str(generator),
            suite=suite_obj.name if suite_obj is not None else str(suite), device=self.device_name, **options)
        return Run(request, self, generator=gen_obj, suite=suite_obj).execute()


if Session.evaluate.__doc__:  # the keywords, from their declarations (python -OO drops docstrings)
    Session.evaluate.__doc__ += "\n        Options:\n\n" + options_doc(RunRequest) + "\n"


def evaluate(generator: Generator | str, suite: Suite | str, *, device: str = "auto",
             **options: Any) -> Results | None:
    """One run in a session of its own: ``Session(device).evaluate(generator, suite, **options)``."""
    return Session(device).evaluate(generator, suite, **options)
