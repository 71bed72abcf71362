"""The metric plug-in interface.

A metric is built with keyword options (validated against its ``options`` spec) and computes values from a
:class:`MetricContext`, which hands out features of generated and reference images (computed once, cached
and shared between metrics), text features, the prompts and the generator itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from bench.options import Option, resolve_options

#: Keys that results.json uses for the headline values, where they apply.
STANDARD_KEYS = ("fid", "clip_score", "precision", "recall", "density", "coverage", "hps", "latency_ms")

WEIGHTS_OPTION = Option("pretrained", str, ("pretrained", "random"), "published weights or seeded random ones")


class MetricContext(Protocol):
    """What a metric may ask the run for."""

    prompts: list[str]
    groups: list[str] | None
    generator: Any
    device: Any

    def image_features(self, extractor: dict[str, Any], which: str) -> np.ndarray:
        """Features of the ``"generated"`` or ``"reference"`` images from the extractor described by the spec."""

    def text_features(self, extractor: dict[str, Any], texts: Sequence[str]) -> np.ndarray:
        """Text features from the extractor described by the spec, one row per text."""


@dataclass
class MetricResult:
    """Values under their results.json keys, plus how they were obtained."""

    values: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def comparable(self) -> bool:
        return bool(self.info.get("comparable", self.info.get("weights", "pretrained") == "pretrained"))


class Metric(ABC):
    """Base class of metrics; subclasses set ``name``, ``keys`` and ``options`` and implement ``compute``."""

    name: ClassVar[str] = ""
    keys: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options: Any) -> None:
        self.args = resolve_options("metric", self.name, self.options, options)

    @abstractmethod
    def compute(self, ctx: MetricContext) -> MetricResult:
        """Compute the metric's values."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.args}

    def _info(self, **extra: Any) -> dict[str, Any]:
        weights = self.args.get("weights", "pretrained")
        return {"weights": weights, "comparable": weights == "pretrained", **extra}
