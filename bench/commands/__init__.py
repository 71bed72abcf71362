"""Built-in sub-commands of ``python -m bench`` (plug-in). Each is a :class:`bench.commands.base.Command`."""

from bench.hookspecs import hookimpl


@hookimpl
def register_commands(register):
    register("list", "bench.commands.list_cmd:ListCommand", description="list registered plug-ins and profiles")
    register("run", "bench.commands.run_cmd:RunCommand", description="generate and evaluate")
    register("latency", "bench.commands.latency_cmd:LatencyCommand", description="paper-protocol latency")
    register("score", "bench.commands.score_cmd:ScoreCommand",
             description="two image sets without prompts (FID, KID, ...), or one against reference statistics")
    register("data", "bench.commands.data_cmd:DataCommand", description="download a suite's data")
    register("report", "bench.commands.report_cmd:ReportCommand", description="paper tables beside your runs")
    register("reproduce", "bench.commands.reproduce_cmd:ReproduceCommand", description="the runs of a paper table")
    register("sweep-merge", "bench.commands.sweep_cmd:SweepMergeCommand", description="weight-merge sweep")
    register("interpolate", "bench.commands.interpolate_cmd:InterpolateCommand",
             description="noise or prompt interpolation grid")
