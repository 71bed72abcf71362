"""``folders``: two image sets without prompts, the suite behind ``bench score A B`` (built by that command, not
registered: its samples are A's images and its reference set is B's).

Profiles (option ``profile``): ``clean-fid`` (default) scores the images as they are, as clean-fid's
``compute_fid(dir1, dir2)`` and torch-fidelity do (each network resizes for itself); ``sbv2-release``, ``clean`` and
``dmd2`` apply that protocol's evaluation transform (centre crop with its rounding, Lanczos to 256 px) and its
metric options. The reference set's content fingerprint is part of the protocol, so another B is another run.
"""

from __future__ import annotations

import copy
from typing import Any

from bench.errors import BenchError
from bench.image_sources import ImageSource
from bench.metrics.preprocess import Preprocess
from bench.options import Option
from bench.profiles import AS_GIVEN, SCORE_PROFILES, get_profile
from bench.suites.base import PromptItem, ReferenceSet, Suite

#: Metrics that compare two image sets without reading prompts.
PAIR_METRICS = ("fid", "kid", "precision_recall", "density_coverage", "fd_dinov2", "cmmd", "inception_score",
                "fid_stats")


class FolderPairSuite(Suite):
    """A's images (``count`` samples with empty prompts) against the reference images of ``reference``."""

    name = "folders"
    comparable = False
    default_metrics = ("fid",)
    options = {"count": Option(1, int, minimum=1, help="images of the first set"),
               "profile": Option(AS_GIVEN, str, SCORE_PROFILES, "clean-fid (images as given) or a protocol profile"),
               "reference_sha256": Option(None, str, help="content fingerprint of the reference set")}

    def __init__(self, reference: ImageSource | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.reference = reference

    def prompts(self) -> list[PromptItem]:
        return [PromptItem(i, "") for i in range(self.args["count"])]

    def reference_set(self) -> ReferenceSet:
        src = self.reference
        if src is None:
            return ReferenceSet([], lambda i: None, "none")
        names = list(src.names)
        return ReferenceSet([f"{src.path}:{n}" for n in names], lambda i: src.read(names[i]).pixels,
                            str(self.args["reference_sha256"])[:16])

    def check_data(self, needs_reference: bool) -> None:
        if needs_reference and self.reference is None:
            raise BenchError("these metrics compare with a second image set: give it (bench score A B)")

    def preprocess(self) -> Preprocess:
        if self.args["profile"] == AS_GIVEN:
            return Preprocess(size=None, center_crop=False)
        return Preprocess(crop_rounding=get_profile(self.args["profile"]).crop_rounding)

    def metric_options(self) -> dict[str, dict[str, Any]]:
        if self.args["profile"] == AS_GIVEN:
            return {}
        return copy.deepcopy(get_profile(self.args["profile"]).metrics)
