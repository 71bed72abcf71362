"""``python -m training``: distil, export and merge one-step students.

    python -m training distill --preset tiny --output-dir runs/tiny
    python -m training distill --preset sbv2-a --config a.toml --set prompts=jdb.jsonl,laion.csv --output-dir runs/a
    accelerate launch -m training distill --preset sbv2-b ... --resume latest      (several GPUs / nodes)
    python -m training export --run runs/a --checkpoint latest --output-dir runs/a-latest
    python -m training merge --a runs/a --b runs/b --lambda 0.5 --output-dir runs/ab
    python -m training presets [--show NAME]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from bench.errors import OneLineParser, run_cli


def build_parser() -> argparse.ArgumentParser:
    from training.config import PRESETS

    parser = OneLineParser(prog="python -m training", description="Distil, export and merge one-step students.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    d = sub.add_parser("distill", help="train a one-step student with VSD (SwiftBrush / SBv2)")
    d.add_argument("--preset", choices=sorted(PRESETS), help="starting settings (or `preset` in --config)")
    d.add_argument("--config", metavar="FILE.toml", help="settings file (top-level keys or a [train] table)")
    d.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override settings (repeatable); lists as a,b or [\"a\", \"b\"]")
    d.add_argument("--output-dir", required=True, help="where checkpoints, logs, samples and the export go")
    d.add_argument("--max-steps", type=int, help="number of optimisation steps (also ends the CLIP-weight decay)")
    d.add_argument("--resume", metavar="latest|DIR", help="continue from the newest or a given checkpoint")
    d.add_argument("--no-export", action="store_true", help="skip exporting the student at the end")

    e = sub.add_parser("export", help="export a checkpoint of a run as an sbv2 model directory")
    e.add_argument("--run", required=True, help="the run's --output-dir")
    e.add_argument("--checkpoint", default="latest", help="latest (default), a step number or a directory")
    e.add_argument("--no-ema", action="store_true", help="export the raw weights even if an EMA was kept")
    e.add_argument("--output-dir", required=True, help="a new directory outside the run")
    e.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --output-dir")

    m = sub.add_parser("merge", help="theta = lambda * theta_A + (1 - lambda) * theta_B")
    m.add_argument("--a", required=True, help="model A: an export directory or a LoRA directory")
    m.add_argument("--b", required=True, help="model B: an export directory or a LoRA directory")
    m.add_argument("--lambda", dest="lam", type=float, required=True, help="weight of model A (0.5 in SBv2)")
    m.add_argument("--output-dir", required=True, help="a new directory outside both inputs")
    m.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --output-dir")

    p = sub.add_parser("presets", help="list presets, or show every setting of one")
    p.add_argument("--show", metavar="NAME", help="print the resolved settings of a preset as TOML")
    return parser


def _distill(args: argparse.Namespace) -> int:
    from training.config import build_config, parse_set
    from training.trainer import Trainer

    config = build_config(args.preset, args.config, parse_set(args.overrides), max_steps=args.max_steps)
    out = Trainer(config, args.output_dir, resume=args.resume).train(export=not args.no_export)
    print(f"training: done; student in {out}" if not args.no_export else f"training: done; run in {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export import export_checkpoint

    out = export_checkpoint(args.run, args.checkpoint, args.output_dir, ema=not args.no_ema,
                            overwrite=args.overwrite)
    print(f"training: exported to {out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from methods.student_merge import merge_models

    out = merge_models(args.a, args.b, args.lam, args.output_dir, overwrite=args.overwrite)
    print(f"training: merged model in {out}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from training.config import PRESETS, build_config, to_toml

    if args.show:
        print(to_toml(build_config(args.show)), end="")
        return 0
    for name, values in PRESETS.items():
        print(f"{name}: {json.dumps(values, default=str)}")
    return 0


COMMANDS = {"distill": _distill, "export": _export, "merge": _merge, "presets": _presets}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, with a one-line message on stderr)."""

    return run_cli("training", build_parser, argv, lambda args: COMMANDS[args.command](args),
                   "resume with --resume latest")

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
