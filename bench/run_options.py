"""The options of a run, declared once.

Every option is a dataclass field whose metadata (:class:`Flag`) says its command-line flag, help, type and
choices. ``bench run``'s flags, the conversion of its parsed arguments (:func:`from_namespace`), the keywords of
:meth:`bench.session.Session.evaluate` (:func:`evaluate_options`) and ``bench sweep-merge`` (whose request
composes :class:`RunOptions`) all derive from these declarations: a field added here shows up in each.

Suites declare command-line aliases of their own options in their registration (``cli_aliases``, see
:func:`suite_aliases`): ``--data-root DIR`` is ``--suite-args data_root=DIR``.

Light on imports: the CLI builds its parsers from this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from bench.devices import DTYPES
from bench.errors import BenchError
from bench.options import did_you_mean, parse_kv

#: Field metadata key that holds a field's :class:`Flag`.
FLAG = "flag"
#: Where a suite alias's value is in parsed arguments: ``args.suite.data_root`` (apart from the commands' own).
ALIAS = "suite."
#: ``--batch-size`` when none is given.
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class Flag:
    """How an option is given on the command line: its flag, help line and argparse details. ``parse`` turns the
    flag's text into the field's value (``--suite-args a=1`` -> ``{"a": "1"}``); ``api``: whether
    :meth:`~bench.session.Session.evaluate` takes it as a keyword (the method, the suite and the device come from
    its arguments and its session instead)."""

    flag: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None
    required: bool = False
    parse: Callable[[Any], Any] | None = None
    api: bool = True


def option(flag: str, help: str, default: Any = MISSING, default_factory: Any = MISSING, **how: Any) -> Any:
    """A dataclass field declared with its command-line flag (see :class:`Flag`)."""
    return field(default=default, default_factory=default_factory, metadata={FLAG: Flag(flag, help, **how)})


def parse_metric_args(text: str) -> dict[str, dict[str, str]]:
    """``"fid.weights=random,clip_score.model=ViT-B-32"`` -> ``{"fid": {"weights": "random"}, ...}``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_kv(text, "--metric-args").items():
        metric, dot, opt = key.partition(".")
        if not dot or not opt:
            raise BenchError(f"--metric-args: {key!r} must be METRIC.OPTION=VALUE, e.g. fid.weights=random")
        out.setdefault(metric, {})[opt] = value
    return out


def parse_metrics(text: str) -> list[str]:
    """``--metrics a,b`` -> ``["a", "b"]``; ``none`` -> ``[]`` (only generate)."""
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    if not metrics:
        raise BenchError("--metrics is empty; name metrics, `none` to only generate, or leave it out")
    return [] if metrics == ["none"] else metrics


def suite_field() -> Any:
    """The ``--suite`` option (of a run and of a sweep)."""
    return option("--suite", "suite name (see `bench list suites`)", required=True, api=False)


@dataclass(kw_only=True)
class RunOptions:
    """How a suite is evaluated: the options that ``bench run``, ``Session.evaluate`` and ``bench sweep-merge``
    share."""

    suite_args: dict[str, Any] = option(
        "--suite-args", "options of the suite", default_factory=dict, metavar="K=V,...",
        parse=lambda text: parse_kv(text, "--suite-args"))
    metric_args: dict[str, dict[str, Any]] = option(
        "--metric-args", "options of metrics, e.g. clip_score.model=ViT-B-32", default_factory=dict,
        metavar="METRIC.K=V,...", parse=parse_metric_args)
    metrics: Sequence[str] | None = option(
        "--metrics", "metrics to compute (default: the suite's; none: only generate)", default=None, metavar="A,B",
        parse=parse_metrics)
    out: str = option("--out", "folder that holds run directories (default: runs/)", default="runs")
    limit: int | None = option("--limit", "evaluate only the first N prompts", default=None, type=int, metavar="N")
    batch_size: int = option(
        "--batch-size", "images per generator call; samples are generated in fixed chunks of this size, so keep it "
        f"when resuming for bit-identical images (default: {DEFAULT_BATCH_SIZE})", default=DEFAULT_BATCH_SIZE,
        type=int, metavar="B")
    seed: int = option("--seed", "noise seed; sample i's noise depends only on (seed, i)", default=0, type=int,
                       metavar="S")
    device: str = option("--device", "auto, cpu or cuda (default: auto)", default="auto", api=False)
    dtype: str = option("--dtype", "generator precision (default: fp32)", default="fp32", choices=tuple(DTYPES))
    save_images: bool = option("--no-save-images", "keep only the metrics' features of the images, not the image "
                               "files", default=True, action="store_false")
    overwrite: bool = option("--overwrite", "replace a run with a different config in the run dir", default=False,
                             action="store_true")
    workers: int | None = option(
        "--workers", "threads for encoding, writing and resizing images (default: the CPU count, at most 8)",
        default=None, type=int, metavar="N")
    #: Jackknife groups of every metric's 95% interval (0: none) and the seed of their partition.
    bootstrap: int = option(
        "--bootstrap", "jackknife groups of each metric's 95%% interval, on cached features (at least 2; 0: none; "
        "default 200)", default=200, type=int, metavar="B")
    bootstrap_seed: int = option("--bootstrap-seed", "seed of the groups' partition", default=0, type=int,
                                 metavar="S")

    def __post_init__(self) -> None:
        self.out = str(self.out)
        self.suite_args = dict(self.suite_args or {})
        self.metric_args = {k: dict(v) for k, v in (self.metric_args or {}).items()}


