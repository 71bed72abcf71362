"""Turning failed weight downloads into one-line, actionable errors; safe checkpoint loading."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.errors import BenchError

#: Seconds a network read may stall before a download is given up (so offline machines never hang).
NETWORK_TIMEOUT_S = float(os.environ.get("BENCH_NETWORK_TIMEOUT", "20"))


def offline() -> bool:
    """True when the user asked for no network (HF_HUB_OFFLINE or BENCH_OFFLINE set to a true value)."""
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "BENCH_OFFLINE"))


def _is_download_failure(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    known = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "RepositoryNotFoundError",
        "EntryNotFoundError",
        "HfHubHTTPError",
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "URLError",
        "TimeoutError",
        "timeout",
        "gaierror",
        "ConnectError",
    }
    if names & known:
        return True
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return any(s in text for s in ("offline", "connection", "couldn't connect", "cannot find the requested files",
                                    "not found in cache", "hf_hub_offline", "network", "name resolution"))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


@contextlib.contextmanager
def explain_download_failure(what: str, files: str, hint: str | None = None) -> Iterator[None]:
    """Re-raise a failed download of ``what`` as a :class:`BenchError` naming ``files`` and what to do.

    Network reads inside the block time out after :data:`NETWORK_TIMEOUT_S` seconds instead of hanging.
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        yield
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        if not _is_download_failure(exc):
            raise
        why = "offline mode is on (HF_HUB_OFFLINE)" if offline() else f"download failed: {type(exc).__name__}"
        todo = hint or "download it on a machine with network access into the same cache, or pass a local path"
        raise BenchError(f"cannot load {what} ({why}); needed: {files}; {todo}") from exc
    finally:
        socket.setdefaulttimeout(old)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint's tensors: safetensors, or a torch file with ``weights_only=True`` (never pickled code)."""
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"checkpoint {p} does not exist; check the path")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    import torch

    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise BenchError(f"checkpoint {p} cannot be read as plain tensors ({type(exc).__name__}); "
                         "convert it to safetensors") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state
