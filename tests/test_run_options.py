"""Run options are declared once (bench.run_options): bench run's flags, Session.evaluate's keywords, sweep-merge's
request and flags, and the suites' own flags all come from those declarations."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench import plugins
from bench.cli import build_parser, main
from bench.errors import BenchError
from bench.merge_sweep import SweepRequest
from bench.run_options import FLAG, RunOptions, evaluate_options, flags_of, from_namespace, option
from bench.run_request import RunRequest
from bench.session import Session

#: Sample text for the options whose flag text is parsed, and the value it gives.
PARSED = {"suite_args": ("k=v", {"k": "v"}), "metric_args": ("fid.k=v", {"fid": {"k": "v"}}),
          "method_args": ("k=v", {"k": "v"}), "metrics": ("toy_fid,x", ["toy_fid", "x"]),
          "lambdas": ("0,0.5", [0.0, 0.5])}


def _given(name: str, spec) -> tuple[list[str], object]:
    """Command-line words that set option ``name`` to something other than its default, and that value."""
    if spec.action == "store_true":
        return [spec.flag], True
    if spec.action == "store_false":
        return [spec.flag], False
    if name in PARSED:
        return [spec.flag, PARSED[name][0]], PARSED[name][1]
    if spec.choices:
        return [spec.flag, spec.choices[-1]], spec.choices[-1]
    if spec.type is int:
        return [spec.flag, "3"], 3
    return [spec.flag, "given"], "given"


@pytest.mark.parametrize("command,cls,required", [
    ("run", RunRequest, ["--method", "tiny", "--suite", "smoke"]),
    ("sweep-merge", SweepRequest, ["--a", "x", "--b", "y", "--suite", "smoke"]),
])
def test_every_declared_option_is_a_flag_that_reaches_the_request(command, cls, required):
    parser = build_parser()
    declared = flags_of(cls)
    assert set(flags_of(RunOptions)) <= set(declared), "a sweep takes every shared run option"
    default = cls(**{f: "x" for f, s in declared.items() if s.required})
    for name, spec in declared.items():
        words, value = _given(name, spec)
        request = from_namespace(cls, parser.parse_args([command, *required, *words]))
        assert getattr(request, name) == value, name
        if not spec.required:
            assert getattr(default, name) != value, f"{name}: the sample value must differ from the default"


def test_evaluate_takes_exactly_the_declared_options(monkeypatch):
    import bench.runner

    seen = []

    class Recorded:
        def __init__(self, request, session, generator=None, suite=None):
            seen.append(request)

        def execute(self):
            return None

    monkeypatch.setattr(bench.runner, "Run", Recorded)
    keywords = evaluate_options(RunRequest)
    assert set(keywords) == set(flags_of(RunRequest)) - {"method", "suite", "device"}
    doc = Session.evaluate.__doc__ or ""
    session = Session(device="cpu")
    for name in keywords:
        _, value = _given(name, flags_of(RunRequest)[name])
        session.evaluate("tiny", "smoke", **{name: value})
        assert getattr(seen[-1], name) == value and seen[-1].device == "cpu", name
        assert f"``{name}``" in doc, f"{name} is missing from Session.evaluate's documentation"
    # a sweep point gets every shared option the same way
    sweep = SweepRequest(a="x", b="y", suite="smoke", batch_size=3, bootstrap=7)
    point = sweep.point_options(0.5, dataclasses.replace(sweep).sweep_dir())
    assert set(point) == set(evaluate_options(RunOptions)) | {"run_name"}
    assert point["batch_size"] == 3 and point["bootstrap"] == 7 and point["run_name"] == "lambda-0.50"


def test_unknown_keyword_of_evaluate_is_one_line_naming_the_closest():
    session = Session(device="cpu")
    with pytest.raises(BenchError) as err:
        session.evaluate("tiny", "smoke", batchsize=4)
    assert str(err.value) == "evaluate() has no option 'batchsize': did you mean batch_size?"
    with pytest.raises(BenchError, match=r"Session\(device=...\)"):
        session.evaluate("tiny", "smoke", device="cpu")


def test_an_option_added_to_the_declaration_reaches_the_cli_and_evaluate(monkeypatch, capsys):
    import bench.run_request
    import bench.runner
    import bench.session

    @dataclasses.dataclass(kw_only=True)
    class WithPalette(RunRequest):
        palette: str = option("--palette", "colours of the run", default="plain")

    monkeypatch.setattr(bench.run_request, "RunRequest", WithPalette)
    monkeypatch.setattr(bench.session, "RunRequest", WithPalette)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--palette" in capsys.readouterr().out
    args = build_parser().parse_args(["run", "--method", "tiny", "--suite", "smoke", "--palette", "warm"])
    assert from_namespace(WithPalette, args).palette == "warm"

    seen = []
    monkeypatch.setattr(bench.runner, "Run", lambda request, *a, **k: seen.append(request) or Run0())
    Session(device="cpu").evaluate("tiny", "smoke", palette="cold")
    assert seen[-1].palette == "cold"
    with pytest.raises(BenchError, match="did you mean palette"):
        Session(device="cpu").evaluate("tiny", "smoke", pallete="cold")


class Run0:
    def execute(self):
        return None


def _palette_plugin():
    """A third-party suite that declares a command-line flag for one of its options."""
    from bench.hookspecs import hookimpl
    from bench.options import Option
    from bench.suites.smoke import SmokeSuite

    class PaletteSmoke(SmokeSuite):
        name = "palette_smoke"
        options = {**SmokeSuite.options, "palette": Option(None, str, help="colours of the prompts")}

    class Plugin:
        @hookimpl
        def register_suites(self, register):
            register("palette_smoke", PaletteSmoke, description="smoke with a palette",
                     cli_aliases={"palette": {"metavar": "NAME", "help": "colours of the prompts"},
                                  # named like bench run's own options: left out, never breaking the command
                                  "seed": {"help": "a suite seed"}, "json": {"help": "a JSON file"}})

    return Plugin()


def test_a_suite_declares_its_own_flag_in_its_registration(tmp_path, capsys, one_thread):
    plugins.register_plugin(_palette_plugin(), name="palette")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--palette NAME" in help_text and "palette_smoke: colours of the prompts" in help_text
    assert "a suite seed" not in help_text and "a JSON file" not in help_text
    base = ["run", "--method", "tiny", "--suite", "palette_smoke", "--limit", "2", "--batch-size", "2",
            "--metrics", "none", "--device", "cpu", "--out", str(tmp_path)]
    assert main([*base, "--palette", "warm"]) == 0
    config = json.loads((tmp_path / "palette_smoke-tiny" / "config.json").read_text())
    assert config["suite_args"]["palette"] == "warm" and config["seed"] == 0
    # the flag and --suite-args saying different things: one line, exit 2
    capsys.readouterr()
    assert main([*base, "--palette", "warm", "--suite-args", "palette=cold"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: error: --palette and --suite-args palette= disagree; give one of them"]


def test_built_in_suite_flags_come_from_registration():
    entries = {e.name: e.info.get("cli_aliases", {}) for e in plugins.current().suites.entries()}
    args = build_parser().parse_args(["run", "--method", "tiny", "--suite", "coco30k", "--data-root", "/d",
                                      "--prompts", "p.txt"])
    assert from_namespace(RunRequest, args).suite_args == {"data_root": "/d", "prompts": "p.txt"}
    assert set(entries["coco30k"]) == {"data_root", "prompts"} and set(entries["hpsv2"]) == {"prompts"}
    assert all(FLAG in f.metadata for f in dataclasses.fields(RunRequest))
