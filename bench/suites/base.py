"""The suite plug-in interface: prompts, reference images and the protocol that scores them."""

from __future__ import annotations

import io
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.errors import BenchError
from bench.metrics.preprocess import Preprocess
from bench.options import Option, resolve_options


@dataclass(frozen=True)
class PromptItem:
    """One sample to generate: its index in the suite, its prompt and an optional group (e.g. a style)."""

    index: int
    prompt: str
    group: str | None = None


def cut_long_prompts(items: list[PromptItem], max_chars: int) -> tuple[list[PromptItem], int]:
    """Prompts longer than ``max_chars`` cut to that length (a 10 MB "prompt" would keep a tokenizer busy for
    minutes), and how many were cut; the count is said once on stderr."""
    from dataclasses import replace

    long = [it for it in items if len(it.prompt) > max_chars]
    if not long:
        return items, 0
    print(f"bench: warning: {len(long)} prompt(s) longer than {max_chars} characters were cut to that length "
          f"(the first is sample {long[0].index})", file=sys.stderr)
    cut = {it.index for it in long}
    return [replace(it, prompt=it.prompt[:max_chars]) if it.index in cut else it for it in items], len(cut)


def decode_image(data: bytes | Path, name: str, what: str = "image",
                 hint: str = "replace or delete it and run the command again") -> Any:
    """Encoded bytes or a file -> an RGB PIL image, fully decoded; a truncated or unreadable file is a
    :class:`BenchError` that names it (and says ``hint``)."""
    from PIL import Image

    try:
        source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        with Image.open(source) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise BenchError(f"{what} {name} is truncated or unreadable ({exc}); {hint}") from exc


class ReferenceSet:
    """A suite's reference images: their names, a loader, and a fingerprint that keys cached features."""

    def __init__(self, names: Sequence[str], load: Callable[[int], Any], fingerprint: str) -> None:
        self.names = list(names)
        self._load = load
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.names)

    def load(self, i: int) -> Any:
        """Reference image ``i`` as an RGB PIL image."""
        return self._load(i)

    @classmethod
    def from_files(cls, paths: Sequence[Path], what: str = "reference image") -> ReferenceSet:
        """Images in files; the fingerprint is made of their names and contents (:func:`files_fingerprint`)."""
        paths = list(paths)
        return cls([str(p) for p in paths], lambda i: decode_image(paths[i], str(paths[i]), what),
                   files_fingerprint(paths, what))


def files_fingerprint(paths: Sequence[Path], what: str, names: Sequence[str] | None = None) -> str:
    """The short fingerprint of a set of reference files: their names and content hashes (hashes are cached
    while a file's inode, times, size and a content sample are unchanged; see :mod:`bench.fingerprint`), so a
    file replaced by another of the same name and size is a different reference set."""
    from bench.fingerprint import files_digest

    try:
        return files_digest(paths, names)[:16]
    except OSError as exc:
        raise BenchError(f"{what} {exc.filename} cannot be read ({exc.strerror}); check the data folder") from exc


class Suite(ABC):
    """An evaluation protocol. Subclasses set ``name`` and implement prompts and references."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    #: Options that only say where data lives (a folder, a file); they are recorded in config.json under
    #: "data" but are not part of the run's identity, so moving the data does not invalidate a run.
    location_options: ClassVar[tuple[str, ...]] = ()
    #: Metrics run by default, in order.
    default_metrics: ClassVar[tuple[str, ...]] = ()
    #: Image file extension in the run directory ("png" or "jpg").
    image_format: ClassVar[str] = "png"
    #: JPEG quality when ``image_format`` is "jpg".
    jpeg_quality: int = 95
    #: Whether numbers from this suite can be set beside published ones (given pretrained metric weights).
    comparable: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        self.args = resolve_options("suite", self.name, self.options, options)

    @abstractmethod
    def prompts(self) -> list[PromptItem]:
        """Every sample of the suite, in index order (``prompts()[i].index == i``)."""

    def identity_args(self) -> dict[str, Any]:
        """The options that define what the suite produces (all but :attr:`location_options`)."""
        return {k: v for k, v in self.args.items() if k not in self.location_options}

    def location_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k in self.location_options}

    def check_data(self, needs_reference: bool) -> None:
        """Fail early, in one line, when data the run will need is missing (``needs_reference``: some metric of
        the run reads the reference images)."""
        return None

    def comparability_issues(self, metric_overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        """Reasons why this run of the suite cannot be set beside published numbers (beyond :attr:`comparable`);
        ``metric_overrides`` are the metric options the user set (``--metric-args``)."""
        return []

    def reference_images(self) -> list[Path]:
        """Reference image files (empty when the suite has none)."""
        return []

    def reference_set(self) -> ReferenceSet:
        """The reference images as a :class:`ReferenceSet` (by default: :meth:`reference_images`)."""
        return ReferenceSet.from_files(self.reference_images())

    def preprocess(self) -> Preprocess:
        """The evaluation transform for generated and reference images (``eval_*`` suite options when declared)."""
        return Preprocess.from_args(self.args)

    def preprocess_deviations(self) -> list[str]:
        """How this run's evaluation transform departs from the protocol's (centre crop, Lanczos, 256 px)."""
        got, want = self.preprocess().as_dict(), Preprocess().as_dict()
        return [f"evaluation transform {k}={got[k]} instead of {want[k]}" for k in want
                if got.get(k, want[k]) != want[k]]

    def metric_options(self) -> dict[str, dict[str, Any]]:
        """Per-metric options this protocol fixes (e.g. random weights for an offline suite)."""
        return {}

    def image_path(self, index: int) -> str:
        """Relative path of sample ``index``'s image inside the run directory."""
        return f"images/{index:05d}.{self.image_format}"

    def protocol(self) -> dict[str, Any]:
        """Everything that defines the protocol, for config.json (and the run's identity)."""
        out = {
            "suite": self.name,
            "options": self.identity_args(),
            "num_prompts": len(self.prompts()),
            "preprocess": self.preprocess().as_dict(),
            "metric_options": self.metric_options(),
            "image_format": self.image_format,
        }
        if self.image_format == "jpg":
            out["jpeg_quality"] = self.jpeg_quality
        return out
