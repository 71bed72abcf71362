"""Built-in evaluation suites (plug-in)."""

from bench.hookspecs import hookimpl


@hookimpl
def register_suites(register):
    register("smoke", "bench.suites.smoke:SmokeSuite", description="32 bundled prompts, offline, every metric")
    register("coco30k", "bench.suites.coco:Coco30kSuite",
             description="MS-COCO 2014 zero-shot: 30K captions, FID/CLIP/precision/recall vs all val2014 images")
    register("hpsv2", "bench.suites.hpsv2:HPSv2Suite",
             description="HPSv2 benchmark: 4 styles x 800 prompts, HPS per style and averaged")
    register("diversity", "bench.suites.diversity:DiversitySuite",
             description="P prompts x S seeds (200 x 8 COCO captions): per-prompt Vendi score and pairwise distance")
