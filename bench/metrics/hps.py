"""Human Preference Score v2: 100 x cosine of the HPS model's image and prompt embeddings."""

from __future__ import annotations

from typing import Any

from bench.metrics.base import WEIGHTS_OPTION
from bench.metrics.clip_score import _PairedScore
from bench.options import Option

#: HPS checkpoints on the hub (repo xswu/HPSv2); v2.0 is what the SBv2 paper's Table 4 uses.
HPS_CHECKPOINTS = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPS_REPO = "xswu/HPSv2"


class HPS(_PairedScore):
    """HPSv2 score (x 100), overall and per prompt group (style)."""

    name = "hps"
    keys = ("hps",)
    key = "hps"
    scale = 100.0
    options = {
        "weights": WEIGHTS_OPTION,
        "version": Option("v2.0", str, tuple(HPS_CHECKPOINTS)),
        "model": Option("ViT-H-14", str),
        "pretrained": Option("laion2b_s32b_b79k", str),
        "checkpoint": Option(None, str, help="local HPS checkpoint (default: downloaded from the hub)"),
        "seed": Option(1, int),
    }

    def extractor(self) -> dict[str, Any]:
        spec = super().extractor()
        if self.args["weights"] != "random":
            spec["checkpoint"] = self.args["checkpoint"] or self._download_checkpoint()
            spec["version"] = self.args["version"]
        return spec

    def _download_checkpoint(self) -> str:
        from huggingface_hub import hf_hub_download

        from bench.hub_errors import explain_download_failure

        filename = HPS_CHECKPOINTS[self.args["version"]]
        with explain_download_failure(f"HPS {self.args['version']} checkpoint", f"{HPS_REPO}/{filename}",
                                      "or pass --metric-args hps.checkpoint=PATH"):
            return hf_hub_download(HPS_REPO, filename)
