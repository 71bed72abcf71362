"""Image grids from images already in run directories (``manifest.jsonl`` + ``images/``).

* :func:`prompt_grid` (Figs. 5 and 16): the same prompts and noise across methods. A sample is identified by
  (prompt, sample_seed); the first ``n`` samples present in every run of the largest group of runs sharing them.
* :func:`seed_grid` (Figs. 6 and 17): one prompt across several noises per method, from runs (of one method and
  options) that hold several images of the same prompt: several seeds, or a suite that repeats prompts.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.results import Results

THUMB = 128
LABEL_W = 150
HEADER_H = 44


@dataclass
class Sample:
    prompt: str
    sample_seed: int
    index: int
    path: Path


def samples(run: Results) -> list[Sample]:
    """The run's samples whose image file exists, in index order."""
    from bench.run_dir import RunStore

    store = RunStore(run.run_dir)
    out = []
    for index, row in sorted(store.read_manifest().items()):
        rel = row.get("path")
        if rel and (store.path / rel).is_file():
            out.append(Sample(str(row.get("prompt", "")), int(row.get("sample_seed") or 0), index, store.path / rel))
    return out


def _label(run: Results) -> str:
    return f"{Path(run.run_dir).name}\n{run.method} ({run.weights})"


def _draw(rows: Sequence[tuple[str, Sequence[Path]]], header: Sequence[str], out: Path) -> Path:
    from PIL import Image, ImageDraw

    cols = max(len(paths) for _, paths in rows)
    canvas = Image.new("RGB", (LABEL_W + cols * THUMB, HEADER_H + len(rows) * THUMB), "white")
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(header):
        draw.multiline_text((LABEL_W + j * THUMB + 3, 2), "\n".join(textwrap.wrap(text, 22)[:3]), fill="black")
    for i, (label, paths) in enumerate(rows):
        y = HEADER_H + i * THUMB
        draw.multiline_text((4, y + 4), "\n".join(line for part in label.split("\n")
                                                  for line in textwrap.wrap(part, 24)[:3]), fill="black")
        for j, path in enumerate(paths):
            try:
                with Image.open(path) as im:
                    canvas.paste(im.convert("RGB").resize((THUMB, THUMB)), (LABEL_W + j * THUMB, y))
            except (OSError, ValueError) as exc:  # a damaged image: its cell says so, the report goes on
                import sys

                print(f"bench: warning: {path} cannot be read ({type(exc).__name__}); its grid cell is left blank",
                      file=sys.stderr)
                draw.multiline_text((LABEL_W + j * THUMB + 4, y + THUMB // 2), "unreadable\nimage", fill="red")
    canvas.save(out)
    return out


def prompt_grid(runs: Sequence[Results], out: Path, n: int = 4) -> tuple[Path | None, str]:
    """Write the same-prompt grid to ``out``; (path or None, one line that says what it shows or why not)."""
    by_run = {r.run_dir: {(s.prompt, s.sample_seed): s for s in samples(r)} for r in runs}
    with_images = [r for r in runs if by_run[r.run_dir]]
    if len(with_images) < 2:
        return None, "Same prompts across methods: fewer than two runs with saved images."
    groups: dict[str, list[Results]] = {}
    for r in with_images:
        groups.setdefault(json.dumps([r.suite, r.seed]), []).append(r)
    group = max(groups.values(), key=len)
    common = set.intersection(*(set(by_run[r.run_dir]) for r in group))
    if len(group) < 2 or not common:
        return None, "Same prompts across methods: no two runs share a prompt and noise (suite and seed)."
    keys = sorted(common, key=lambda k: by_run[group[0].run_dir][k].index)[:n]
    rows = [(_label(r), [by_run[r.run_dir][k].path for k in keys]) for r in group]
    _draw(rows, [k[0] for k in keys], out)
    return out, (f"Same prompts and noise across {len(group)} runs (suite {group[0].suite}, seed {group[0].seed}), "
                 f"{len(keys)} samples.")


def seed_grid(runs: Sequence[Results], out: Path, n: int = 6) -> tuple[Path | None, str]:
    """Write the one-prompt-many-seeds grid to ``out``; (path or None, one line that says what or why not)."""
    groups: dict[str, dict[str, dict[int, Path]]] = {}
    labels: dict[str, str] = {}
    for r in runs:
        key = json.dumps([r.method, r.method_args], sort_keys=True, default=str)
        labels.setdefault(key, f"{r.method}\n{Path(r.run_dir).name}")
        for s in samples(r):
            groups.setdefault(key, {}).setdefault(s.prompt, {}).setdefault(s.sample_seed, s.path)
    candidates: dict[str, int] = {}
    for prompts in groups.values():
        for prompt, seeds in prompts.items():
            if len(seeds) >= 2:
                candidates[prompt] = candidates.get(prompt, 0) + 1
    if not candidates:
        return None, ("One prompt across seeds: no run holds several images of one prompt; run a method again "
                      "with another --seed (and --run-name) to get them.")
    prompt = max(candidates, key=lambda p: (candidates[p], -len(p)))
    rows = [(labels[k], list(g[prompt].values())[:n]) for k, g in groups.items() if len(g.get(prompt, {})) >= 2]
    _draw(rows, [f"noise {j + 1}" for j in range(max(len(p) for _, p in rows))], out)
    return out, f"One prompt across seeds: {prompt!r}, {len(rows)} method(s)."

