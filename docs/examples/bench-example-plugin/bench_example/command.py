"""``python -m bench colours RUN_DIR``: a run's histogram distance and the mean colour of its images."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.base import Command
from bench.errors import BenchError


class ColoursCommand(Command):
    help = "a run's histogram distance and the mean colour of its images"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path, help="a run directory (holds results.json)")

    def run(self, args: argparse.Namespace) -> int:
        import numpy as np
        from PIL import Image

        from bench.results import load

        results = load(args.run_dir)  # a missing or damaged results.json is a one-line error
        if "histogram_distance" not in results.metrics:
            raise BenchError(f"{args.run_dir} has no histogram_distance: run it with --metrics histogram_distance")
        print(f"histogram_distance {results.metrics['histogram_distance']:.4f} over {results.num_samples} samples")
        images = sorted((args.run_dir / "images").glob("*.png"))
        if images:
            mean = np.mean([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
                            for p in images], axis=0)
            print("mean colour " + " ".join(f"{v:.1f}" for v in mean))
        return 0
