"""The suite plug-in interface: prompts, reference images and the protocol that scores them."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.metrics.preprocess import Preprocess
from bench.options import Option, resolve_options


@dataclass(frozen=True)
class PromptItem:
    """One sample to generate: its index in the suite, its prompt and an optional group (e.g. a style)."""

    index: int
    prompt: str
    group: str | None = None


class Suite(ABC):
    """An evaluation protocol. Subclasses set ``name`` and implement prompts and references."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    #: Metrics run by default, in order.
    default_metrics: ClassVar[tuple[str, ...]] = ()
    #: Image file extension in the run directory ("png" or "jpg").
    image_format: ClassVar[str] = "png"
    #: Whether numbers from this suite can be set beside published ones (given pretrained metric weights).
    comparable: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        self.args = resolve_options("suite", self.name, self.options, options)

    @abstractmethod
    def prompts(self) -> list[PromptItem]:
        """Every sample of the suite, in index order."""

    def reference_images(self) -> list[Path]:
        """Reference image files (empty when the suite has none)."""
        return []

    def reference_fingerprint(self) -> str:
        """Identifies the reference set for caching its features: names and sizes of the files."""
        h = hashlib.sha256()
        for p in self.reference_images():
            h.update(f"{p.name}:{p.stat().st_size}\n".encode())
        return h.hexdigest()[:16]

    def preprocess(self) -> Preprocess:
        """The evaluation transform for generated and reference images."""
        return Preprocess()

    def metric_options(self) -> dict[str, dict[str, Any]]:
        """Per-metric options this protocol fixes (e.g. random weights for an offline suite)."""
        return {}

    def image_path(self, index: int) -> str:
        """Relative path of sample ``index``'s image inside the run directory."""
        return f"images/{index:05d}.{self.image_format}"

    def protocol(self) -> dict[str, Any]:
        """Everything that defines the protocol, for config.json."""
        return {
            "suite": self.name,
            "options": self.args,
            "num_prompts": len(self.prompts()),
            "preprocess": self.preprocess().as_dict(),
            "metric_options": self.metric_options(),
            "image_format": self.image_format,
        }