def flags_of(cls: type) -> dict[str, Flag]:
    """Field name -> :class:`Flag` of every option of ``cls``, in declaration order."""
    return {f.name: f.metadata[FLAG] for f in fields(cls) if FLAG in f.metadata}


def _default(f: Field) -> Any:
    return None if f.default is MISSING else f.default


def add_option_flags(parser: argparse.ArgumentParser, cls: type, names: Iterable[str] | None = None,
                     passthrough: bool = False, help: Mapping[str, str] | None = None) -> None:
    """Declare the options of ``cls`` on ``parser`` (required ones first, the :class:`RunOptions` last;
    ``names``: only these, in this order). ``passthrough``: every default is None, so only what the user gave is
    seen; ``help``: other help lines."""
    by_name = {f.name: f for f in fields(cls) if FLAG in f.metadata}
    shared = {f.name for f in fields(RunOptions)}
    chosen = list(names) if names is not None else sorted(  # required first, then those of cls, then the shared
        by_name, key=lambda n: (not by_name[n].metadata[FLAG].required, n in shared))
    for name in chosen:
        f = by_name[name]
        spec: Flag = f.metadata[FLAG]
        kwargs: dict[str, Any] = {"dest": name, "help": (help or {}).get(name, spec.help),
                                  "default": None if passthrough else _default(f)}
        if spec.action:
            kwargs["action"] = spec.action
        else:
            kwargs.update(metavar=spec.metavar, type=spec.type, choices=spec.choices,
                          required=spec.required and not passthrough)
        parser.add_argument(spec.flag, **kwargs)


def suite_aliases() -> dict[str, dict[str, Any]]:
    """Suite option name -> ``{"flag", "metavar", "help"}`` of the aliases that registered suites declare, from
    their registration alone (no suite module is imported). A suite registers them as
    ``cli_aliases={"data_root": {"metavar": "DIR", "help": "the COCO root"}}``; one option declared by several
    suites is one flag whose help names each."""
    from bench import plugins

    out: dict[str, dict[str, Any]] = {}
    for entry in plugins.current().suites.entries():
        declared = entry.info.get("cli_aliases") or {}
        for name, how in declared.items() if isinstance(declared, Mapping) else ():
            how = how if isinstance(how, Mapping) else {"help": str(how)}
            alias = out.setdefault(name, {"flag": "--" + name.replace("_", "-"), "metavar": how.get("metavar"),
                                          "help": []})
            alias["help"].append(f"{entry.name}: {how.get('help', '')}".rstrip(": "))
    for name, alias in out.items():
        alias["help"] = f"suite option {name} ({'; '.join(alias['help'])})".replace("%", "%%")
    return out


def add_suite_aliases(parser: argparse.ArgumentParser) -> None:
    """Declare the registered suites' aliases on ``parser`` (each in ``args.suite.<option>``, None when absent),
    after the command's own arguments: an alias whose flag the parser has already is left out (``--suite-args
    NAME=VALUE`` still gives that option), so a suite never breaks a command."""
    for name, alias in suite_aliases().items():
        try:
            parser.add_argument(alias["flag"], dest=ALIAS + name, default=None, metavar=alias["metavar"],
                                help=alias["help"])
        except argparse.ArgumentError:
            continue


def from_namespace(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """An instance of ``cls`` from parsed arguments: each option's flag text parsed (an absent one takes the
    field's default), the suite aliases folded into ``suite_args``; ``given`` overrides."""
    values: dict[str, Any] = {}
    for name, spec in flags_of(cls).items():
        raw = getattr(args, name, None)
        if name in given or raw is None:
            continue
        values[name] = spec.parse(raw) if spec.parse else raw
    if "suite_args" in flags_of(cls) and "suite_args" not in given:
        values["suite_args"] = with_aliases(values.get("suite_args") or {}, args)
    return cls(**{**values, **given})


def with_aliases(suite_args: Mapping[str, Any], args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """``suite_args`` with the suite aliases given in ``args``; one line when both give an option differently."""
    given = vars(args) if isinstance(args, argparse.Namespace) else args
    out = dict(suite_args)
    for name, alias in suite_aliases().items():
        value = given.get(ALIAS + name)
        if value is None:
            continue
        if name in out and out[name] != value:
            raise BenchError(f"{alias['flag']} and --suite-args {name}= disagree; give one of them")
        out[name] = value
    return out


def evaluate_options(cls: type) -> list[str]:
    """The keywords :meth:`~bench.session.Session.evaluate` takes: the options of ``cls`` marked ``api``."""
    return [name for name, spec in flags_of(cls).items() if spec.api]


def evaluate_kwargs(request: Any, cls: type | None = None) -> dict[str, Any]:
    """The :func:`evaluate_options` of ``cls`` (default: the request's class) with the request's values."""
    return {name: getattr(request, name) for name in evaluate_options(cls or type(request))}


def check_evaluate_options(cls: type, given: Mapping[str, Any]) -> None:
    """One line for a keyword that is not one of :func:`evaluate_options`, with the closest ones."""
    known = evaluate_options(cls)
    for key in given:
        if key == "device":
            raise BenchError("evaluate() takes no device: a run uses its session's (Session(device=...))")
        if key not in known:
            raise BenchError(f"evaluate() has no option {key!r}: {did_you_mean(key, known)}")


def options_doc(cls: type) -> str:
    """The keywords of :func:`evaluate_options` with their help lines, for a docstring."""
    specs = flags_of(cls)
    return "\n".join(f"        ``{name}``: {specs[name].help.replace('%%', '%')} ({specs[name].flag})"
                     for name in evaluate_options(cls))
