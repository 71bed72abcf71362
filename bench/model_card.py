"""``bench_model.json``: the card a student directory carries, read and written in one place.

The training module writes it next to an exported student; ``sbv2`` reads it to pair the student with its base
networks. Keys: ``base`` (``"tiny"`` or a hub id / directory of the frozen networks), ``base_seed``, and what
the trainer records (``alpha_T``: the x0 constant the student was trained with, ``prediction_type``, ``losses``,
...). Unknown keys are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError

CARD_NAME = "bench_model.json"
SD_TURBO = "stabilityai/sd-turbo"
#: Training settings that say which model a student is (its ``recipe``): what the paper's rows differ in.
#: Prompts, steps and hardware settings are left out: they change how well a recipe was followed, not which.
RECIPE_FIELDS = ("preset", "teacher", "student_init", "student_mode", "lora_teacher", "clip_loss", "clip_tau",
                 "clip_schedule", "loss_decoder", "hps_loss", "image_reg")


def recipe_matches(recipe: Any, expected: Any) -> bool:
    """Whether a card's ``recipe`` is ``expected``: every expected setting equal (values compared as lower-case
    text, so ``False`` equals ``"false"``); a merge recipe ``{"merge": {"lambda", "a", "b"}}`` compares lambda as
    a number and both parents recursively."""
    if not isinstance(recipe, dict) or not isinstance(expected, dict):
        return False
    if "merge" in expected:
        got, want = recipe.get("merge"), expected["merge"]
        if not isinstance(got, dict):
            return False
        try:
            same_lambda = float(got.get("lambda")) == float(want["lambda"])
        except (TypeError, ValueError):
            return False
        return same_lambda and recipe_matches(got.get("a"), want["a"]) and recipe_matches(got.get("b"), want["b"])
    return all(str(recipe.get(k)).lower() == str(v).lower() for k, v in expected.items())


def read_model_card(directory: str | Path) -> dict[str, Any]:
    """The card of a student directory (``{}`` when it has none); a damaged card, or a known key of the wrong
    type, is a one-line error. Known keys whose value is null are left out (they read as absent)."""
    card = Path(directory) / CARD_NAME
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{card} is not valid JSON ({exc}); rewrite it, e.g. {{\"base\": \"{SD_TURBO}\"}}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{card} must hold a JSON object such as {{\"base\": \"{SD_TURBO}\"}}")
    for key, kinds, what in _FIELDS:
        value = data.get(key)
        if value is None:
            data.pop(key, None)  # null reads as absent: readers fall back to their defaults
        elif not isinstance(value, kinds) or isinstance(value, bool):
            raise BenchError(f"{card}: {key!r} is {json.dumps(value)}, not {what}; rewrite it, e.g. "
                             f"{{\"base\": \"{SD_TURBO}\", \"base_seed\": 0}}")
    return data


#: Keys that readers use, with their JSON types: (key, Python types, in words).
_FIELDS = (("base", str, "a hub id or directory"), ("base_seed", int, "an integer"),
           ("alpha_T", int | float, "a number"), ("prediction_type", str, "text"))


def card_base_seed(card: dict[str, Any], directory: str | Path, default: int = 0) -> int:
    """The card's ``base_seed``: the seed of a toy base's random weights. ``null`` (what a student of a hub base
    records: its base has no seed) or no key gives ``default``; anything but an integer is a one-line error."""
    value = card.get("base_seed")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BenchError(f"{Path(directory) / CARD_NAME}: base_seed must be an integer or null, not {value!r}")
    return value


def write_model_card(directory: str | Path, card: dict[str, Any] | None = None, **fields: Any) -> Path:
    """Write ``card`` updated with ``fields`` (e.g. ``base="tiny", base_seed=3``) into ``directory``."""
    path = Path(directory) / CARD_NAME
    data = {**(card or {}), **fields}
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
