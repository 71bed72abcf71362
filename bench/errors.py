"""Errors that the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Callable, Sequence


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, an unknown name.

    The message is one line that says what went wrong and what to do about it.
    """

    exit_code = 2


#: errno values of a full disk (or quota).
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

#: Set to 1 to see the traceback of an unexpected error instead of the one-line report.
DEBUG_ENV = "BENCH_DEBUG"


def run_guarded(prog: str, command: Callable[[], int | None], on_interrupt: str) -> int:
    """Run a CLI command and turn every way it can fail into one line on stderr.

    A :class:`BenchError` becomes ``<prog>: error: <message>`` and its exit status (2); an ``OSError`` (a path
    that is missing, read-only, a file where a folder is needed, a full disk) likewise exits 2; anything else
    is a bug: one line with a hint to report it, exit status 1 (``BENCH_DEBUG=1`` shows the traceback).
    """
    try:
        code = int(command() or 0)
        sys.stdout.flush()  # here, not at exit, so that a reader who stopped early (`| head -c 1`) is handled below
        return code
    except BenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        return 130
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return 0  # the reader of our output went away (`bench list | head -1`): nothing to say
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in NO_SPACE:
            print(f"{prog}: error: disk full{where or ' (a write to the output or cache directory)'} "
                  f"({exc.strerror}); free space and run the same command again (finished work is kept)",
                  file=sys.stderr)
            return 2
        print(f"{prog}: error: {exc.strerror or exc}{where}; check the path and its permissions", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory; use a smaller --batch-size (or fewer samples at once)", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line (and the traceback on request)
        if type(exc).__name__ == "OutOfMemoryError":  # torch's, on an accelerator; no torch import here
            print(f"{prog}: error: out of accelerator memory; use a smaller --batch-size (finished work is kept)",
                  file=sys.stderr)
            return 2
        if type(exc).__name__ == "SafetensorError":  # a damaged weights file that no reader named itself
            print(f"{prog}: error: a safetensors file is damaged or truncated ({str(exc)[:200]}); check the "
                  "weights or checkpoint given, or write it again", file=sys.stderr)
            return 2
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"{prog}: internal error: {type(exc).__name__}: {first[:300]}; this is a bug, please report it with "
              f"the command you ran ({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone; if so it is pointed at /dev/null, so that flushing it at
    exit does not fail a second time."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poller.poll(0)):
            return False
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    except (OSError, ValueError, AttributeError):  # not a file descriptor (a test's buffer), or no poll
        return False
    return True


def run_cli(prog: str, build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None,
            dispatch: Callable[[argparse.Namespace], int | None], on_interrupt: str) -> int:
    """Parse ``argv`` with the parser ``build_parser`` makes and call ``dispatch(args)``, under
    :func:`run_guarded`; no sub-command is a one-line error naming them. The entry point of every project CLI."""

    def command() -> int | None:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            raise BenchError(f"name a command: {', '.join(subs.choices)} (see `{prog} --help`)")
        return dispatch(args)

    return run_guarded(prog, command, on_interrupt)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as a :class:`BenchError`: one line, exit status 2 (used by every CLI
    of the project). Help texts may be taken from docstrings: their reStructuredText ``literals`` are shown as
    plain text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see `{self.prog} --help`)")

    def format_help(self) -> str:
        return super().format_help().replace("``", "")

    def format_usage(self) -> str:
        return super().format_usage().replace("``", "")
