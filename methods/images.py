"""``images``: score images made elsewhere (``--method images --method-args dir=PATH``) instead of generating.

``dir`` is a folder of PNG/JPEG/WebP files, a ``.zip`` or ``.tar`` of them, or an ``.npz`` sample batch; ``match``
says which image is which sample (:mod:`bench.image_matching`; ``auto`` says on stderr what it chose). Missing,
extra or duplicate images stop the run with one line naming them, unless ``allow_missing=true``: then the samples
found are scored, the counts are recorded and the run is not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.errors import BenchError
from bench.external import ExternalImages, warn
from bench.image_matching import RULES, Matching, match, problem_line
from bench.image_sources import ImageSource, ReadImage, open_source
from bench.options import Option
from bench.results import EXTERNAL
from bench.suites.base import PromptItem


class ImagesMethod(ExternalImages):
    """Reads each sample's image from ``dir`` by the ``match`` rule."""

    name = "images"
    options = {
        "dir": Option(None, str, help="folder, .zip/.tar or .npz batch of the images"),
        "match": Option("auto", str, RULES, "which image is which sample: auto, index, sbv2, hpsv2, run, list"),
        "mapping": Option(None, str, help="CSV (file,prompt) or JSONL of each image's prompt (match=list)"),
        "allow_missing": Option(False, bool, help="score the samples that have an image; gaps are recorded"),
        "array": Option(None, str, help="image array of an .npz batch (default: arr_0, else all_images)"),
    }

    def __init__(self, **method_args: Any) -> None:
        super().__init__(**method_args)
        if not self.args["dir"]:
            raise BenchError("method 'images' needs dir=PATH: a folder of images, a .zip or .tar of them, or an .npz "
                             "sample batch (--method-args dir=PATH)")
        self.source: ImageSource = open_source(self.args["dir"], self.args["array"])
        self.matching: Matching | None = None
        self._missing = 0

    def select(self, items: Sequence[PromptItem], all_items: Sequence[PromptItem]) -> list[PromptItem]:
        m = match(self.source, all_items, self.args["match"], self.args["mapping"])
        if self.args["match"] == "auto":
            warn(f"{len(m.by_index)} image(s) in {self.source.path} matched to samples by rule {m.rule!r} "
                 f"(match={m.rule} to say so; see docs/external-images.md)")
        line = problem_line(m, items, str(self.source.path))
        wanted = [it for it in items if it.index in m.by_index]
        if line is not None:
            if m.duplicate or not self.args["allow_missing"]:
                hint = ("" if m.duplicate else "; or pass --method-args allow_missing=true to score the "
                        f"{len(wanted)} found (the counts are recorded; not comparable)")
                raise BenchError(line + hint)
            warn("warning: " + line + " (allow_missing: scoring the samples that have one)")
        if not wanted:
            raise BenchError(f"no image in {self.source.path} matches a sample of the suite; check match= and dir=")
        self.matching = m
        self._missing = len(items) - len(wanted)
        return wanted

    def read(self, item: PromptItem) -> ReadImage:
        assert self.matching is not None, "select() first"
        return self.source.read(self.matching.by_index[item.index])

    def coverage(self) -> dict[str, Any]:
        m = self.matching
        return {"produced_by": EXTERNAL, "missing": self._missing, "extra": len(m.extra) if m else 0,
                "absent": len(m.absent) if m else 0}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source.describe(),
                "match": self.matching.rule if self.matching else self.args["match"], "coverage": self.coverage()}
