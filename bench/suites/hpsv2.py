"""``hpsv2``: the HPSv2 benchmark, 4 styles x 800 prompts, scored with the HPS model, per style and averaged.

Prompts: ``anime.json``, ``concept-art.json``, ``paintings.json`` and ``photo.json`` (each a JSON list of
prompt strings), from the folder given by ``--prompts DIR`` (suite option ``prompts``) or
``$BENCH_HPSV2_PROMPTS``, else downloaded from the hub dataset ``zhwang/HPDv2`` (``benchmark/<style>.json``)
into the Hugging Face cache.

Layout: prompt ``i`` of style ``s`` is written to ``images/<s>/{i:05d}.jpg``, which is the layout the
``hpsv2`` package's own evaluator reads (point it at the run's ``images/`` folder together with the prompt
folder). Samples are interleaved across styles (sample ``k`` is prompt ``k // 4`` of style ``k % 4``), so
``--limit N`` gives an equal share of every style. JPEG quality is PIL's default, 75 (what saving with
``image.save(path)`` gives, as the hpsv2 instructions do); ``--suite-args jpeg_quality=Q`` changes it.

Protocol profile (option ``profile``, :mod:`bench.profiles`): ``sbv2-release`` by default, which scores with
HPS v2.1 as the release's eval/hps.py did (``hpsv2.evaluate``'s default); ``profile=clean`` uses v2.0, the
version of the HPSv2 paper's table (and of the rows the SBv2 paper copied from it).

Scoring reads the decoded JPEG, like hpsv2: images are scored after the JPEG round trip, never from the
uncompressed generator output. The HPS model's own transform (longer side resized to 224, zero-padded to a square) is the only
preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.metrics.preprocess import Preprocess
from bench.options import Option
from bench.profiles import override_issues
from bench.suites.base import PromptItem
from bench.suites.profile_suite import ProfiledSuite

STYLES = ("anime", "concept-art", "paintings", "photo")
PROMPTS_PER_STYLE = 800
HPSV2_PROMPTS_ENV = "BENCH_HPSV2_PROMPTS"
HUB_DATASET = "zhwang/HPDv2"
HUB_SUBFOLDER = "benchmark"


def hub_prompt_files() -> str:
    return ", ".join(f"{HUB_SUBFOLDER}/{s}.json" for s in STYLES)


def download_prompt_files() -> Path:
    """Fetch the four prompt files from the hub (or its cache); returns the folder holding them."""
    from huggingface_hub import hf_hub_download

    from bench.hub_errors import explain_download_failure

    paths = []
    with explain_download_failure("the HPSv2 benchmark prompts", f"dataset {HUB_DATASET} files {hub_prompt_files()}",
                                  "download them where there is network (they land in the Hugging Face cache), or "
                                  "pass --prompts DIR holding the four files"):
        for style in STYLES:
            paths.append(Path(hf_hub_download(HUB_DATASET, f"{style}.json", subfolder=HUB_SUBFOLDER,
                                              repo_type="dataset")))
    return paths[0].parent


def read_style_prompts(folder: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{style: [prompt, ...]}`` from ``<folder>/<style>.json`` (JSON lists of strings)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BenchError(f"HPSv2 prompt folder {folder} does not exist; it must hold "
                         f"{', '.join(s + '.json' for s in STYLES)}")
    out = {}
    for style in STYLES:
        path = folder / f"{style}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BenchError(f"HPSv2 prompt file {path} is missing; the folder must hold "
                             f"{', '.join(s + '.json' for s in STYLES)}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BenchError(f"HPSv2 prompt file {path} is unreadable ({exc}); replace it with a JSON list of "
                             "prompts") from exc
        if not isinstance(data, list) or not data or not all(isinstance(x, str) for x in data):
            raise BenchError(f"HPSv2 prompt file {path} must be a non-empty JSON list of strings")
        out[style] = data
    return out


class HPSv2Suite(ProfiledSuite):
    """HPSv2 benchmark prompts, JPEG images in the hpsv2 layout, the ``hps`` metric per style."""

    name = "hpsv2"
    options = {
        **ProfiledSuite.options,
        "prompts": Option(None, str, help=f"folder with <style>.json files (default: ${HPSV2_PROMPTS_ENV}, else "
                                          f"the hub dataset {HUB_DATASET})"),
        "jpeg_quality": Option(75, int, help="JPEG quality of the saved (and scored) images", minimum=1, maximum=100),
    }
    location_options = ("prompts",)
    default_metrics = ("hps",)
    image_format = "jpg"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not 1 <= self.args["jpeg_quality"] <= 100:
            raise BenchError(f"suite hpsv2: jpeg_quality must be 1..100, got {self.args['jpeg_quality']}")
        self.jpeg_quality = self.args["jpeg_quality"]
        self._items: list[PromptItem] | None = None
        self._where: dict[int, tuple[str, int]] = {}
        self._counts: dict[str, int] = {}
        self._folder: Path | None = None

    def prompt_folder(self) -> Path:
        if self._folder is None:
            given = self.args["prompts"] or os.environ.get(HPSV2_PROMPTS_ENV)
            self._folder = Path(given).expanduser() if given else download_prompt_files()
        return self._folder

    def location_args(self) -> dict[str, Any]:
        return {"prompts": str(self.prompt_folder())}

    def prompts(self) -> list[PromptItem]:
        if self._items is None:
            by_style = read_style_prompts(self.prompt_folder())
            self._counts = {s: len(p) for s, p in by_style.items()}
            order = sorted(((i, k, s) for k, s in enumerate(STYLES) for i in range(len(by_style[s]))))
            items = []
            for index, (i, _k, style) in enumerate(order):
                items.append(PromptItem(index, by_style[style][i], style))
                self._where[index] = (style, i)
            self._items = items
        return self._items

    def check_data(self, needs_reference: bool) -> None:
        self.prompts()

    def image_path(self, index: int) -> str:
        self.prompts()
        style, i = self._where[index]
        return f"images/{style}/{i:05d}.jpg"

    def preprocess(self) -> Preprocess:
        return Preprocess(size=None, center_crop=False)

    def comparability_issues(self, metric_overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        self.prompts()
        odd = {s: n for s, n in self._counts.items() if n != PROMPTS_PER_STYLE}
        issues = [f"prompt counts {odd} differ from the benchmark's {PROMPTS_PER_STYLE} per style"] if odd else []
        return issues + override_issues(self.profile, metric_overrides)

    def protocol(self) -> dict[str, Any]:
        items = self.prompts()
        digest = hashlib.sha256("\n".join(f"{it.group}\t{it.prompt}" for it in items).encode()).hexdigest()
        return {**super().protocol(), "styles": dict(self._counts), "prompts_sha256": digest,
                "layout": "images/<style>/{i:05d}.jpg (hpsv2 evaluator layout)"}
