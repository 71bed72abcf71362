"""Built-in evaluation suites (plug-in)."""

from bench.hookspecs import hookimpl


@hookimpl
def register_suites(register):
    register("smoke", "bench.suites.smoke:SmokeSuite", description="32 bundled prompts, offline, every metric")
