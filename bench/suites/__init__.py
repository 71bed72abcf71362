"""Built-in evaluation suites (plug-in).

``cli_aliases``: command-line flags of a suite's own options (``--data-root DIR`` is ``--suite-args
data_root=DIR``), read from the registration by ``bench run``, ``sweep-merge`` and ``reproduce`` without
importing the suite (see :func:`bench.run_options.suite_aliases`).
"""

from bench.hookspecs import hookimpl

COCO_ROOT = {"metavar": "DIR", "help": "the COCO root (default: $BENCH_COCO_ROOT)"}


@hookimpl
def register_suites(register):
    register("smoke", "bench.suites.smoke:SmokeSuite", description="32 bundled prompts, offline, every metric")
    register("coco30k", "bench.suites.coco:Coco30kSuite",
             description="MS-COCO 2014 zero-shot: 30K captions, FID/CLIP/precision/recall vs all val2014 images",
             cli_aliases={"data_root": COCO_ROOT,
                          "prompts": {"metavar": "PATH", "help": "a named list or a file, one caption per line "
                                                                 "or a JSON list"}})
    register("hpsv2", "bench.suites.hpsv2:HPSv2Suite",
             description="HPSv2 benchmark: 4 styles x 800 prompts, HPS per style and averaged",
             cli_aliases={"prompts": {"metavar": "PATH", "help": "a folder with <style>.json files"}})
    register("diversity", "bench.suites.diversity:DiversitySuite",
             description="P prompts x S seeds (200 x 8 COCO captions): per-prompt Vendi score and pairwise distance",
             cli_aliases={"data_root": COCO_ROOT,
                          "prompts": {"metavar": "PATH", "help": "a file, one prompt per line or a JSON list"}})
