"""``tiny``: a toy-size SD-2.1-architecture one-step generator with seeded weights (offline default)."""

from __future__ import annotations

from typing import Any

from bench.options import Option
from methods.components import Components, build_tiny_components
from methods.onestep import OneStepGenerator


class TinyGenerator(OneStepGenerator):
    """Seeded random toy networks on the shared one-step path; its images carry no meaning."""

    name = "tiny"
    options = {"weights_seed": Option(0, int, help="seed of the random weights", minimum=0)}

    def build_components(self) -> Components:
        return build_tiny_components(seed=self.args["weights_seed"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": "random", "architecture": "sd21-toy", "timestep": self.timestep}
