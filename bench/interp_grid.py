"""The labelled grid of ``bench interpolate``: rows = seeds, columns = interpolation steps, with what a reader
needs around the images: what was interpolated and between which ends (A at t = 0, B at t = 1), the prompt(s),
the seed of each row, t of each column, and a warning when the generator's weights are not the published ones.
The images are pasted unscaled at ``origin + (col * (w + gap), row * (h + gap))``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WARNING = "Random or toy weights (weights = {weights}): these images show the pipeline, not the published model."


def title_lines(record: Mapping[str, Any]) -> list[str]:
    """The header's sentences: what was interpolated, its ends, and the prompt(s)."""
    how = record["interp"]
    if record["mode"] == "noise":
        lines = [f"{record['method']}: {how} of the input noise; A (t = 0) = sample 0's noise of the row's seed, "
                 f"B (t = 1) = sample 1's noise (what `bench run --seed S` gives samples 0 and 1)",
                 f"prompt: {record['prompt']!r}"]
    else:
        lines = [f"{record['method']}: {how} of the prompt embedding; noise = sample 0's noise of the row's seed",
                 f"A (t = 0): {record['prompt']!r}", f"B (t = 1): {record['prompt_b']!r}"]
    return lines


def _wrap(text: str, font: Any, width: int) -> list[str]:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line] if line else lines


def draw_grid(rows: Sequence[Any], record: Mapping[str, Any], gap: int) -> tuple[Any, tuple[int, int]]:
    """(the labelled grid as a PIL image, the (x, y) of the first image). ``rows``: per seed, uint8 images
    (steps, h, w, 3); ``record``: what ``interpolate.json`` holds (mode, interp, method, prompt(s), seeds, t,
    weights)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = rows[0].shape[1:3]
    size = max(11, min(18, w // 8))
    font = ImageFont.load_default(size)
    pad = size // 2
    seeds = [f"seed {s}" for s in record["seeds"]]
    left = int(max(font.getlength(s) for s in seeds)) + 2 * pad
    short = font.getlength("t = 0.00") > w - 2  # narrow cells: "0.00" under a "t" at the left
    columns = [(f"{t:.2f}" if short else f"t = {t:.2f}") + (" (A)" if k == 0 else " (B)" if k == len(record["t"]) - 1
                                                          else "") for k, t in enumerate(record["t"])]
    body_w = len(columns) * (w + gap) - gap
    width = left + max(body_w, int(max(font.getlength(c) for c in columns)) + pad)
    texts = [(line, "black") for sentence in title_lines(record) for line in _wrap(sentence, font, width - 2 * pad)]
    if record.get("weights", "pretrained") not in ("pretrained", "none"):  # "none": a parameter-free generator
        warning = WARNING.format(weights=record.get("weights"))
        texts += [(line, "#a00000") for line in _wrap(warning, font, width - 2 * pad)]
    line_h = size + size // 3
    column_h = 2 * line_h if max(font.getlength(c) for c in columns) > w - 2 else line_h
    top = pad + len(texts) * line_h + column_h + pad
    canvas = Image.new("RGB", (width, top + len(rows) * (h + gap) - gap + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (line, color) in enumerate(texts):
        draw.text((pad, pad + i * line_h), line, fill=color, font=font)
    if short:
        draw.text((pad, top - line_h), "t", fill="black", font=font)
    for k, label in enumerate(columns):
        x = left + k * (w + gap)
        parts = [label] if column_h == line_h else label.split(" (") if "(" in label else [label]
        for n, part in enumerate(parts):
            text = part if n == 0 else f"({part}"
            draw.text((x, top - column_h + n * line_h - pad // 2), text, fill="black", font=font)
    for r, images in enumerate(rows):
        y = top + r * (h + gap)
        draw.text((pad, y + pad), seeds[r], fill="black", font=font)
        for c, image in enumerate(images):
            canvas.paste(Image.fromarray(image), (left + c * (w + gap), y))
    return canvas, (left, top)
