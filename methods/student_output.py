"""Safe output directories for student directories (``training export``, ``training merge``).

Outputs never overlap an input (same path, parent or child), an existing non-empty output is replaced only with
``--overwrite`` and only when it is a model directory (anything else is refused), and the result is written to a temporary directory next to the output and renamed into place,
so a crash never leaves half a model under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.errors import BenchError
from bench.run_dir import follow_umask


def check_no_overlap(output: str | Path, inputs: Sequence[str | Path]) -> None:
    """One-line error when ``output`` is, contains or lies inside one of ``inputs``."""
    out = Path(output).resolve()
    for item in inputs:
        inp = Path(item).resolve()
        if out == inp or out in inp.parents or inp in out.parents:
            raise BenchError(f"--output-dir {output} overlaps the input {item}; choose a directory outside it")


#: What a model directory written by ``training`` holds: its model card, or a diffusers UNet.
MODEL_MARKERS = ("bench_model.json", "diffusion_pytorch_model.safetensors")


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` is recognisably a model directory (the only kind ``--overwrite`` replaces)."""
    return (path / MODEL_MARKERS[0]).is_file() or ((path / "config.json").is_file()
                                                   and (path / MODEL_MARKERS[1]).is_file())


@contextlib.contextmanager
def staged_output(output: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``output``; on success it replaces ``output``."""
    final = Path(output)
    if final.exists() and not final.is_dir():
        raise BenchError(f"--output-dir {final} exists and is not a directory")
    if final.is_dir() and any(final.iterdir()):
        if not is_model_dir(final):
            raise BenchError(f"--output-dir {final} exists, is not empty and is not a model directory (no "
                             f"{MODEL_MARKERS[0]} or config.json + {MODEL_MARKERS[1]}), so it is never replaced; "
                             "choose another --output-dir")
        if not overwrite:
            raise BenchError(f"--output-dir {final} exists and is not empty; pass --overwrite to replace it")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise BenchError(f"cannot write next to {final} ({exc.strerror or exc}); choose a writable directory") from None
    try:
        yield tmp
        follow_umask(tmp)  # mkdtemp makes it 0700 and some writers force 0600; the result follows the umask
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
