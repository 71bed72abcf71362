"""Runtime preparation of loaded networks: memory format, torch.compile and CUDA-graph replay.

Kept apart from hub loading (:mod:`methods.loading`) and from the generation math (:mod:`methods.onestep`), so
that neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def prepare_modules(modules: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``channels_last`` and ``compile`` to loaded networks (in place); returns what was applied."""
    import torch

    applied: dict[str, Any] = {}
    if args.get("channels_last"):
        for key in ("unet", "vae"):
            if modules.get(key) is not None:
                modules[key].to(memory_format=torch.channels_last)
        applied["channels_last"] = True
    if args.get("compile"):
        mode = args.get("compile_mode") or "default"
        for key in ("text_encoder", "unet"):
            if modules.get(key) is not None:
                modules[key].compile(mode=mode)
        vae = modules.get("vae")
        if vae is not None:
            vae.decoder.compile(mode=mode)
        applied["compile"] = mode
    return applied


class CudaGraphStage:
    """Replays a tensor -> tensor function as a CUDA graph, one graph per input shape.

    The first call with a new shape warms the function up on a side stream, then captures it; later calls
    copy the inputs into the captured buffers and replay. Outputs are cloned, so callers may keep them. When
    capture fails (a host synchronisation inside the function, say) the function runs eagerly from then on
    and :attr:`failures` says why.
    """

    def __init__(self, fn: Callable[..., Any], pool: Any = None, warmup: int = 2) -> None:
        self.fn = fn
        self.pool = pool
        self.warmup = warmup
        self.graphs: dict[tuple, Any] = {}
        self.failures: list[str] = []

    def __call__(self, *inputs: Any) -> Any:
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(inputs)
        if entry is False:
            return self.fn(*inputs)
        static_in, static_out, graph = entry
        for buf, value in zip(static_in, inputs, strict=True):
            buf.copy_(value)
        graph.replay()
        return static_out.clone()

    def _capture(self, inputs: Sequence[Any]) -> Any:
        import torch

        static_in = [t.clone() for t in inputs]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(stream):
                for _ in range(self.warmup):
                    self.fn(*static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                static_out = self.fn(*static_in)
        except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager execution
            torch.cuda.synchronize()
            self.failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200])
            return False
        return static_in, static_out, graph
