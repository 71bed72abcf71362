"""Errors that the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, an unknown name.

    The message is one line that says what went wrong and what to do about it.
    """

    exit_code = 2
