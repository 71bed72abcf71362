"""Test-wide settings: never touch the network, keep caches inside the test session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bench import hookimpl  # noqa: E402
from bench.metrics.base import FeatureSpec, Metric, MetricContext, MetricResult  # noqa: E402
from bench.metrics.extractors import Extractor  # noqa: E402
from bench.options import Option  # noqa: E402

#: The generic fixtures (cache directories, registry reset, in-memory plug-ins, one torch thread) ship with the
#: package for plug-in authors too: :mod:`bench.testing`.
pytest_plugins = ["bench.testing"]


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(bench_session_cache_dir: Path) -> Path:
    """One cache directory per test session (reference features, generated reference sets)."""
    return bench_session_cache_dir


@pytest.fixture(autouse=True)
def _fresh_plugins(bench_fresh_registry):
    """Each test starts from the built-in registries, whatever the previous test registered."""
    yield


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's first command (tiny method, smoke suite), run once through the CLI for the session."""
    from bench.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--method", "tiny", "--suite", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    run_dir = out / "smoke-tiny"
    return {"dir": run_dir, "results": json.loads((run_dir / "results.json").read_text())}


# -- tiny stand-ins for the suites' real data ---------------------------------------------------------------
COCO_IMAGES = 12


def write_coco_root(root: Path, n_images: int = COCO_IMAGES, zipped: bool = False) -> Path:
    """A COCO-2014-like root: annotations/captions_val2014.json and val2014/*.jpg (or the two official zips).

    Images are small non-square JPEGs; each has 2-3 captions (one with messy white space, plus an empty one).
    """
    import io
    import zipfile

    from PIL import Image

    from bench.suites.smoke import draw_reference_image

    root.mkdir(parents=True, exist_ok=True)
    images, annotations, files = [], [], {}
    words = ["cat", "dog", "bus", "kite", "pizza", "train", "horse", "clock", "boat", "bench", "zebra", "vase"]
    for k in range(n_images):
        image_id = 1000 + 7 * k
        name = f"COCO_val2014_{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": name, "height": 40, "width": 48})
        pixels = draw_reference_image(k, size=48)[:40]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        files[f"val2014/{name}"] = buf.getvalue()
        word = words[k % len(words)]
        annotations += [
            {"image_id": image_id, "id": 50_000 + 3 * k, "caption": f"A {word} on a table. "},
            {"image_id": image_id, "id": 50_001 + 3 * k, "caption": f"  a   photo of a\n{word} outside"},
            {"image_id": image_id, "id": 50_002 + 3 * k, "caption": "   "},
        ]
    ann = json.dumps({"info": {}, "images": images, "licenses": [], "annotations": annotations}).encode()
    if zipped:
        with zipfile.ZipFile(root / "annotations_trainval2014.zip", "w") as zf:
            zf.writestr("annotations/captions_val2014.json", ann)
        with zipfile.ZipFile(root / "val2014.zip", "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / "captions_val2014.json").write_bytes(ann)
        (root / "val2014").mkdir(exist_ok=True)
        for name, data in files.items():
            (root / name).write_bytes(data)
    return root


def write_hpsv2_prompts(folder: Path, per_style: int = 3) -> Path:
    """``<style>.json`` files in the HPSv2 benchmark format (a JSON list of prompt strings per style)."""
    folder.mkdir(parents=True, exist_ok=True)
    for style in ("anime", "concept-art", "paintings", "photo"):
        prompts = [f"{style} picture number {i} of a lighthouse at dusk" for i in range(per_style)]
        (folder / f"{style}.json").write_text(json.dumps(prompts))
    return folder


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO-like root folder (12 images) shared by the session; tests must not modify it."""
    return write_coco_root(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="session")
def coco_zip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same data as ``coco_root``, as the two official zip files."""
    return write_coco_root(tmp_path_factory.mktemp("coco-zips"), zipped=True)


@pytest.fixture(scope="session")
def hpsv2_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of fake HPSv2 prompt files, 3 prompts per style."""
    return write_hpsv2_prompts(tmp_path_factory.mktemp("hpsv2-prompts"))


@pytest.fixture
def make_coco_root():
    """``make_coco_root(path, n_images=12, zipped=False)``: write a fresh COCO-like root (for tests that damage it)."""
    return write_coco_root


# -- a toy metric: the engine's tests need a scorer, not Inception on a CPU -------------------------------------
class ToyExtractor(Extractor):
    """8 x 8 colour thumbnails projected to 12 dimensions by a seeded random matrix."""

    kind = "toy"

    def build(self) -> Any:
        return np.random.default_rng(self.seed).standard_normal((8 * 8 * 3, 12))

    def forward(self, images: np.ndarray) -> np.ndarray:
        b, h, w, _ = images.shape
        thumbs = images.reshape(b, 8, h // 8, 8, w // 8, 3).mean(axis=(2, 4)) / 255.0
        return thumbs.reshape(b, -1) @ self.model


class ToyFID(Metric):
    name = "toy_fid"
    keys = ("toy_fid",)
    options = {"seed": Option(0, int)}

    def spec(self) -> FeatureSpec:
        return FeatureSpec("toy", {"weights": "random", "seed": self.args["seed"]})

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def compute(self, ctx: MetricContext) -> MetricResult:
        from bench.metrics.fid import feature_statistics, frechet_distance

        gen = ctx.image_features(self.spec(), "generated")
        ref = ctx.image_features(self.spec(), "reference")
        value = frechet_distance(*feature_statistics(gen), *feature_statistics(ref))
        return MetricResult({"toy_fid": value, "toy_mean": float(gen.mean())},
                            {"weights": "random", "comparable": False})


class ToyPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("toy_fid", ToyFID, description="test metric")

    @hookimpl
    def register_feature_extractors(self, register):
        register("toy", ToyExtractor, description="test network")


def use_toy() -> None:
    """Register the toy metric and its feature extractor in this process (through the plug-in hooks)."""
    from bench import plugins

    if "toy_fid" not in plugins.current().metrics:
        plugins.register_plugin(ToyPlugin(), name="toy")


@pytest.fixture
def toy():
    """The toy metric ``toy_fid`` registered for the test (see :func:`use_toy`)."""
    use_toy()
    yield


# -- the offline toy hub: toy-size models under the real hub ids ----------------------------------------------
@pytest.fixture(scope="session")
def toy_hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face hub cache holding every generator repository at toy size (:mod:`bench.toy_hub`)."""
    from bench.toy_hub import build

    cache = tmp_path_factory.mktemp("toy-hub")
    build(cache)
    return cache


@pytest.fixture
def on_toy_hub(toy_hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test reads models from the toy hub by their real ids, offline (the hub client, transformers and
    diffusers all take the cache folder from huggingface_hub.constants when they are called)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(toy_hub_cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(toy_hub_cache))
    return toy_hub_cache
