"""Which image is which sample: the rules that match a source's images (:mod:`bench.image_sources`) to a suite's
prompts. The rule is chosen with ``match=`` (``auto`` by default, which says what it chose on stderr):

``index``   the i-th image in natural file-name order (``2.png`` before ``10.png``) is sample i; a sample batch's
            row i is sample i. The rule of clean-fid, torch-fidelity and the ADM evaluator, which never pair
            images with prompts.
``sbv2``    the SBv2 release's rule (its ``eval/clip_score.py``): a file named by a number is that sample
            (``labels[i]`` of its ``dataset.json``); ``infer.py`` writes ``{i:08d}.png``, the resize tool keeps the
            names.
``hpsv2``   the HPSv2 benchmark's ``<style>/{k:05d}.jpg``: prompt k of that style (the hpsv2 suite's groups).
``run``     a run directory of this project (or an archive of one): ``manifest.jsonl`` names each sample's file,
            and its prompts must be the suite's.
``list``    a CSV (header ``file,prompt``) or JSONL (``{"file": ..., "prompt": ...}``) file, ``mapping=PATH``: each
            row's image is the next sample with that prompt (a prompt listed twice fills its two samples in order).

A batch that stores its prompts (DMD2's ``all_captions``) is checked against the suite's, row by row.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from bench.errors import BenchError
from bench.image_sources import BatchSource, ImageSource, read_text_file
from bench.suites.base import PromptItem

RULES = ("auto", "index", "sbv2", "hpsv2", "run", "list")
MANIFEST = "manifest.jsonl"
_SBV2_NAME = re.compile(r"(\d+)\.[A-Za-z]+")
_HPSV2_NAME = re.compile(r"([^/]+)/(\d{5})\.[A-Za-z]+")
#: Names shown in a problem line before "and N more".
SHOWN = 5


def natural_key(name: str) -> list[Any]:
    """Sort key that orders digit runs by value (``img2`` before ``img10``), as natsort does for file names."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


