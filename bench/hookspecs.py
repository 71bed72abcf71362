"""Plug-in hook specifications.

A plug-in is any module or object with functions marked by ``bench.hookimpl``. Each hook receives a
``register`` callable; call it once per thing you provide::

    from bench import hookimpl

    @hookimpl
    def register_methods(register):
        register("my-model", "my_package.generator:MyGenerator", description="...")

The target may be the object itself or a ``"module:attribute"`` string, which is imported only when the
thing is used, so listing plug-ins never imports torch. Third-party packages expose their plug-in module
through the ``bench`` entry-point group::

    [project.entry-points.bench]
    my_plugin = "my_package.bench_plugin"
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("bench")
hookimpl = pluggy.HookimplMarker("bench")


@hookspec
def register_methods(register):
    """Register generators: ``register(name, target, **info)``.

    ``target`` builds a :class:`bench.generator.Generator` when called with the method's keyword arguments.
    """


@hookspec
def register_suites(register):
    """Register evaluation suites: ``register(name, target, **info)``.

    ``target`` builds a :class:`bench.suites.base.Suite` when called with the suite's keyword arguments.
    ``cli_aliases={"data_root": {"metavar": "DIR", "help": "..."}}`` gives suite options command-line flags of
    their own (``--data-root DIR`` is ``--suite-args data_root=DIR``; see :func:`bench.run_options.suite_aliases`).
    """


@hookspec
def register_metrics(register):
    """Register metrics: ``register(name, target, **info)``.

    ``target`` builds a :class:`bench.metrics.base.Metric` when called with the metric's keyword arguments.
    """


@hookspec
def register_feature_extractors(register):
    """Register feature networks: ``register(name, target, **info)``.

    ``target`` builds a :class:`bench.metrics.extractors.Extractor` when called with the network's keyword
    options. Metrics name the networks they consume in :meth:`bench.metrics.base.Metric.feature_specs`.
    """


@hookspec
def register_commands(register):
    """Register sub-commands of ``python -m bench``: ``register(name, target, **info)``.

    ``target`` builds a :class:`bench.commands.base.Command` when called without arguments.
    """


@hookspec
def register_toy_repos(register):
    """Register repositories of the offline toy hub (:mod:`bench.toy_hub`): ``register(repo_id, files)``.

    ``files(seed)`` returns the snapshot's files (path inside the repository -> bytes): the real repository's
    layout at toy size, with weights drawn from ``seed`` (the same seed gives the same bytes).
    """
