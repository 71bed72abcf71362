"""``diversity``: P prompts x S seeds, for per-prompt diversity (the SBv2 paper's Fig. 6 as a number).

Prompts: the first ``num_prompts`` (200) captions of the coco30k selection (same COCO root, same rule and
``prompt_seed``), or ``--prompts FILE``. Each prompt is generated ``seeds_per_prompt`` (8) times: sample
``k = p * S + s`` is prompt ``p``, group ``str(p)``. In this engine sample k's noise depends only on
(run seed, k), so the S images of a prompt are S different sample indices with the same prompt: S independent
noises. ``--limit N`` keeps whole prompts first (it should be a multiple of S). No reference images.
"""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from bench.metrics.preprocess import preprocess_options
from bench.options import Option
from bench.suites.base import PromptItem, Suite
from bench.suites.coco import Coco30kSuite, read_prompt_file


class DiversitySuite(Suite):
    """P prompts x S seeds; metric: diversity (Vendi score, pairwise distance) per prompt."""

    name = "diversity"
    options = {
        "data_root": Option(None, str, help="COCO root for the prompts (as coco30k)"),
        "prompts": Option(None, str, help="file with one prompt per line, or a JSON list"),
        "num_prompts": Option(200, int, help="prompts P (the first P of the list)", minimum=1),
        "seeds_per_prompt": Option(8, int, help="images S per prompt", minimum=1),
        "prompt_seed": Option(0, int, help="seed of the COCO caption selection", minimum=0),
        **preprocess_options(),
    }
    location_options = ("data_root", "prompts")
    default_metrics = ("diversity",)
    comparable = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._items: list[PromptItem] | None = None

    def _texts(self) -> list[str]:
        p = self.args["num_prompts"]
        if self.args["prompts"]:
            texts = read_prompt_file(self.args["prompts"])
        else:
            coco = Coco30kSuite(data_root=self.args["data_root"], num_prompts=p, prompt_seed=self.args["prompt_seed"])
            texts = [it.prompt for it in coco.prompts()]
        if len(texts) < p:
            raise BenchError(f"suite diversity: {len(texts)} prompts, fewer than num_prompts={p}; pass "
                             f"--suite-args num_prompts={len(texts)}")
        return texts[:p]

    def prompts(self) -> list[PromptItem]:
        if self._items is None:
            s = self.args["seeds_per_prompt"]
            self._items = [PromptItem(p * s + k, text, str(p)) for p, text in enumerate(self._texts())
                           for k in range(s)]
        return self._items

    def check_data(self, needs_reference: bool) -> None:
        self.prompts()

    def protocol(self) -> dict[str, Any]:
        import hashlib

        digest = hashlib.sha256("\n".join(it.prompt for it in self.prompts()).encode()).hexdigest()
        return {**super().protocol(), "prompts_sha256": digest,
                "noise": "sample p * S + s: noise of (run seed, p * S + s); S independent noises per prompt"}
