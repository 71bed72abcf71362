"""Errors that the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, an unknown name.

    The message is one line that says what went wrong and what to do about it.
    """

    exit_code = 2


def run_guarded(prog: str, command: Callable[[], int | None], on_interrupt: str) -> int:
    """Run a CLI command; a :class:`BenchError` becomes ``<prog>: error: <message>`` and its exit status."""
    try:
        return int(command() or 0)
    except BenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        return 130


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as a :class:`BenchError`: one line, exit status 2 (used by every CLI
    of the project)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see `{self.prog} --help`)")