@dataclass
class Matching:
    """The result of a rule: each sample's image name, and what did not fit."""

    rule: str
    by_index: dict[int, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    duplicate: dict[int, list[str]] = field(default_factory=dict)
    #: Names a mapping or manifest lists that the source does not hold.
    absent: list[str] = field(default_factory=list)

    def missing(self, items: Sequence[PromptItem]) -> list[int]:
        return [it.index for it in items if it.index not in self.by_index]


def _shown(values: Sequence[Any]) -> str:
    head = ", ".join(str(v) for v in values[:SHOWN])
    return head + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")


def problem_line(m: Matching, items: Sequence[PromptItem], where: str) -> str | None:
    """One line naming every kind of mismatch with its count, or None when every sample has exactly one image."""
    parts = []
    missing = m.missing(items)
    if missing:
        parts.append(f"{len(missing)} sample(s) without an image (sample {_shown(missing)})")
    if m.absent:
        parts.append(f"{len(m.absent)} listed file(s) not found ({_shown(m.absent)})")
    if m.extra:
        parts.append(f"{len(m.extra)} image(s) matching no sample ({_shown(m.extra)})")
    if m.duplicate:
        dup = [f"sample {i}: {' and '.join(names)}" for i, names in sorted(m.duplicate.items())]
        parts.append(f"{len(dup)} sample(s) with more than one image ({_shown(dup)})")
    if not parts:
        return None
    return f"images in {where} (matched by rule {m.rule!r}): " + "; ".join(parts)


def _assign(m: Matching, index: int, name: str) -> None:
    if index in m.by_index:
        m.duplicate.setdefault(index, [m.by_index[index]]).append(name)
    else:
        m.by_index[index] = name


def by_index(source: ImageSource, items: Sequence[PromptItem]) -> Matching:
    m = Matching("index")
    names = source.names if isinstance(source, BatchSource) else sorted(source.names, key=natural_key)
    for k, name in enumerate(names):
        if k < len(items):
            m.by_index[items[k].index] = name
        else:
            m.extra.append(name)
    return m


def by_sbv2_names(source: ImageSource, items: Sequence[PromptItem]) -> Matching:
    m = Matching("sbv2")
    known = {it.index for it in items}
    for name in source.names:
        hit = _SBV2_NAME.fullmatch(PurePosixPath(name).name)
        if hit and int(hit.group(1)) in known:
            _assign(m, int(hit.group(1)), name)
        else:
            m.extra.append(name)
    return m


def by_hpsv2_names(source: ImageSource, items: Sequence[PromptItem]) -> Matching:
    m = Matching("hpsv2")
    where: dict[tuple[str | None, int], int] = {}
    counts: dict[str | None, int] = {}
    for it in items:
        where[(it.group, counts.get(it.group, 0))] = it.index
        counts[it.group] = counts.get(it.group, 0) + 1
    for name in source.names:
        hit = _HPSV2_NAME.fullmatch("/".join(PurePosixPath(name).parts[-2:]))
        index = where.get((hit.group(1), int(hit.group(2)))) if hit else None
        if index is None:
            m.extra.append(name)
        else:
            _assign(m, index, name)
    return m


def manifest_name(source: ImageSource) -> str | None:
    """Where a run directory's manifest sits in the source (its top, or one folder down in an archive)."""
    for name in (MANIFEST, *sorted({f"{PurePosixPath(n).parts[0]}/{MANIFEST}" for n in source.names
                                    if len(PurePosixPath(n).parts) > 2})):
        if source.text(name) is not None:
            return name
    return None


def by_run_manifest(source: ImageSource, items: Sequence[PromptItem], manifest: str) -> Matching:
    m = Matching("run")
    prefix = str(PurePosixPath(manifest).parent)
    prefix = "" if prefix == "." else prefix + "/"
    prompts = {it.index: it.prompt for it in items}
    held = set(source.names)
    listed = set()
    for line in (source.text(manifest) or "").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or "index" not in row:
            continue
        index, path = int(row["index"]), row.get("path")
        if index not in prompts:
            continue
        if row.get("prompt") != prompts[index]:
            raise BenchError(f"{source.path}: the run's sample {index} was made for the prompt {row.get('prompt')!r}, "
                             f"not this suite's {prompts[index]!r}; score it with the suite and options it was made "
                             "with (its config.json), or match the images another way (match=index or mapping=)")
        if not path:
            continue  # made with --no-save-images: this sample's image was not kept
        name = prefix + path
        listed.add(name)
        if name in held:
            _assign(m, index, name)
        else:
            m.absent.append(name)
    m.extra = [n for n in source.names if n not in listed]
    return m


def read_mapping(path: str) -> list[tuple[str, str]]:
    """(file, prompt) rows of a CSV (header ``file,prompt``) or JSONL file."""
    text = read_text_file(path)
    rows: list[tuple[str, str]] = []
    if path.lower().endswith((".jsonl", ".json")):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rows.append((str(obj["file"]), str(obj["prompt"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BenchError(f"{path} line {n} is not a JSON object with 'file' and 'prompt' ({exc}); fix it") \
                    from exc
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"file", "prompt"} <= set(reader.fieldnames):
        raise BenchError(f"{path} needs a header line with the columns file and prompt (CSV), or use JSONL")
    return [(str(r["file"]), str(r["prompt"])) for r in reader]


def by_mapping(source: ImageSource, items: Sequence[PromptItem], mapping: str) -> Matching:
    m = Matching("list")
    queue: dict[str, list[int]] = {}
    for it in items:
        queue.setdefault(it.prompt, []).append(it.index)
    held = set(source.names)
    listed = set()
    for file, prompt in read_mapping(mapping):
        name = PurePosixPath(file.replace("\\", "/")).as_posix().removeprefix("./")
        listed.add(name)
        if name not in held:
            m.absent.append(name)
        elif queue.get(prompt):
            m.by_index[queue[prompt].pop(0)] = name
        else:
            m.extra.append(name)
    m.extra += [n for n in source.names if n not in listed]
    return m


def detect(source: ImageSource, items: Sequence[PromptItem]) -> str:
    """The rule ``match=auto`` uses: a run directory, then the HPSv2 layout (when the suite has its groups),
    then numbered names (the SBv2 release's rule), else index."""
    if isinstance(source, BatchSource):
        return "index"
    if manifest_name(source) is not None:
        return "run"
    names = [PurePosixPath(n) for n in source.names]
    groups = {it.group for it in items if it.group is not None}
    if groups and all(len(p.parts) >= 2 and p.parts[-2] in groups
                      and _HPSV2_NAME.fullmatch("/".join(p.parts[-2:])) for p in names):
        return "hpsv2"
    if all(_SBV2_NAME.fullmatch(p.name) for p in names):
        return "sbv2"
    return "index"


def match(source: ImageSource, items: Sequence[PromptItem], rule: str = "auto",
          mapping: str | None = None) -> Matching:
    """Match ``source``'s images to ``items`` (the suite's samples, all of them) by ``rule``."""
    if rule not in RULES:
        raise BenchError(f"match={rule!r} is not a rule; use one of {', '.join(RULES)}")
    if mapping is not None and rule not in ("auto", "list"):
        raise BenchError(f"mapping= pairs files with prompts itself; leave match={rule} out (or say match=list)")
    if rule == "list" and mapping is None:
        raise BenchError("match=list needs mapping=FILE, a CSV (file,prompt) or JSONL list of each image's prompt")
    if rule == "auto":
        rule = "list" if mapping is not None else detect(source, items)
    if isinstance(source, BatchSource) and rule != "index":
        raise BenchError(f"{source.path} is a sample batch: its rows have no names, so only match=index applies")
    if rule == "index":
        m = by_index(source, items)
    elif rule == "sbv2":
        m = by_sbv2_names(source, items)
    elif rule == "hpsv2":
        m = by_hpsv2_names(source, items)
    elif rule == "run":
        manifest = manifest_name(source)
        if manifest is None:
            raise BenchError(f"{source.path} has no {MANIFEST}: it is not a run directory of this project")
        m = by_run_manifest(source, items, manifest)
    else:
        assert mapping is not None
        m = by_mapping(source, items, mapping)
    _check_captions(source, items, m)
    return m


def _check_captions(source: ImageSource, items: Sequence[PromptItem], m: Matching) -> None:
    """A batch's stored prompts (DMD2's ``all_captions``) must be the suite's, sample by sample."""
    captions = source.captions()
    if captions is None:
        return
    prompts = {it.index: it.prompt for it in items}
    row = {name: k for k, name in enumerate(source.names)}
    for index, name in sorted(m.by_index.items()):
        k = row[name]
        if k < len(captions) and captions[k].strip() != prompts[index].strip():
            raise BenchError(f"{source.path}: row {k} was made for the prompt {captions[k]!r}, not sample {index}'s "
                             f"{prompts[index]!r}; score it with the prompt list it was made from (e.g. "
                             "--suite-args profile=dmd2)")

