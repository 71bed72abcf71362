"""``python -m bench``: the command-line entry point.

Each sub-command lives in its own module under :mod:`bench.commands` and provides ``add_parser(subparsers)``
and ``run(args) -> int``. Heavy libraries are imported by the commands that need them, never here.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Sequence

from bench.errors import BenchError, run_guarded

#: Sub-command name -> module under bench.commands.
COMMANDS = {
    "list": "bench.commands.list_cmd",
    "run": "bench.commands.run_cmd",
    "latency": "bench.commands.latency_cmd",
    "data": "bench.commands.data_cmd",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    from bench import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_parser(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, with a one-line message on stderr)."""
    for var in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(var, "error")

    def command() -> int:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        module = importlib.import_module(COMMANDS[args.command])
        return int(module.run(args) or 0)

    return run_guarded("bench", command, "finished work is kept and a re-run resumes it")

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
