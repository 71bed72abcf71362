"""Distillation of one-step text-to-image students: SwiftBrush VSD and SBv2 (schemes A and B), and model merging.

``python -m training distill --preset tiny --output-dir runs/tiny`` trains a toy model offline in seconds;
``python -m training merge --a A --b B --lambda 0.5 --output-dir AB`` interpolates two exported students.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
