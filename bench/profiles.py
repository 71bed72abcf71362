"""Protocol profiles: every setting of a published evaluation, as data.

A profile is chosen with the suite option ``profile`` (``--suite-args profile=NAME``; coco30k and hpsv2), so
it is recorded in config.json and results.json and is part of a run's identity. It fixes the prompt list, the
evaluation crop and each metric's options (through the suite's ``metric_options()``); a run is comparable only
when it uses its profile in full (see :func:`override_issues` and the suites' ``comparability_issues``).

* ``sbv2-release`` (default): the SwiftBrush v2 evaluation release, step by step, *including its quirks*.
  A quirk is something the release does that we would not recommend; it is replicated so that numbers can be
  set beside the paper's, and each one is named in ``quirks`` (and recorded in config.json) so that nobody
  mistakes it for a recommendation.
* ``clean``: the same pipeline with the quirks fixed (RGB features, exact distances, consistent crop offset,
  the HPS version of the HPSv2 paper's published table). Not comparable with the release's numbers.
* ``sbv2-paper``: ``sbv2-release`` with HPS v2.0, the version of the numbers the paper's Table 4 prints (its
  rows copied from the HPSv2 README are v2.0; the release's script ran v2.1). Everything else, quirks included,
  is the release's. ``bench reproduce table4`` runs under it.
* ``dmd2``: DMD2's ``coco_eval``: its own 30,000-caption list; its CLIP score is the release's (open_clip
  ViT-g-14 laion2b_s12b_b42k in float32, "A photo depicts " + caption, 256 px Lanczos after torchvision's
  centre crop). DMD2 computes FID and CLIP only; every other setting follows ``sbv2-release``.

This module is plain data (no heavy imports): ``python -m bench list profiles`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.errors import BenchError

DEFAULT_PROFILE = "sbv2-release"

#: Quirks of the release, by id: what the release does and why it is not a recommendation.
QUIRKS: dict[str, str] = {
    "crop-offset-round-half-even": (
        "centre crop offset = int(round((long - short) / 2)) as torchvision's center_crop computes it; Python "
        "rounds halves to even, so the crop sits 1 px further right/down than floor((long - short) / 2) when "
        "(long - short) % 4 == 3 and not when it is 1 (an inconsistent convention; affects COCO references)"),
    "pr-bgr-channels": (
        "precision/recall images are read with cv2.imread (BGR) and fed to an RGB-trained Inception network"),
    "pr-fp16-distances": (
        "precision/recall pairwise squared distances in float16 (norm_u - 2 U V^T + norm_v, clamped at 0; "
        "float32 only for a 10,000 x 10,000 block that overflows), so decisions near a radius are decided by "
        "float16 rounding; the radius is the (k+1)-th smallest of a row that includes the self distance"),
    "hps-v2.1-vs-paper-v2.0": (
        "eval/hps.py calls hpsv2.evaluate, whose default in hpsv2 1.2.0 is HPS v2.1, while the paper's rows "
        "copied from the HPSv2 README are v2.0 (the two scales are not comparable)"),
}


@dataclass(frozen=True)
class Profile:
    """Every setting of one protocol. ``metrics``: per-metric options, as ``--metric-args`` would give them."""

    name: str
    summary: str
    prompts: str
    num_prompts: int
    crop_rounding: str
    metrics: dict[str, dict[str, Any]]
    quirks: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def settings(self) -> dict[str, Any]:
        """Every setting as a flat ``{name: value}`` (``metric.option`` for metric options)."""
        out: dict[str, Any] = {"prompts": self.prompts, "num_prompts": self.num_prompts,
                               "eval_crop_rounding": self.crop_rounding}
        for metric, opts in self.metrics.items():
            out.update({f"{metric}.{k}": v for k, v in opts.items()})
        return out

    def record(self) -> dict[str, Any]:
        """What config.json and results.json record under ``protocol.profile``."""
        return {"name": self.name, "settings": self.settings(),
                "quirks": [f"{q}: {QUIRKS[q]}" for q in self.quirks], "notes": list(self.notes)}


_CLIP = {"model": "ViT-g-14", "pretrained": "laion2b_s12b_b42k", "prefix": "A photo depicts ", "precision": "fp32"}
#: Options that only change how a value is displayed: overriding them keeps a run comparable.
DISPLAY_OPTIONS = {"clip_score": ("percent",)}
_IS = {"variant": "torch-fidelity", "splits": 10}
_RELEASE_PR = {"features": "inception_tf1", "channels": "bgr", "distances": "fp16-adm", "k": 3}
_RELEASE_NOTES = (
    "prompts: the first 30,000 entries of the release's dataset.json in file order, captions exactly as stored "
    "(trailing spaces kept; the CLIP tokenizers strip them)",
    "FID: clean-fid 'clean' mode on the 256 px images, reference = all 40,504 val2014 images",
    "CLIP score: open_clip ViT-g-14 laion2b_s12b_b42k in float32 (model.float()), 'A photo depicts ' + caption",
    "precision/recall: ADM evaluator: Inception 2015-12-05 pool_3 after the graph's TF1 bilinear resize to 299, "
    "k = 3, inside when <=",
    "Inception Score: torch-fidelity (TF1 bilinear resize, logits without bias, 10 splits, shuffled with seed 2020)",
    "generation noise (set_seed(0) then one randn per prompt in order) is not reproduced: it depends on the device",
)

_RELEASE = Profile(
    name="sbv2-release",
    summary="the SwiftBrush v2 evaluation release step by step, quirks included (default)",
    prompts="sbv2", num_prompts=30_000, crop_rounding="round",
    metrics={"clip_score": dict(_CLIP), "precision_recall": dict(_RELEASE_PR), "inception_score": dict(_IS),
             "hps": {"version": "v2.1"}},
    quirks=("crop-offset-round-half-even", "pr-bgr-channels", "pr-fp16-distances", "hps-v2.1-vs-paper-v2.0"),
    notes=_RELEASE_NOTES,
)

PROFILES: dict[str, Profile] = {
    "sbv2-release": _RELEASE,
    "clean": Profile(
        name="clean",
        summary="the release's pipeline with its quirks fixed (RGB, exact distances, floor crop offset, HPS v2.0)",
        prompts="sbv2", num_prompts=30_000, crop_rounding="floor",
        metrics={"clip_score": dict(_CLIP),
                 "precision_recall": {"features": "inception", "channels": "rgb", "distances": "exact", "k": 3},
                 "inception_score": dict(_IS), "hps": {"version": "v2.0"}},
        notes=("crop offset floor((long - short) / 2) for every size",
               "precision/recall on the clean-fid Inception features FID uses (RGB, PIL bicubic to 299), decisions "
               "of exact arithmetic",
               "HPS v2.0, the version of the HPSv2 paper's published table"),
    ),
    "sbv2-paper": replace(
        _RELEASE, name="sbv2-paper",
        summary="sbv2-release with HPS v2.0: the version of the HPS numbers the paper's Table 4 prints",
        metrics={**_RELEASE.metrics, "hps": {"version": "v2.0"}},
        quirks=tuple(q for q in _RELEASE.quirks if q != "hps-v2.1-vs-paper-v2.0"),
        notes=(*_RELEASE_NOTES, "HPS v2.0 (the paper's Table 4 scale) instead of the release script's v2.1"),
    ),
    # DMD2 releases FID and CLIP only, with the release's CLIP settings: everything but the prompts is the release's
    "dmd2": replace(
        _RELEASE, name="dmd2", prompts="dmd2",
        summary="DMD2's coco_eval: its 30,000-caption list; CLIP as the release; other metrics as sbv2-release",
        notes=("prompts: DMD2's captions_coco14_test.txt, line i without its line break",
               "CLIP score: DMD2 tokenizes the caption with OpenAI CLIP's tokenizer and splices in the tokens of "
               "'A photo depicts ' (truncated to 77, EOT last), which gives the tokens of the joined text",
               "DMD2 releases FID and CLIP only: precision/recall, IS and HPS follow sbv2-release"),
    ),
}


#: ``bench score``'s profile for images as they are (clean-fid's ``compute_fid(dir1, dir2)``), beside the protocols.
AS_GIVEN = "clean-fid"
SCORE_PROFILES = (AS_GIVEN, *PROFILES)


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise BenchError(f"unknown protocol profile {name!r}; use one of {', '.join(PROFILES)}")
    return PROFILES[name]


def override_issues(profile: Profile, metric_overrides: dict[str, dict[str, Any]] | None,
                    metrics: tuple[str, ...] | None = None) -> list[str]:
    """One reason per ``--metric-args`` option that departs from ``profile`` (all, unless it restates the
    profile's own value). ``metrics``: only these metrics matter (None: all)."""
    issues = []
    for metric, opts in sorted((metric_overrides or {}).items()):
        if metrics is not None and metric not in metrics:
            continue
        fixed = profile.metrics.get(metric, {})
        for key, value in sorted(opts.items()):
            if key in DISPLAY_OPTIONS.get(metric, ()) or (
                key in fixed and str(value).lower() == str(fixed[key]).lower()
            ):
                continue
            issues.append(f"metric option {metric}.{key}={value} overrides the {profile.name} profile")
    return issues


def listing() -> list[dict[str, Any]]:
    """Rows for ``bench list profiles``."""
    return [{"name": p.name, "description": p.summary, "default": p.name == DEFAULT_PROFILE, **p.record()}
            for p in PROFILES.values()]
