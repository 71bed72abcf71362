"""Reference statistics files (mean and covariance of reference features): written with their provenance,
read with it checked.

Format: clean-fid's ``.npz`` (``mu``: D, ``sigma``: D x D, float64), which clean-fid reads as custom statistics,
plus ``bench_provenance``, a JSON string: the feature network (``{"kind": "inception", "weights": ..., "seed": ...,
"mode": "clean"}``), the evaluation transform, the image count and the source's content fingerprint.

What is accepted as a reference:

* a file this project wrote: its network must be the metric's (same weights and seed) and its transform is
  applied to the generated images too;
* a file clean-fid wrote (``make_custom_stats`` or its downloaded statistics), recognised by clean-fid's file name
  ``<name>_<mode>[_<model>]_<split>_<res>.npz``: only mode ``clean`` with the Inception network (``inception_v3``,
  no model part in the name), only against pretrained weights, images as given (clean-fid's own resize only);
* never the statistics stored in an ADM evaluator batch (``arr_0`` with ``mu``/``sigma``): those come from the
  TensorFlow graph after its own bilinear resize, not from clean-fid's features; pass such a batch as an image set
  (``bench score A BATCH.npz``) and its images are scored instead.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.metrics.preprocess import Preprocess

PROVENANCE_KEY = "bench_provenance"
#: clean-fid's statistics file names: ``{name}_{mode}{_model}_{split}_{res}.npz``, lower case.
CLEANFID_NAME = re.compile(r"(?P<name>.+)_(?P<mode>clean|legacy_pytorch|legacy_tensorflow)(?P<model>_clip_vit_b_32)?"
                           r"_(?P<split>[a-z0-9]+)_(?P<res>[a-z0-9]+)")


@dataclass
class ReferenceStats:
    """Mean, covariance, and where they came from: the network spec and the transform their images got."""

    mu: np.ndarray
    sigma: np.ndarray
    network: dict[str, Any]
    transform: Preprocess
    provenance: dict[str, Any]


def _transform_from(record: dict[str, Any]) -> Preprocess:
    return Preprocess(size=record.get("size"), center_crop=bool(record.get("center_crop", True)),
                      resample=str(record.get("resample", "lanczos")),
                      crop_rounding=str(record.get("crop_rounding", "floor")))


def write_stats(path: str | Path, features: np.ndarray, network: dict[str, Any], transform: Preprocess,
                source: dict[str, Any]) -> dict[str, Any]:
    """Write ``mu``/``sigma`` of ``features`` with their provenance (clean-fid can read the file as it is)."""
    from bench.metrics.fid import feature_statistics

    mu, sigma = feature_statistics(features)
    provenance = {"format": "sbv2-bench/reference-stats/v1", "network": network, "transform": transform.as_dict(),
                  "count": int(len(features)), "source": source}
    p = Path(path).expanduser()
    if p.suffix != ".npz":
        raise BenchError(f"{p}: statistics are written as .npz (clean-fid's format); name the file *.npz")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, mu=mu, sigma=sigma, **{PROVENANCE_KEY: np.array(json.dumps(provenance, sort_keys=True))})
    return provenance


def read_stats(path: str | Path, network: dict[str, Any]) -> ReferenceStats:
    """Statistics from ``path`` for a metric whose network spec is ``network``; one line when their provenance
    does not fit (see the module docstring)."""
    p = Path(path).expanduser()
    try:
        with np.load(p, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BenchError(f"{p} is not a readable statistics file ({exc}); give a .npz with mu and sigma") from exc
    if "mu" not in data or "sigma" not in data:
        raise BenchError(f"{p} has no mu and sigma (it holds {', '.join(data) or 'nothing'}); a batch of images is "
                         "a reference set: bench score A BATCH.npz")
    if "arr_0" in data:
        raise BenchError(f"{p} is an ADM evaluator batch: its mu/sigma come from the TensorFlow Inception graph after "
                         "its own bilinear resize, not clean-fid's features; score against its images instead: "
                         f"bench score A {p}")
    mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size) or not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise BenchError(f"{p}: mu {mu.shape} and sigma {sigma.shape} are not a finite mean and its covariance")
    if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-8 * float(np.abs(sigma).max() or 1.0)):
        raise BenchError(f"{p}: sigma is not symmetric, so it is not a covariance; the file is damaged")
    if PROVENANCE_KEY in data:
        record = json.loads(str(data[PROVENANCE_KEY]))
        if record.get("network") != network:
            raise BenchError(f"{p} was computed with the network {record.get('network')}, this metric uses {network}; "
                             "set the metric's weights/seed to match, or export the statistics again")
        return ReferenceStats(mu, sigma, network, _transform_from(record.get("transform") or {}),
                              {"file": str(p), "written_by": "sbv2-bench", **record})
    hit = CLEANFID_NAME.fullmatch(p.stem.lower())
    if hit is None:
        raise BenchError(f"{p} has no provenance: neither written by `bench score --export-stats` nor named as clean-fid "
                         "names its statistics (<name>_clean_custom_na.npz); its network and resize are unknown")
    if hit["mode"] != "clean" or hit["model"]:
        raise BenchError(f"{p} holds clean-fid {hit['mode']} statistics{' of ' + hit['model'][1:] if hit['model'] else ''}"
                         "; only mode clean with inception_v3 uses the features of this project's FID")
    if network.get("weights") != "pretrained" or mu.size != 2048:
        raise BenchError(f"{p} holds clean-fid statistics of the pretrained Inception network (2048-d); this metric "
                         f"uses {network} ({mu.size}-d statistics given)")
    return ReferenceStats(mu, sigma, network, Preprocess(size=None, center_crop=False),
                          {"file": str(p), "written_by": "clean-fid", "name": hit["name"], "split": hit["split"],
                           "res": hit["res"], "mode": hit["mode"]})


def write_batch(path: str | Path, source: Any, transform: Preprocess, provenance: dict[str, Any]) -> int:
    """Write ``source``'s images, through ``transform``, as an ADM evaluator reference batch: ``arr_0`` (uint8
    N x H x W x 3, uncompressed, written image by image so memory stays one image) plus ``bench_provenance``.
    The images must come out of the transform at one size. Returns the image count."""
    import tempfile

    p = Path(path).expanduser()
    if p.suffix != ".npz":
        raise BenchError(f"{p}: a sample batch is an .npz file; name it *.npz")
    names = list(source.names)
    first = transform(source.read(names[0]).pixels)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=p.parent, prefix=".batch-") as tmp:
        npy = Path(tmp) / "arr_0.npy"
        out = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(names), *first.shape))
        for i, name in enumerate(names):
            img = first if i == 0 else transform(source.read(name).pixels)
            if img.shape != first.shape:
                raise BenchError(f"{name} is {img.shape[1]}x{img.shape[0]} after the transform, the first image "
                                 f"{first.shape[1]}x{first.shape[0]}; a batch holds one size: use a profile that "
                                 "resizes (--profile sbv2-release)")
            out[i] = img
        out.flush()
        del out
        record = json.dumps({**provenance, "transform": transform.as_dict(), "count": len(names)}, sort_keys=True)
        with zipfile.ZipFile(Path(tmp) / "batch.npz", "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.write(npy, "arr_0.npy")
            buf = io.BytesIO()
            np.save(buf, np.array(record))
            zf.writestr(PROVENANCE_KEY + ".npy", buf.getvalue())
        Path(tmp, "batch.npz").replace(p)
    return len(names)
