"""Merging two one-step models in memory: the sources of a merge and the merged generator.

``theta = lambda * theta_A + (1 - lambda) * theta_B`` on the denoiser (lambda = 1 is A), computed in float32 by
:func:`bench.state_interpolation.interpolate_state_dicts` and cast to the run dtype. Each source is loaded once, in float32,
and fingerprinted (sha256 over its denoiser tensors). The other components (text encoder, decoder, tokenizer,
scheduler config) must be the same in A and B (compared by content hash) unless ``components`` says which to use:

``"checked equal"``  both sources' components hash equal (the default; otherwise a one-line error)
``"from a"``/``"from b"``  that source's components, whatever the other holds
``"merged"``         text encoder and decoder interpolated with the same lambda (tokenizer and scheduler config
                     must still be equal)

A source is ``NAME[:k=v,k=v]`` (a registered method and its ``--method-args``) or a directory written by the
training module (an export: ``sbv2:weights=DIR``; its ``lora/`` adapter: fused into the base, loaded on the
export's networks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.generator import Generator
from bench.options import parse_kv
from bench.state_interpolation import interpolate_constants

COMPONENT_CHOICES = {"check": "checked equal", "a": "from a", "b": "from b", "merge": "merged"}
#: Components that can be interpolated (the others must be equal).
MERGEABLE = ("text_encoder", "vae")


def state_fingerprint(state: dict[str, Any]) -> str:
    """sha256 over a state's entries in key order: name, dtype, shape and bytes of tensors; JSON of the rest."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        h.update(key.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"{t.dtype}:{tuple(value.shape)}\0".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode() + b"\0")
    return h.hexdigest()


def parse_source(text: str) -> tuple[str, dict[str, str]]:
    """``"sbv2:weights=runs/a"`` -> ``("sbv2", {"weights": "runs/a"})``; a bare directory means ``sbv2``."""
    name, sep, rest = text.partition(":")
    if not sep and (Path(text).is_dir() or "/" in text):
        return "sbv2", {"weights": text}
    if not name:
        raise BenchError(f"source {text!r} must be NAME[:k=v,k=v], e.g. sbv2:weights=runs/a")
    return name, parse_kv(rest, "source")


def method_class(method: str) -> type[Generator]:
    """The generator class registered as ``method`` (its merge contract); the base class's defaults when the
    method is registered as a factory function rather than a class."""
    from bench import plugins

    factory = plugins.current().methods.get(method).resolve()
    return factory if isinstance(factory, type) and issubclass(factory, Generator) else Generator


