"""The metric plug-in interface.

A metric is built with keyword options (validated against its ``options`` spec) and computes values from a
:class:`MetricContext`, which hands out features of generated and reference images (computed once, cached
and shared between metrics and between runs of a session), text features, the prompts and the generator.

What the engine reads from a metric, and nothing else:

* :meth:`Metric.feature_specs`: the feature networks it consumes, each with the evaluation transform its
  input gets. The engine builds these networks before the first image is generated (an unknown network
  fails then, not after generation) and streams every generated image through them while generating.
* :attr:`Metric.needs_reference`: whether the suite's reference images must be present.
* :attr:`Metric.needs_generator`: whether it measures the generator itself (left out for images made elsewhere).
* :attr:`Metric.higher_is_better`: the direction of each output key, for tables and plots.
* :meth:`Metric.min_samples`: how many generated and reference samples it needs; a run with fewer generated
  ones is refused before any image is generated, one with fewer reference ones before the metric is computed.
* :attr:`Metric.name`: set to the name the metric was registered under; it keys the metric's results.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import numpy as np

from bench.options import Option, resolve_options

if TYPE_CHECKING:
    from bench.metrics.extractors import Extractor
    from bench.metrics.preprocess import Preprocess

#: Keys that results.json uses for the headline values, where they apply.
STANDARD_KEYS = ("fid", "clip_score", "precision", "recall", "density", "coverage", "hps", "latency_ms")

#: Weights of metric networks whose numbers can be set beside published ones ("none": no parameters at all).
COMPARABLE_WEIGHTS = ("pretrained", "none")
WEIGHTS_OPTION = Option("pretrained", str, ("pretrained", "random"), "published weights or seeded random ones")


@dataclass(frozen=True)
class FeatureSpec:
    """A feature network a metric consumes.

    ``extractor`` is a registered feature-extractor name (``python -m bench list extractors``), ``options`` its
    keyword options, and ``transform`` the evaluation transform applied to every image before the network's
    own preparation; ``None`` means the suite's transform (the protocol's centre crop and 256 px Lanczos
    resize). A network that wants other input (224 or 336 px, another crop) names its own transform.
    """

    extractor: str
    options: Mapping[str, Any] = field(default_factory=dict)
    transform: Preprocess | None = None

    def extractor_spec(self) -> dict[str, Any]:
        """``{"kind": extractor, **options}``: what builds the network and keys its features."""
        return {"kind": self.extractor, **self.options}

    def key(self, extractor_key: str) -> str:
        """The features' cache key: the network's key, plus the transform's digest when the spec has its own."""
        if self.transform is None:
            return extractor_key
        blob = json.dumps(self.transform.as_dict(), sort_keys=True).encode()
        return f"{extractor_key}-t{hashlib.sha256(blob).hexdigest()[:8]}"


class MetricContext(Protocol):
    """What a metric may ask the run for."""

    prompts: list[str]
    groups: list[str] | None
    generator: Any
    device: Any

    def extractor(self, spec: FeatureSpec) -> Extractor:
        """The built network of ``spec`` (shared with the run's feature pass)."""

    def image_features(self, spec: FeatureSpec, which: str) -> np.ndarray:
        """Features of the ``"generated"`` or ``"reference"`` images from the network of ``spec``."""

    def text_features(self, spec: FeatureSpec, texts: Sequence[str]) -> np.ndarray:
        """Text features from the network of ``spec``, one row per text."""


@dataclass
class MetricResult:
    """Values under their results.json keys, plus how they were obtained."""

    values: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def comparable(self) -> bool:
        return bool(self.info.get("comparable", self.info.get("weights", "pretrained") in COMPARABLE_WEIGHTS))


class SampleNeeds(NamedTuple):
    """The fewest samples a metric works with; ``because`` names the setting behind the count (``k=3``)."""

    generated: int
    reference: int
    because: str = ""


