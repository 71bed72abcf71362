"""An example plug-in for sbv2-bench: everything it provides, registered through bench's hooks.

Targets are ``"module:attribute"`` strings, so ``python -m bench list`` never imports the modules (nor torch).
"""

from bench import hookimpl


@hookimpl
def register_methods(register):
    register("colour-words", "bench_example.generator:ColourWordsGenerator",
             description="paints each prompt's colour word, with a little of the noise (no parameters)", nfe=1)


@hookimpl
def register_feature_extractors(register):
    register("colour_histogram", "bench_example.metric:ColourHistogram",
             description="per-channel colour histograms (no parameters)")


@hookimpl
def register_metrics(register):
    register("histogram_distance", "bench_example.metric:HistogramDistance",
             description="total variation between the mean colour histograms of generated and reference images")


@hookimpl
def register_suites(register):
    register("colour-words", "bench_example.suite:ColourWordsSuite",
             description="prompts that name a colour, against drawn colour patches (offline)")


@hookimpl
def register_commands(register):
    register("colours", "bench_example.command:ColoursCommand",
             description="a run's histogram distance and its images' mean colour")
