"""The command plug-in interface: a sub-command of ``python -m bench``.

Commands register through the ``register_commands(register)`` hook like methods, suites and metrics; the
built-in ones (``list``, ``run``, ``latency``, ``data``, ...) are ordinary plug-ins of it. A command's module is
imported, and its parser built, only when that command runs or its ``--help`` is asked for; ``python -m bench
--help`` shows the ``description=`` it was registered with. A command module should still not import heavy
libraries at import time: ``--help`` should be quick.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar


class Command(ABC):
    """One sub-command: its help line, its arguments and what it does."""

    #: The name it is registered under (set by the registry).
    name: str = ""

    #: One line for ``python -m bench --help``.
    help: ClassVar[str] = ""
    #: The sub-command's own ``--help`` text (default: :attr:`help`).
    description: ClassVar[str | None] = None

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments on its own parser."""

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit status. User errors raise :class:`bench.errors.BenchError`."""


def function_command(help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                     run: Callable[[argparse.Namespace], int], description: str | None = None) -> type[Command]:
    """A :class:`Command` class made of a module's ``add_arguments(parser)`` and ``run(args)`` functions (how
    the built-in commands are written); register the returned class like any other."""
    return type("FunctionCommand", (Command,), {
        "help": help, "description": description,
        "add_arguments": lambda self, parser: add_arguments(parser),
        "run": lambda self, args: run(args),
        "__doc__": help,
    })
