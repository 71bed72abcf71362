"""``python -m bench``: the command-line entry point.

Sub-commands are plug-ins (``register_commands``; see :mod:`bench.commands.base`): the built-in ones and any
that installed packages provide. Heavy libraries are imported by the commands that need them, never here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from bench.errors import OneLineParser, run_cli


def _broken_command(name: str, plugin: str, exc: BaseException) -> tuple[str, Any]:
    """(one-line reason, a stand-in that raises it when run) for a command whose plug-in fails to load it."""
    from bench.errors import BenchError

    first = (str(exc).splitlines() or [""])[0][:200]
    why = (f"command {name!r} of plug-in {plugin!r} cannot be loaded ({type(exc).__name__}: {first}); fix or "
           "uninstall that plug-in")

    def run(args: argparse.Namespace) -> int:
        raise BenchError(why)

    return why, run


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser. A plug-in command that fails to load (its module raises, or it is not a bench Command)
    breaks only itself: the other commands keep working, a one-line warning names it, and running it is a
    one-line error."""
    import sys

    from bench import __version__, plugins
    from bench.commands.base import Command

    parser = OneLineParser(prog="python -m bench", description="Evaluate and benchmark one-step text-to-image "
                           "generators; `python -m bench COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for entry in plugins.current().commands.entries():
        try:
            command = entry.build()
            if not isinstance(command, Command):
                raise TypeError(f"{type(command).__name__} is not a bench Command")
        except Exception as exc:  # noqa: BLE001 - a third party's failure stays with its own command
            why, run = _broken_command(entry.name, entry.plugin, exc)
            print(f"bench: warning: {why}", file=sys.stderr)
            # every word after the name is taken as is (no option syntax), so running it reaches the reason
            p = sub.add_parser(entry.name, help="(cannot be loaded: see the warning)", add_help=False,
                               prefix_chars="\0")
            p.add_argument("rest", nargs="*")
            p.set_defaults(_run=run)
            continue
        p = sub.add_parser(entry.name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command, _run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, with a one-line message on stderr)."""
    for var in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(var, "error")

    return run_cli("bench", build_parser, argv, lambda args: args._run(args),
                   "finished work is kept and a re-run resumes it")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
