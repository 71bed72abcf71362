"""``python -m bench``: the command-line entry point.

Sub-commands are plug-ins (``register_commands``; see :mod:`bench.commands.base`): the built-in ones and any
that installed packages provide. Heavy libraries are imported by the commands that need them, never here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from bench.errors import OneLineParser, run_cli


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__, plugins
    from bench.commands.base import Command
    from bench.errors import BenchError

    parser = OneLineParser(prog="python -m bench", description="Evaluate and benchmark one-step text-to-image "
                           "generators; `python -m bench COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for entry in plugins.current().commands.entries():
        command = entry.build()
        if not isinstance(command, Command):
            raise BenchError(f"command {entry.name!r} of plug-in {entry.plugin!r} is not a bench Command; "
                             "fix or uninstall that plug-in")
        p = sub.add_parser(entry.name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, with a one-line message on stderr)."""
    for var in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(var, "error")

    return run_cli("bench", build_parser, argv, lambda args: args._command.run(args),
                   "finished work is kept and a re-run resumes it")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
