"""Evaluation and benchmark suite for one-step text-to-image diffusion models."""

from bench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
