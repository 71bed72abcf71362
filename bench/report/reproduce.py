"""``bench reproduce TABLE``: the runs a paper table needs, as exact commands (``--dry-run``) or run in order.

A public model's row becomes ``python -m bench run`` (and ``bench latency`` for timing tables) with the run
name ``<suite>-<model id>`` under the protocol profile the table was measured with; the report matches the run
by what it evaluated (:mod:`bench.report.match`), not by that name. A model trained here first lists its
``python -m training`` commands (presets ``sbv2-a``, ``sbv2-b``, ``swiftbrush``; what differs from the paper
is printed, for it and for every model it is built from), then its evaluation with ``--method sbv2
--method-args weights=<models>/<model id>``. A model with ``timing`` (the SBv2 students: one architecture) is
timed through that model, once, with random weights, and is not trained for a table that only times it. Rows
whose model cannot be run here (StyleGAN-T, GigaGAN, ...) are listed as such.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report.data import Model, Paper, Table
from bench.report.match import LATENCY_MEASURES
from bench.run_request import passed_on_flags


@dataclass
class Step:
    """One command: ``kind`` is ``train`` (python -m training), ``run`` or ``latency`` (python -m bench)."""

    kind: str
    model: str
    argv: list[str]
    #: For ``run``: the Session.evaluate arguments; for ``latency``: the output file.
    fields: dict[str, Any] = field(default_factory=dict)

    def command(self) -> str:
        prog = "python -m training" if self.kind == "train" else "python -m bench"
        return f"{prog} {shlex.join(self.argv)}"


@dataclass
class Plan:
    table: Table
    steps: list[Step]
    notes: list[str]
    report: list[str]

    def lines(self) -> list[str]:
        out = [f"# {self.table.id}: {self.table.title}"] + [f"# {n}" for n in self.notes]
        out += [s.command() for s in self.steps]
        return out + [f"python -m bench {shlex.join(self.report)}"]


def _kv(args: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


def needs(table: Table, paper: Paper) -> list[str]:
    """Suites and/or ``latency`` the table's measured columns need (or its ``reproduce`` list)."""
    if table.reproduce:
        return list(table.reproduce)
    out = []
    for col in table.measured_columns():
        what = "latency" if col.measure in LATENCY_MEASURES else paper.protocol_of(table, col).get("suite")
        if what and what not in out:
            out.append(what)
    return out


def _suite_args(options: Mapping[str, Any], table_profile: str | None) -> dict[str, Any]:
    """``--suite-args`` of the plan's runs: the user's, with ``profile`` set to ``--profile`` or else the profile
    the table's numbers were measured under (validated here, so a plan never prints a command that fails)."""
    from bench.options import parse_kv
    from bench.profiles import get_profile

    args = parse_kv(options.get("suite_args"), "--suite-args") if options.get("suite_args") else {}
    profile = options.get("profile") or args.get("profile") or table_profile
    if options.get("profile") and args.get("profile") and options["profile"] != args["profile"]:
        from bench.errors import BenchError

        raise BenchError(f"--profile {options['profile']} and --suite-args profile={args['profile']} disagree; "
                         "give one of them")
    if profile:
        args["profile"] = get_profile(str(profile)).name
    return args


def _train_steps(model: Model, paper: Paper, paths: Mapping[str, str], done: set[str], label: str,
                 notes: list[str]) -> list[Step]:
    """The training commands of ``model`` after those of the models it needs; what differs from the paper, for
    each of them, is added to ``notes`` (once)."""
    steps: list[Step] = []
    for dep in model.needs:
        steps += _train_steps(paper.models[dep], paper, paths, done, label, notes)
    if model.id in done:
        return steps
    done.add(model.id)
    if model.differs:
        notes.append(f"{model.id} ({label}): differs from the paper: {model.differs}")
    for text in model.train:
        steps.append(Step("train", model.id, shlex.split(text.format(**paths))))
    return steps


def _model_steps(model: Model, paper: Paper, paths: Mapping[str, str], trained: set[str], label: str,
                 notes: list[str]) -> list[Step]:
    """What comes before a model's run or timing: its training commands (and their notes), or its note."""
    if model.trained:
        return _train_steps(model, paper, paths, trained, label, notes)
    if model.differs:
        notes.append(f"{model.id} ({label}): {model.differs}")
    return []


