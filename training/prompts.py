"""Prompt datasets (the method is image-free) and a deterministic, resumable batch order.

Accepted files, optionally gzip-compressed (``.gz``): plain text (one prompt per line), JSONL (one object per
line), JSON (a list of strings or objects), CSV and TSV with a header. For JSON(L)/CSV the prompt is taken from
``prompt_field`` or, by default, the first of the columns ``prompt``, ``caption``, ``text`` (any case) -- the
names JourneyDB and LAION exports use. Several files are concatenated in order, whitespace is normalised and
exact duplicates are dropped (first occurrence kept). The order of training is a pure function of
``(seed, step)``: epoch ``e`` visits the prompts in the order of a permutation seeded by ``(seed, e)``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from methods.components import TOKEN_LIMIT, count_truncated  # noqa: F401 - shared with generation
from training.config import DEMO_PROMPTS

DEFAULT_FIELDS = ("prompt", "caption", "text")

_DEMO = [
    "a photo of a red fox in the snow",
    "an astronaut riding a horse on the moon, digital art",
    "a bowl of ramen with a soft-boiled egg, studio lighting",
    "a watercolor painting of a lighthouse at dawn",
    "a cozy reading nook with a cat asleep on a pile of books",
    "a futuristic city skyline at night, neon reflections in the rain",
    "a close-up portrait of an old fisherman, film photograph",
    "a field of sunflowers under a stormy sky",
    "a cute robot watering plants in a greenhouse",
    "an oil painting of a ship in a storm",
    "a macro photo of a dew drop on a leaf",
    "a medieval castle on a cliff above the sea",
    "a plate of colorful macarons on a marble table",
    "a koala wearing sunglasses, anime style",
    "a mountain lake reflecting snowy peaks",
    "a steaming cup of coffee next to an open notebook",
]


def demo_prompts() -> list[str]:
    """The built-in demo prompts (``prompts = ["builtin:demo"]``)."""
    return list(_DEMO)


def normalise(text: str) -> str:
    """Collapse runs of whitespace and strip the ends."""
    return " ".join(str(text).split())


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}.get(ext, "text")


def _pick(record: dict[str, Any], field: str | None, path: Path, fields: Sequence[str]) -> Any:
    if field is not None:
        if field not in record:
            raise BenchError(f"{path}: a record has no field {field!r} (fields: {', '.join(map(str, record))})")
        return record[field]
    lower = {str(k).lower(): k for k in record}
    for name in fields:
        if name in lower:
            return record[lower[name]]
    raise BenchError(
        f"{path}: no prompt column among {', '.join(fields)} (found {', '.join(map(str, record)) or 'none'}); "
        "set prompt_field"
    )


def read_records(path: str | Path) -> Iterable[dict[str, Any] | str]:
    """Yield the raw records of one file: strings for text files, dicts otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"prompt file {str(path)!r} does not exist")
    kind = _kind(path)
    with _open_text(path) as fh:
        if kind == "text":
            for line in fh:
                yield line
        elif kind == "jsonl":
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BenchError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        elif kind == "json":
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path}: not valid JSON ({exc.msg})") from None
            if isinstance(data, dict):
                data = next((v for v in data.values() if isinstance(v, list)), None)
            if not isinstance(data, list):
                raise BenchError(f"{path}: expected a JSON list of prompts or records")
            yield from data
        else:
            yield from csv.DictReader(fh, delimiter="\t" if kind == "tsv" else ",")


def load_prompts(
    paths: Sequence[str | Path], field: str | None = None, dedup: bool = True, fields: Sequence[str] = DEFAULT_FIELDS
) -> list[str]:
    """Prompts of several files concatenated in order; empty prompts dropped, duplicates dropped if ``dedup``."""
    out: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if str(path) == DEMO_PROMPTS:
            records: Iterable[Any] = demo_prompts()
            path = Path(DEMO_PROMPTS)
        else:
            records = read_records(path)
        for record in records:
            raw = record if isinstance(record, str) else _pick(record, field, Path(path), fields)
            if raw is None:
                continue
            text = normalise(raw)
            if not text:
                continue
            if dedup:
                if text in seen:
                    continue
                seen.add(text)
            out.append(text)
    if not out:
        raise BenchError(f"no prompts found in {', '.join(map(str, paths)) or 'an empty file list'}")
    return out


def _mix(*parts: int) -> int:
    """A 63-bit seed hashed from integers, so (seed, step, ...) streams never overlap."""
    digest = hashlib.blake2b(",".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFFFFFFFFFF


def derived_seed(*parts: int) -> int:
    """Public alias of the seed mixer used for data order and noise."""
    return _mix(*parts)


class PromptOrder:
    """Epoch-wise shuffled, infinite order over ``n`` items; item ``i`` of the stream depends on (seed, i) only."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("need at least one item")
        self.n, self.seed = n, seed
        self._cache: dict[int, Any] = {}

    def _perm(self, epoch: int) -> Any:
        import torch

        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            gen = torch.Generator().manual_seed(_mix(self.seed, epoch, 0xDA7A))
            self._cache[epoch] = torch.randperm(self.n, generator=gen)
        return self._cache[epoch]

    def indices(self, start: int, count: int) -> list[int]:
        """Stream positions ``start .. start + count - 1`` mapped to item indices."""
        out = []
        for pos in range(start, start + count):
            epoch, offset = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[offset]))
        return out


class PromptStream:
    """The prompts of a run and the batch each (step, micro-batch, process) receives."""

    def __init__(self, prompts: Sequence[str], seed: int, batch_size: int, accumulation: int = 1,
                 num_processes: int = 1) -> None:
        self.prompts = list(prompts)
        self.order = PromptOrder(len(self.prompts), seed)
        self.batch_size, self.accumulation, self.num_processes = batch_size, accumulation, num_processes

    def start(self, step: int, micro: int, rank: int) -> int:
        """Stream position of the first prompt of this (step, micro-batch, process)."""
        return ((step * self.accumulation + micro) * self.num_processes + rank) * self.batch_size

    def batch(self, step: int, micro: int = 0, rank: int = 0) -> list[str]:
        return [self.prompts[i] for i in self.order.indices(self.start(step, micro, rank), self.batch_size)]


IMAGE_FIELDS = ("image", "image_path", "file_name", "filename", "img_path", "path", "url")


def load_image_text_pairs(paths: Sequence[str | Path], field: str | None = None) -> list[tuple[Path, str]]:
    """(image path, caption) pairs from JSONL/JSON/CSV files; image paths are relative to their list file."""
    pairs: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if _kind(path) == "text":
            raise BenchError(f"{path}: image-text pairs need a JSONL, JSON or CSV file with image and caption columns")
        for record in read_records(path):
            if not isinstance(record, dict):
                raise BenchError(f"{path}: expected records with an image path and a caption")
            image = _pick(record, None, path, IMAGE_FIELDS)
            caption = normalise(_pick(record, field, path, DEFAULT_FIELDS))
            image_path = Path(str(image))
            if not image_path.is_absolute():
                image_path = path.parent / image_path
            pairs.append((image_path, caption))
    if not pairs:
        raise BenchError(f"no image-text pairs found in {', '.join(map(str, paths))}")
    return pairs


