"""Flag metrics whose network was also a training loss of the evaluated model.

A student exported by ``python -m training`` records the networks it was trained against in
``bench_model.json`` (``"losses": [{"loss": "clip", "network": "open_clip", "model": "ViT-B-32", ...},
{"loss": "hps", ...}]``); the generator's ``describe()`` carries the card (``sources.card``) or a top-level
``losses`` list. A metric scoring with the same network is optimised-for, not independent evidence (the SBv2
paper's Table 9 trains with the HPS loss and reports HPS): its ``metric_info`` entry gets ``trained_on: true``
and ``trained_on_loss``, and the printed table marks its keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.metrics.base import Metric


def training_losses(generator_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``losses`` list of a generator's ``describe()`` (top level, else its model card); [] when absent."""
    losses = generator_info.get("losses")
    if losses is None:
        losses = ((generator_info.get("sources") or {}).get("card") or {}).get("losses")
    return [dict(x) for x in losses or [] if isinstance(x, Mapping)]


def matching_loss(metric: Metric, losses: list[dict[str, Any]]) -> str | None:
    """The loss whose network the metric scores with, or None. HPS matches the ``hps`` loss; a CLIP-style score
    matches the ``clip`` loss when its open_clip model is the loss's model."""
    if not losses:
        return None
    from bench.metrics.clip_score import _PairedScore
    from bench.metrics.hps import HPS

    args = metric.args
    for loss in losses:
        kind = loss.get("loss")
        if kind == "hps" and isinstance(metric, HPS):
            return "hps"
        if kind == "clip" and isinstance(metric, _PairedScore) and not isinstance(metric, HPS) \
                and args.get("model") == loss.get("model"):
            return "clip"
    return None


def flag(info: dict[str, Any], metrics: list[Metric], generator_info: Mapping[str, Any]) -> None:
    """Set ``trained_on`` / ``trained_on_loss`` on the ``metric_info`` entries of metrics that match."""
    losses = training_losses(generator_info)
    for metric in metrics:
        hit = matching_loss(metric, losses)
        if hit is not None and metric.name in info:
            info[metric.name]["trained_on"] = True
            info[metric.name]["trained_on_loss"] = hit
