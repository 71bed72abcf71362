"""Helpers shared by the test modules."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from bench.cli import main


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m bench ARGS`` in-process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()
