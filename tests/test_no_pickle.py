"""No pickle is ever loaded from disk by the package: a static scan of bench/, methods/ and training/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods", "training")
#: accelerate ``load_state`` calls that were audited, as "path:function" -> why they are safe. None today: the
#: trainer writes and reads its checkpoints itself (safetensors + JSON, training/checkpoint.py).
LOAD_STATE_ALLOWED: dict[str, str] = {}


def _call_name(node: ast.Call) -> str:
    parts = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword_is(node: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in node.keywords)


def problems_in(source: str, where: str) -> list[str]:
    """Unsafe deserialisation calls in one module's source."""
    found = []
    tree = ast.parse(source)
    functions = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                functions.setdefault(id(inner), node.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        here = f"{where}:{node.lineno}"
        if name.endswith("torch.load") and not _keyword_is(node, "weights_only", True):
            found.append(f"{here}: torch.load without weights_only=True")
        if name.split(".")[-1] == "load" and name.startswith(("np.", "numpy.")) and _keyword_is(node, "allow_pickle", True):
            found.append(f"{here}: np.load(allow_pickle=True)")
        if name in ("pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads"):
            found.append(f"{here}: {name}")
        if name.split(".")[-1] == "load_state":
            key = f"{where}:{functions.get(id(node), '<module>')}"
            if key not in LOAD_STATE_ALLOWED:
                found.append(f"{here}: accelerate load_state (unpickles its custom states) outside the allowlist")
    return found


def test_scanner_finds_each_kind_of_unsafe_load():
    source = (
        "import pickle, torch, numpy as np\n"
        "def f(p, acc):\n"
        "    torch.load(p)\n"
        "    torch.load(p, weights_only=False)\n"
        "    np.load(p, allow_pickle=True)\n"
        "    pickle.loads(b'')\n"
        "    acc.load_state(p)\n"
        "    torch.load(p, weights_only=True)\n"
        "    np.load(p)\n"
    )
    assert len(problems_in(source, "x.py")) == 5


def test_package_never_unpickles():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += problems_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)