def check_sample_count(metric: str, which: str, have: int, needs: SampleNeeds) -> None:
    """One line, exit 2, when ``have`` ``which`` ("generated" or "reference") samples are too few."""
    need = needs.generated if which == "generated" else needs.reference
    if have >= need:
        return
    from bench.errors import BenchError

    why = f" ({needs.because})" if needs.because else ""
    fix = ("use a larger --limit or more prompts, or leave the metric out with --metrics" if which == "generated"
           else "give the suite a larger reference set (--data-root), or leave the metric out with --metrics")
    raise BenchError(f"metric {metric!r} needs at least {need} {which} samples{why}, but this run has {have}: {fix}")


class Metric(ABC):
    """Base class of metrics; subclasses set ``name``, ``keys``, ``options`` and ``higher_is_better``, declare
    their networks in :meth:`feature_specs` and implement :meth:`compute`."""

    #: Default name; the registry sets the name the metric was registered under on every instance it builds
    #: (before ``__init__``, so option errors name it).
    name: str = ""
    #: Output keys (per-group values are added as ``<key>/<group>``).
    keys: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, Option]] = {}
    #: Whether the suite's reference images are needed.
    needs_reference: ClassVar[bool] = True
    #: Whether it measures the generator itself (latency): left out when the images were made elsewhere.
    needs_generator: ClassVar[bool] = False
    #: Direction of each output key: True when a larger value is better.
    higher_is_better: ClassVar[dict[str, bool]] = {}
    #: Whether the engine gives the metric a 95% interval (:mod:`bench.bootstrap`, a grouped jackknife), and
    #: what its groups leave out: generated ``"sample"``s, or all samples of whole ``"prompt"``s (or suite
    #: ``"group"``s).
    bootstrap: ClassVar[bool] = True
    bootstrap_unit: ClassVar[str] = "sample"
    #: What the interval of an output key covers, where it is not :data:`bench.bootstrap.COVERS` (the mean over
    #: fresh generated samples with the reference fixed), e.g. an interval conditional on the generated set.
    interval_covers: ClassVar[dict[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.args = resolve_options("metric", self.name or type(self).__name__, self.options, options)

    def feature_specs(self) -> list[FeatureSpec]:
        """The feature networks :meth:`compute` asks the context for (none by default)."""
        return []

    @abstractmethod
    def compute(self, ctx: MetricContext) -> MetricResult:
        """Compute the metric's values."""

    def bootstrap_values(self, ctx: MetricContext, draws: Sequence[Any]) -> Sequence[dict[str, float]] | None:
        """All interval replicates at once, one values dict per draw (``draws``: (indices of the generated
        samples kept, their group labels) pairs, one per left-out jackknife group, see
        :func:`bench.bootstrap.draws`), for metrics that can do it much faster than :meth:`compute` on each
        replicate's context; None (the default) lets the engine do the latter."""
        return None

    def min_samples(self) -> SampleNeeds:
        """The fewest generated and reference samples :meth:`compute` works with (default: one of each)."""
        return SampleNeeds(1, 1)

    def direction(self, key: str) -> bool | None:
        """:attr:`higher_is_better` of an output key (``hps/anime`` reads ``hps``); None when undeclared."""
        return self.higher_is_better.get(key, self.higher_is_better.get(key.split("/", 1)[0]))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.args}

    def hub_repos(self) -> tuple[str, ...]:
        """Hub repositories the metric's published weights come from (default: none named)."""
        return ()

    def _info(self, **extra: Any) -> dict[str, Any]:
        weights = self.args.get("weights", "pretrained")
        if weights == "pretrained" and self.hub_repos():
            from bench.hub_cache import any_toy

            if any_toy(self.hub_repos()):  # toy-size random weights under the real ids (bench.toy_hub)
                weights, extra = "random", {**extra, "toy_hub": True}
        return {"weights": weights, "comparable": weights in COMPARABLE_WEIGHTS, **extra}


def result_key(registered: str, default: str, key: str) -> str:
    """The results.json key of a metric's output ``key`` when the metric class named ``default`` is registered
    as ``registered``: unchanged under its own name; ``fid`` -> ``<registered>`` (and ``hps/anime`` ->
    ``<registered>/anime``) when the key is the class's name; ``<registered>.<key>`` otherwise. Registering a
    metric under a second name so gives a second set of results, never a silent overwrite."""
    if not default or registered == default:
        return key
    head, sep, tail = key.partition("/")
    if head == default:
        return registered + sep + tail
    return f"{registered}.{key}"