def _method_args(model: Model, models_dir: str) -> dict[str, Any]:
    """The ``--method-args`` of a model: a trained one's weights folder first, then its plan's options."""
    return {"weights": f"{models_dir}/{model.id}", **model.method_args} if model.trained else dict(model.method_args)


def _latency_step(model: Model, models_dir: str, out: str, options: Mapping[str, Any]) -> Step:
    method_args = _method_args(model, models_dir)
    dest = f"{out}/latency/latency-{model.id}.json"
    argv = ["latency", "--method", str(model.method), *(["--method-args", _kv(method_args)] if method_args else []),
            "--out", dest]
    if options.get("device") is not None:
        argv += ["--device", str(options["device"])]
    return Step("latency", model.id, argv, {"out": dest, "method_args": _kv(method_args)})


def plan(paper: Paper, table_id: str, options: Mapping[str, Any]) -> Plan:
    """The steps of ``table_id``. ``options``: out, report, models, jdb, laion, pairs and the options of
    :data:`bench.run_request.PASSED_ON`."""
    table = paper.table(table_id)
    out, models_dir = str(options.get("out") or "runs"), str(options.get("models") or "models")
    paths = {"models": models_dir, "jdb": options.get("jdb") or "prompts/journeydb.jsonl",
             "laion": options.get("laion") or "prompts/laion.csv", "pairs": options.get("pairs") or "data/pairs.jsonl"}
    passthrough = []
    suite_args = _suite_args(options, paper.protocol_of(table).get("profile"))
    for attr, flag in passed_on_flags().items():
        if options.get(attr) is not None:
            passthrough += [flag, str(options[attr])]
    if options.get("save_images") is False:
        passthrough.append("--no-save-images")
    steps: list[Step] = []
    notes: list[str] = []
    trained: set[str] = set()
    seen: set[str] = set()
    timed: set[str] = set()
    wanted = needs(table, paper)
    suites = [w for w in wanted if w != "latency"]
    for row in table.rows:
        model = paper.models.get(row.model)
        if model is None or model.method is None:
            notes.append(f"{row.label}: no model runnable here (paper values only)")
            continue
        if model.id in seen:
            continue
        seen.add(model.id)
        if "latency" in wanted:
            stand_in = paper.models[model.timing] if model.timing else model
            if stand_in.id not in timed:
                timed.add(stand_in.id)
                steps += _model_steps(stand_in, paper, paths, trained, row.label, notes)
                steps.append(_latency_step(stand_in, models_dir, out, options))
        if not suites:
            continue
        steps += _model_steps(model, paper, paths, trained, row.label, notes)
        method_args = _method_args(model, models_dir)
        args_flag = ["--method-args", _kv(method_args)] if method_args else []
        for what in suites:
            name = f"{what}-{model.id}"
            suite_flag = ["--suite-args", _kv(suite_args)] if suite_args else []
            argv = ["run", "--method", str(model.method), *args_flag, "--suite", what, *suite_flag, "--out", out,
                    "--run-name", name, *passthrough]
            steps.append(Step("run", model.id, argv, {"method": model.method, "method_args": _kv(method_args),
                                                      "suite": what, "out": out, "run_name": name}))
    if trained:
        notes.append(f"models trained here go to {models_dir}/; prompt files: {paths['jdb']} (JourneyDB), "
                     f"{paths['laion']} (LAION), image pairs {paths['pairs']}; several GPUs: "
                     "`accelerate launch --multi_gpu --num_processes 4 -m training distill ...`")
    if table.reproduce == ("latency",) and any(c.measure == "fid" for c in table.columns):
        notes.append("its FID column reads the coco30k runs of `python -m bench reproduce table3`")
    report = ["report", "--runs", out, "--out", str(options.get("report") or "report"), "--tables", table.id]
    return Plan(table, steps, list(dict.fromkeys(notes)), report)


def missing_models(p: Plan) -> list[str]:
    """Weights folders of trained models that a run or latency step reads and that are not there yet (checked
    before anything runs, so a plan never stops half way for a missing model)."""
    trained = {s.model for s in p.steps if s.kind == "train"}
    out = []
    for s in p.steps:
        if s.kind == "train" or s.model not in trained or not s.fields.get("method_args"):
            continue
        weights = dict(kv.split("=", 1) for kv in s.fields["method_args"].split(",")).get("weights")
        if weights and not (Path(weights) / "bench_model.json").is_file() and weights not in out:
            out.append(weights)
    return out
