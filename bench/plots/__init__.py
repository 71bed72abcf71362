"""Figures drawn from bench records (matplotlib, imported only when a plot is made)."""

#: Footnote of any figure that shows runs whose networks are not the published ones.
CAVEAT = "Includes runs with random weights or toy models (weights != pretrained): not comparable to the paper."
