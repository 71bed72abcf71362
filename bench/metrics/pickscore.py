"""PickScore (Kirstain et al. 2023): a CLIP-H reward model fine-tuned on Pick-a-Pic preferences.

The published inference path: ``yuvalkirstain/PickScore_v1`` as a transformers ``CLIPModel``, the processor
of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (shortest side to 224 with PIL bicubic, centre crop, CLIP
normalisation; text padded and truncated to 77 tokens), score = ``logit_scale.exp()`` x cosine(image, prompt)
(about 20-23 for good images). Reported as the mean over samples, and per group.
"""

from __future__ import annotations

from typing import Any

from bench.metrics.base import WEIGHTS_OPTION, FeatureSpec, MetricContext, MetricResult
from bench.metrics.clip_score import _PairedScore, group_means, paired_cosine
from bench.metrics.preprocess import Preprocess
from bench.options import Option

PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


class PickScore(_PairedScore):
    """PickScore: logit_scale x cosine between each image and its prompt (mean, and per group)."""

    name = "pickscore"
    keys = ("pickscore",)
    higher_is_better = {"pickscore": True}
    options = {"weights": WEIGHTS_OPTION, "seed": Option(0, int, minimum=0), "repo": Option(PICKSCORE_REPO, str),
               "processor": Option(PICKSCORE_PROCESSOR, str),
               "size": Option("full", str, ("full", "tiny"), "tiny: toy-size CLIP (random weights, tests)")}

    def hub_repos(self) -> tuple[str, ...]:
        return (self.args["repo"], self.args["processor"])

    def spec(self) -> FeatureSpec:
        opts = {"weights": self.args["weights"], "seed": self.args["seed"], "repo": self.args["repo"],
                "processor": self.args["processor"], "resize": "processor", "size": self.args["size"]}
        return FeatureSpec("hf_clip", opts, transform=Preprocess(size=None, center_crop=False))

    def compute(self, ctx: MetricContext) -> MetricResult:
        spec = self.spec()
        img = ctx.image_features(spec, "generated")
        txt = ctx.text_features(spec, list(ctx.prompts))
        scale = float(ctx.extractor(spec).logit_scale)
        scores = paired_cosine(img, txt) * scale
        values = {"pickscore": float(scores.mean())}
        values.update({f"pickscore/{g}": v for g, v in group_means(scores, ctx.groups).items()})
        info: dict[str, Any] = {"repo": self.args["repo"], "processor": self.args["processor"], "scale": scale,
                                "n": len(scores)}
        return MetricResult(values, self._info(**info))
