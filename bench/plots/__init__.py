"""Figures drawn from bench records (matplotlib, imported only when a plot is made)."""

from __future__ import annotations

import textwrap
from typing import Any

#: Footnote of any figure that shows runs whose networks are not the published ones.
CAVEAT = "Includes runs with random weights or toy models (weights != pretrained): not comparable to the paper."
#: Font size of a figure's footnote.
FOOTNOTE_SIZE = 7


def add_footnote(fig: Any, text: str = CAVEAT, color: str = "#a00000") -> float:
    """Write ``text`` at the bottom of ``fig``, wrapped so that it fits the figure's width (measured with the
    figure's renderer); returns the fraction of the figure's height it takes, to pass on to ``tight_layout``."""
    renderer = fig.canvas.get_renderer()
    chars = max(20, int(fig.bbox.width / (FOOTNOTE_SIZE * 0.5 * fig.dpi / 72)))
    note = fig.text(0.5, 0.01, textwrap.fill(text, chars), ha="center", va="bottom", fontsize=FOOTNOTE_SIZE,
                    color=color)
    while note.get_window_extent(renderer).width > 0.96 * fig.bbox.width and chars > 20:
        chars = int(chars * 0.85)
        note.set_text(textwrap.fill(text, chars))
    return note.get_window_extent(renderer).height / fig.bbox.height + 0.025


def short(text: str, limit: int = 36) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (legend entries of long run names)."""
    return text if len(text) <= limit else text[: limit // 2 - 1] + "\u2026" + text[-(limit - limit // 2):]
