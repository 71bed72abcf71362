"""Metrics whose network was a training loss of the evaluated student are flagged (results.json and table)."""

from __future__ import annotations

from bench.metrics.clip_score import ClipScore
from bench.metrics.hps import HPS
from bench.trained_on import flag, training_losses


def _card(*losses: dict) -> dict:
    return {"weights": "pretrained", "sources": {"card": {"base": "stabilityai/sd-turbo", "losses": list(losses)}}}


def _metrics() -> list:
    hps, clip_b32, clip_g = HPS(weights="random"), ClipScore(model="ViT-B-32"), ClipScore()
    hps.name, clip_b32.name, clip_g.name = "hps", "clip_score", "clip_score_g"
    return [hps, clip_b32, clip_g]


def test_export_records_the_loss_networks():
    from training.config import TrainConfig
    from training.export import training_losses as exported

    assert exported(TrainConfig()) == []
    got = exported(TrainConfig(clip_loss=True, hps_loss=True))
    assert [x["loss"] for x in got] == ["clip", "hps"] and got[0]["model"] == "ViT-B-32"


def test_hps_loss_flags_hps_and_clip_loss_flags_the_same_clip_model_only():
    metrics = _metrics()
    info = {m.name: {} for m in metrics}
    flag(info, metrics, _card({"loss": "hps", "network": "hps"}, {"loss": "clip", "model": "ViT-B-32"}))
    assert info["hps"] == {"trained_on": True, "trained_on_loss": "hps"}
    assert info["clip_score"]["trained_on"] is True and info["clip_score"]["trained_on_loss"] == "clip"
    assert info["clip_score_g"] == {}


def test_no_losses_no_flags():
    metrics = _metrics()
    info = {m.name: {} for m in metrics}
    flag(info, metrics, {"weights": "random", "sources": {}})
    assert all(v == {} for v in info.values())
    assert training_losses({"losses": [{"loss": "hps"}]}) == [{"loss": "hps"}]


def test_table_marks_trained_on_keys(smoke_run):
    import copy

    from bench.report import results_table

    res = copy.deepcopy(smoke_run["results"])
    res["metric_info"]["hps"]["trained_on"] = True
    table = results_table(res)
    assert any(line.strip().startswith("hps ") and "network used in training" in line for line in table.splitlines())
    assert not any(line.strip().startswith("fid ") and "training" in line for line in table.splitlines())
