"""Running one evaluation over several processes (GPUs, nodes) started by ``accelerate launch`` or ``torchrun``.

The work is split by a fixed rule that does not depend on timing: the suite's samples are cut into chunks of
``--batch-size`` consecutive samples, and chunk ``c`` belongs to rank ``c % world_size``. Every chunk is
generated (and its features extracted) as one batch whatever the number of processes, so the images and
features are the same as in a single-process run. Each rank writes its own journal; rank 0 merges them and
computes the metrics once, after every rank has finished. The run directory must be on a file system that
every rank sees (the same disk, or a shared one across nodes).

A launch is detected from the environment the launchers set (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``, or the
MPI equivalents); without one, the run is a plain single process and nothing distributed is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from bench.errors import BenchError

_WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL_RANK_VARS = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise BenchError(f"environment variable {name}={value!r} is not an integer; check the launcher "
                                 "settings") from None
    return default


def launched_world_size() -> int:
    """The number of processes the launcher started (1 when not launched by one)."""
    return max(1, _env_int(_WORLD_VARS, 1))


def owner(chunk: int, world_size: int) -> int:
    """The rank that handles chunk number ``chunk``."""
    return chunk % world_size


@dataclass
class Distributed:
    """This process's place in the job and the few collective operations a run needs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, device: Any) -> Any:
        """The device this rank uses: ``cuda`` becomes ``cuda:<local rank>`` in a multi-process run."""
        import torch

        if self.active and getattr(device, "type", "") == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        return device

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (a list of one outside a multi-process run)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def agree(self, error: str | None, payload: Any = None) -> list[Any]:
        """A barrier that also shares failures: if any rank reports an error, every rank raises it.

        Returns every rank's ``payload`` when none failed.
        """
        reports = self.gather({"error": error, "payload": payload})
        for rank, report in enumerate(reports):
            if report["error"]:
                prefix = f"rank {rank}: " if self.active and rank != self.rank else ""
                raise BenchError(prefix + report["error"])
        return [r["payload"] for r in reports]

    def close(self) -> None:
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


_current: Distributed | None = None


def init(device_kind: str = "auto") -> Distributed:
    """Join the launcher's process group (once per process); ``device_kind`` is ``cpu``, ``cuda`` or ``auto``.

    Uses accelerate's ``PartialState``, which understands torchrun, accelerate and MPI launches, and picks
    NCCL on GPUs and gloo on CPUs.
    """
    global _current
    world = launched_world_size()
    if world <= 1:
        return Distributed()
    if _current is not None:
        return _current
    cpu = device_kind == "cpu"
    if device_kind == "auto":
        import torch

        cpu = not torch.cuda.is_available()
    try:
        from accelerate import PartialState

        state = PartialState(cpu=cpu)
        rank, world, local = state.process_index, state.num_processes, state.local_process_index
        backend = str(state.backend) if state.backend else None
    except ImportError:  # pragma: no cover - accelerate is a dependency; plain torch.distributed as a fallback
        import torch.distributed as dist

        backend = "gloo" if cpu else "nccl"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        local = _env_int(_LOCAL_RANK_VARS, 0)
    _current = Distributed(rank=rank, world_size=world, local_rank=local, backend=backend)
    return _current


def shutdown() -> None:
    """Leave the process group (end of a multi-process run)."""
    global _current
    if _current is not None:
        _current.close()
        _current = None


@contextmanager
def joined(device_kind: str = "auto") -> Iterator[Distributed]:
    """This process's place in the launched job (see :func:`init`) for the length of a command."""
    try:
        yield init(device_kind)
    finally:
        shutdown()


def end_process(status: int) -> NoReturn:
    """Exit with ``status``; one process of a launched job exits at once, without the interpreter's teardown.

    Called when the command has finished and written everything. Under gloo (torch 2.14, CPU), about one
    rank exit in thirty aborted in C++ teardown after the run had finished and left its process group
    ("terminate called without an active exception", SIGABRT, no Python frame): the launcher then reports a
    failed job, and torchrun's agent on the other node waits at its exit barrier (five minutes by default).
    """
    try:
        launched = launched_world_size() > 1
    except BenchError:  # not a launch this process joined (init would have refused it)
        launched = False
    if not launched:
        raise SystemExit(status)
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing more can reach it
            pass
    os._exit(status)
