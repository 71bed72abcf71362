"""Prompt lists: the named COCO-2014 caption lists shipped with the package, and prompt files.

Named lists (``--suite-args prompts=NAME``; the files are in ``bench/suites/data/``, see the README there):

* ``sbv2``: the SwiftBrush v2 evaluation release's ``dataset.json`` (``{"labels": [[name, caption], ...]}``,
  40,504 entries); prompt i = ``labels[i][1]``, exactly as stored (about 5,800 captions keep a trailing space).
* ``dmd2``: DMD2's ``captions_coco14_test.txt`` (30,000 lines); prompt i = line i without its line break.
* ``hash``: not a file: the project's own selection from ``captions_val2014.json`` (rule v1, ``bench.suites.coco``).

Each shipped file is stored xz-compressed; the sha256 of the original file is checked every time it is read.

Prompt files (``--prompts FILE``) may be the release's JSON format, a JSON list of strings, or UTF-8 text with
one prompt per line (lines end at "\n", "\r\n" or "\r" only; blank lines skipped); strings of a JSON list and text lines are stripped, the release
format keeps captions as stored. Anything else (another JSON shape, binary data, no prompts) is refused.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import BenchError

#: What ends a line of a prompt file: "\n", "\r\n" or "\r" only. Other characters that ``str.splitlines`` breaks
#: at (form feed, U+2028, U+0085, ...) are part of a prompt.
LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: The project's hash-rule selection (not a shipped file).
HASH_LIST = "hash"


@dataclass(frozen=True)
class NamedList:
    """A shipped prompt list: its compressed file, the sha256 of the original, its format and provenance."""

    name: str
    filename: str
    sha256: str
    entries: int
    fmt: str  # "release-json" or "lines"
    source: str


NAMED_LISTS: dict[str, NamedList] = {
    "sbv2": NamedList(
        "sbv2", "sbv2-release-dataset.json.xz",
        "94a4cf8ccda5fa251960a9bad3e09c06988e49ac7da98f57c167f37c77e7ed12", 40_504, "release-json",
        "SwiftBrush v2 evaluation release, dataset.json (public fork PhiHoc/SwiftBrushV2, commit aae9d41)"),
    "dmd2": NamedList(
        "dmd2", "dmd2-captions_coco14_test.txt.xz",
        "edabd2a556026cbf5d36a5fffa35ad43d7ba71b72f6d640b727c1edefb7f1945", 30_000, "lines",
        "DMD2, main/coco_eval/captions_coco14_test.txt (tianweiy/DMD2, commit 4e54501)"),
}
LIST_NAMES = (*NAMED_LISTS, HASH_LIST)

_CACHE: dict[str, list[str]] = {}


def named_list_bytes(name: str) -> bytes:
    """The original bytes of a shipped list, checked against its sha256."""
    spec = NAMED_LISTS[name]
    try:
        packed = resources.files("bench.suites").joinpath("data", spec.filename).read_bytes()
        raw = lzma.decompress(packed)
    except (OSError, lzma.LZMAError) as exc:
        raise BenchError(f"prompt list {name!r} ({spec.filename}) is missing or damaged ({exc}); reinstall the "
                         "package (pip install -e .)") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise BenchError(f"prompt list {name!r} ({spec.filename}) has sha256 {digest[:16]}..., not the expected "
                         f"{spec.sha256[:16]}...; reinstall the package (pip install -e .)")
    return raw


def named_list(name: str) -> list[str]:
    """Every prompt of a shipped list, in file order (a copy)."""
    if name not in NAMED_LISTS:
        raise BenchError(f"unknown prompt list {name!r}; use one of {', '.join(LIST_NAMES)} or a file path")
    if name not in _CACHE:
        spec = NAMED_LISTS[name]
        label = f"prompt list {name!r}"
        text = named_list_bytes(name).decode("utf-8")
        if spec.fmt == "release-json":
            prompts = _release_captions(json.loads(text), label)
        else:
            prompts = text.split("\n")
            if prompts and prompts[-1] == "":
                prompts.pop()
        if len(prompts) != spec.entries:
            raise BenchError(f"{label} holds {len(prompts)} prompts, not {spec.entries}; reinstall the package")
        _CACHE[name] = prompts
    return list(_CACHE[name])


def _release_captions(data: Any, label: str) -> list[str]:
    """Captions of ``{"labels": [[name, caption], ...]}``, exactly as stored."""
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[1], str) for e in labels
    ):
        raise BenchError(f"{label} is a JSON object but not the SBv2 release format {{\"labels\": [[name, caption], "
                         "...]}; write that, a JSON list of strings, or one caption per line")
    return [e[1] for e in labels]


def parse_prompts(raw: bytes, label: str) -> list[str]:
    """Prompts from the bytes of a prompt file (formats: see the module docstring)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{label} is not UTF-8 text (byte {exc.start}); save it as UTF-8 with one caption "
                         "per line") from exc
    if "\x00" in text:
        raise BenchError(f"{label} holds binary data (NUL bytes); pass a UTF-8 text file with one caption per line, "
                         "a JSON list of strings or the SBv2 release's dataset.json")
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{label} starts like JSON but is not valid JSON ({exc.msg}, line {exc.lineno}); "
                             "write a JSON list of strings or one caption per line") from exc
        if isinstance(data, dict):
            prompts = _release_captions(data, label)
        elif isinstance(data, list) and all(isinstance(x, str) for x in data):
            prompts = [x.strip() for x in data if x.strip()]
        else:
            raise BenchError(f"{label} must hold a JSON list of strings (or the SBv2 release format)")
    else:
        prompts = [line.strip() for line in LINE_BREAK.split(text) if line.strip()]
    if not any(p.strip() for p in prompts):
        raise BenchError(f"{label} holds no prompts; write one caption per line or a JSON list of strings")
    return prompts


def read_prompt_file(path: str | os.PathLike[str]) -> list[str]:
    """Prompts from a file (formats: see the module docstring); every problem is a one-line BenchError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise BenchError(f"prompt file {p} is a folder; pass a text file with one caption per line or a JSON list")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BenchError(f"prompt file {p} does not exist; check the path given to --prompts") from None
    except OSError as exc:
        raise BenchError(f"prompt file {p} cannot be read ({exc.strerror}); check its permissions") from exc
    return parse_prompts(raw, f"prompt file {p}")


def prompts_digest(prompts: list[str]) -> str:
    """sha256 of the prompts joined by newlines (recorded in the protocol)."""
    return hashlib.sha256("\n".join(prompts).encode()).hexdigest()
