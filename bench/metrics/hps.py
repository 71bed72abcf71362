"""Human Preference Score v2: 100 x cosine of the HPS model's image and prompt embeddings, per style and overall.

This is the scoring path of the ``hpsv2`` package's benchmark evaluator, rebuilt on open_clip (so the package
and its pinned dependencies are not needed): open_clip ViT-H-14 whose weights all come from the HPS checkpoint
(``xswu/HPSv2`` on the hub: v2.0 by default, which the SBv2 paper's Table 4 uses; v2.1 selectable; the two are
not comparable), the HPSv2 evaluation transform (resize the longer side to 224 with bicubic interpolation on
the image tensor, zero-pad to a square, CLIP normalisation), float16 autocast on CUDA as hpsv2 runs (float32
on CPU), score = 100 x cosine(image, prompt), averaged per style. hpsv2 averages each style's scores in
chunks of 80 and then the chunk means, which equals the plain mean for the benchmark's 800 prompts per style.
"""

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
    higher_is_better = {"hps": True}
    options = {
        "weights": WEIGHTS_OPTION,
        "version": Option("v2.0", str, tuple(HPS_CHECKPOINTS)),
        "model": Option("ViT-H-14", str),
        "pretrained": Option(None, str, help="open_clip weights loaded before the checkpoint (hpsv2: none needed)"),
        "checkpoint": Option(None, str, help="local HPS checkpoint (default: downloaded from the hub)"),
        "precision": Option("amp", str, ("amp", "fp32"), "amp: float16 autocast on CUDA, as hpsv2 runs"),
        "seed": Option(1, int, minimum=0),
    }

    def scale(self) -> float:
        return 100.0

    def extractor_options(self) -> dict[str, Any]:
        opts = super().extractor_options()
        opts["transform"] = "hps"
        if self.args["weights"] != "random":
            opts["checkpoint"] = self.args["checkpoint"] or self._download_checkpoint()
            opts["version"] = self.args["version"]
        return opts

    def _download_checkpoint(self) -> str:
        from huggingface_hub import hf_hub_download

        from bench.hub_errors import explain_download_failure

        filename = HPS_CHECKPOINTS[self.args["version"]]
        with explain_download_failure(f"HPS {self.args['version']} checkpoint", f"{HPS_REPO}/{filename}",
                                      "download it where there is network (it lands in the Hugging Face cache, "
                                      "HF_HOME) or pass --metric-args hps.checkpoint=PATH"):
            return hf_hub_download(HPS_REPO, filename)
