"""``python -m bench``: the command-line entry point.

Sub-commands are plug-ins (``register_commands``; see :mod:`bench.commands.base`): the built-in ones and any
that installed packages provide. Only the command being run (or whose ``--help`` is asked for) is loaded:
``python -m bench --help`` lists the others by the description they were registered with, so a command that
fails to load breaks only itself. Heavy libraries are imported by the commands that need them, never here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from bench.errors import OneLineParser, run_cli


def command_name(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option (the top-level options take no
    value), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def _broken_command(why: str) -> Any:
    """A stand-in for a command that cannot be loaded: running it raises the one-line reason."""
    from bench.errors import BenchError

    def run(args: argparse.Namespace) -> int:
        raise BenchError(why)

    return run


def _load_command(entry: Any) -> Any:
    """The :class:`~bench.commands.base.Command` of a registered command, or the one-line reason it cannot be
    loaded (its module raises, or it builds no Command), naming the plug-in and its entry point."""
    from bench.errors import BenchError
    from bench.registry import exception_line

    try:
        return entry.build()
    except BenchError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a third party's failure stays with its own command
        return (f"command {entry.name!r} of plug-in {entry.label()} cannot be loaded ({exception_line(exc)}); fix "
                "or uninstall that plug-in")


def _add_command(sub: Any, entry: Any, warn: bool) -> None:
    """Load the command of ``entry`` and add its parser; one that cannot be loaded gets a parser that takes any
    words and whose run is the one-line error (``warn``: also say so on stderr now)."""
    command = _load_command(entry)
    if isinstance(command, str):
        if warn:
            print(f"bench: warning: {command}", file=sys.stderr)
        # every word after the name is taken as is (no option syntax), so running it reaches the reason
        p = sub.add_parser(entry.name, help="(cannot be loaded: run it to see why)", add_help=False,
                           prefix_chars="\0")
        p.add_argument("rest", nargs="*")
        p.set_defaults(_run=_broken_command(command))
        return
    p = sub.add_parser(entry.name, help=command.help or entry.info.get("description"),
                       description=command.description or command.help)
    command.add_arguments(p)
    p.set_defaults(_command=command, _run=command.run)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Given ``argv``, only the command it names is loaded (module imported, parser built);
    every other command is listed by its registered description and never imported. Without ``argv`` every
    command is loaded (for code that parses many command lines), and each that cannot be loaded is a one-line
    warning. Either way a command that fails to load breaks only itself: running it is a one-line error naming
    the plug-in and its entry point."""
    from bench import __version__, plugins

    reg = plugins.current()
    wanted = None if argv is None else command_name(argv)
    parser = OneLineParser(prog="python -m bench", description="Evaluate and benchmark one-step text-to-image "
                           "generators; `python -m bench COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for entry in reg.commands.entries():
        if argv is None or entry.name == wanted:
            _add_command(sub, entry, warn=argv is None)
        else:  # listed, not loaded
            sub.add_parser(entry.name, help=entry.info.get("description") or "", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for user errors, with a one-line message on stderr)."""
    for var in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(var, "error")
    words = list(sys.argv[1:] if argv is None else argv)
    return run_cli("bench", lambda: build_parser(words), words, lambda args: args._run(args),
                   "finished work is kept and a re-run resumes it")


def program() -> NoReturn:
    """The ``bench`` program (console script, ``python -m bench``): :func:`main`, then exit with its status
    (a process of a launched job without the interpreter's teardown: :func:`bench.distributed.end_process`)."""
    from bench.distributed import end_process

    end_process(main())


if __name__ == "__main__":  # pragma: no cover
    program()