@dataclass
class Source:
    """One side of a merge, loaded once: its generator, its float32 denoiser state and fingerprints."""

    label: str
    spec: str
    method: str
    method_args: dict[str, Any]
    generator: Generator
    state: dict[str, Any]
    fingerprint: str
    components: dict[str, dict[str, Any]]
    component_hashes: dict[str, str] = field(default_factory=dict)
    #: Local directory of the weights (an export or LoRA directory), when there is one.
    directory: str | None = None
    #: The loaded denoiser's sampling constants (:meth:`bench.generator.Generator.merge_constants`).
    constants: dict[str, float] = field(default_factory=dict)

    def content_spec(self) -> str:
        """The source spec with a local weights folder written as its content (the denoiser's fingerprint), so a
        renamed or moved folder with the same weights is the same source."""
        if not self.directory:
            return self.spec
        method, args = parse_source(self.spec)
        args = {**args, "weights": f"sha256:{self.fingerprint}"}
        return f"{method}:" + ",".join(f"{k}={v}" for k, v in sorted(args.items()))

    def record(self) -> dict[str, Any]:
        """The source as ``sweep.json`` records it."""
        return {"source": self.spec, "method": self.method, "method_args": self.method_args,
                "fingerprint": self.fingerprint, "components": self.component_hashes, "constants": self.constants}


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a state whose tensors no later in-place load can change."""
    return {k: v.detach().clone() if hasattr(v, "detach") else v for k, v in state.items()}


def load_source(label: str, spec: str, device: Any) -> Source:
    """Build and load ``spec`` once in float32 on ``device``; copy its denoiser state (a LoRA adapter is fused)."""
    import torch

    from bench import plugins

    method, args = parse_source(spec)
    cls = method_class(method)
    try:
        adapter = cls.merge_adapter(args)
    except BenchError as exc:
        raise BenchError(f"{label}: {exc}") from None
    build_args, lora = adapter if adapter is not None else (dict(args), None)
    weights = build_args.get("weights")
    gen = plugins.current().methods.get(method).build(**build_args)
    gen.load(torch.device(device), torch.float32)
    if lora is not None:  # the adapter's export directory gave the base networks and card; the adapter, fused
        gen.load_denoiser_state(cls.fused_adapter_state(lora))
    state = _copied(gen.denoiser_state())
    components = {name: _copied(part) for name, part in gen.component_states().items()}  # the host's change
    local = str(lora) if lora is not None else (weights if weights and Path(weights).is_dir() else None)
    return Source(label=label, spec=spec, method=method, method_args=dict(gen.args), generator=gen, state=state,
                  fingerprint=state_fingerprint(state), components=components,
                  component_hashes={k: state_fingerprint(v) for k, v in sorted(components.items())},
                  directory=local, constants=dict(gen.merge_constants()))


def check_same_architecture(a: Source, b: Source) -> None:
    """One-line error naming the first denoiser tensor whose name or shape differs between A and B."""
    only = sorted(set(a.state) ^ set(b.state))
    if only:
        side = "A" if only[0] in a.state else "B"
        raise BenchError(f"the denoisers of {a.spec} and {b.spec} have different architectures: tensor {only[0]!r} "
                         f"is only in {side} ({len(only)} differ)")
    for key in sorted(a.state):
        if tuple(a.state[key].shape) != tuple(b.state[key].shape):
            raise BenchError(f"the denoisers of {a.spec} and {b.spec} have different architectures: tensor {key!r} "
                             f"has shape {tuple(a.state[key].shape)} in A and {tuple(b.state[key].shape)} in B")


def resolve_components(a: Source, b: Source, choice: str) -> str:
    """The recorded components choice; one-line error when the components differ and ``choice`` does not say
    what to use (or ``merged`` cannot interpolate what differs)."""
    if choice not in COMPONENT_CHOICES:
        raise BenchError(f"--components {choice!r}: use one of {', '.join(COMPONENT_CHOICES)}")
    names = sorted(set(a.component_hashes) | set(b.component_hashes))
    differ = [n for n in names if a.component_hashes.get(n) != b.component_hashes.get(n)]
    if choice == "check" and differ:
        raise BenchError(f"A and B have different {', '.join(differ)} ({a.spec} vs {b.spec}); pass --components a, b "
                         "or merge to say which to use")
    if choice == "merge":
        fixed = [n for n in differ if n not in MERGEABLE]
        if fixed:
            raise BenchError(f"--components merge cannot interpolate {', '.join(fixed)}, which differ between A and "
                             "B; pass --components a or b")
    return COMPONENT_CHOICES[choice]


class MergedGenerator(Generator):
    """``lam * A + (1 - lam) * B`` on the denoiser of a host source (A, or B for ``components="from b"``).

    Every point of a sweep shares the host: :meth:`load` writes this point's merged weights into it (the host is
    loaded in the run's dtype once). ``args`` name both sources, their fingerprints and lambda, so a changed
    source changes the run's identity.
    """

    name = "merge"

    def __init__(self, a: Source, b: Source, lam: float, components: str = "checked equal") -> None:
        self.a, self.b, self.lam, self.components = a, b, float(lam), components
        self.host = b.generator if components == "from b" else a.generator
        #: x0 constants and the like, merged with the weights (each source's own at the ends of a sweep)
        self.constants = interpolate_constants(a.constants, b.constants, self.lam)
        # identity by content: a local source folder counts by its weights, not its path (``describe`` keeps paths)
        self.args = {"a": a.content_spec(), "a_fingerprint": a.fingerprint, "b": b.content_spec(),
                     "b_fingerprint": b.fingerprint,
                     "lambda": self.lam, "components": components, "constants": self.constants,
                     "convention": "theta = lambda * theta_A + (1 - lambda) * theta_B"}

    @property
    def device(self) -> Any:  # type: ignore[override]
        return self.host.device

    @property
    def dtype(self) -> Any:  # type: ignore[override]
        return self.host.dtype

    def load(self, device: Any, dtype: Any) -> None:
        import torch

        from bench.state_interpolation import interpolate_state_dicts

        if self.host.device != torch.device(device) or self.host.dtype != dtype:
            self.host.load(device, dtype)  # once per sweep: the host is shared by every point
        self.host.load_denoiser_state(interpolate_state_dicts(self.a.state, self.b.state, self.lam))
        self.host.load_merge_constants(self.constants)
        if self.components == "merged":
            self.host.load_component_states({n: interpolate_state_dicts(self.a.components[n], self.b.components[n],
                                                                        self.lam) for n in MERGEABLE})

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return self.host.noise_shape

    @property
    def image_size(self) -> tuple[int, int]:
        return self.host.image_size

    @property
    def fixed_batch(self) -> bool:
        return self.host.fixed_batch

    def encode_prompts(self, prompts: Any) -> Any:
        return self.host.encode_prompts(prompts)

    def denoise(self, noise: Any, conditioning: Any) -> Any:
        return self.host.denoise(noise, conditioning)

    def decode(self, latents: Any) -> Any:
        return self.host.decode(latents)

    def describe(self) -> dict[str, Any]:
        host = self.host.describe()
        sources = {"a": self.a.record(), "b": self.b.record()}
        return {"name": self.name, "method_args": self.args, "weights": host.get("weights", "pretrained"),
                "merge": {**sources, "lambda": self.lam, "components": self.components, "constants": self.constants,
                          "host": "b" if self.host is self.b.generator else "a"}, "host": host}
