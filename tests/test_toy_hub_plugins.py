"""The offline toy hub's repositories come from plug-ins (the ``register_toy_repos`` hook): a third-party plug-in
adds one that ``python -m bench.toy_hub`` writes in the hub cache's layout; a clash or an unknown id is one line."""

from __future__ import annotations

import json

import pytest

from bench import hookimpl, plugins
from bench.errors import BenchError
from bench.hub_cache import MARKER, repo_folder
from bench.toy_hub import DINOV2, SD21_BASE, SD_TURBO, build, main, toy_repos

REPO = "someone/colour-net"


class ColourNetRepo:
    """A plug-in's toy repository: a config naming the seed and a weights file drawn from it."""

    @hookimpl
    def register_toy_repos(self, register):
        register(REPO, lambda seed: {"config.json": json.dumps({"seed": seed}).encode(),
                                     "weights/w.bin": bytes([seed % 256]) * 8})


def test_a_plugin_adds_a_repository_the_command_writes(tmp_path, capsys):
    plugins.register_plugin(ColourNetRepo(), name="colour-net")
    repos = list(toy_repos())
    # the built-in plug-ins' first (methods' generators, then bench.metrics' networks), the new one after them
    assert repos[0] == SD21_BASE and repos.index(SD_TURBO) < repos.index(DINOV2[0]) and repos[-1] == REPO
    assert main(["--cache", str(tmp_path), "--seed", "3", REPO]) == 0
    assert REPO in capsys.readouterr().out
    snap = next((repo_folder(tmp_path, REPO) / "snapshots").iterdir())
    assert json.loads((snap / "config.json").read_text()) == {"seed": 3}
    assert (snap / "weights" / "w.bin").read_bytes() == bytes([3]) * 8
    assert json.loads((snap / MARKER).read_text())["weights"] == "toy-hub"
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(REPO, "weights/w.bin", cache_dir=tmp_path)
    assert isinstance(found, str) and open(found, "rb").read() == bytes([3]) * 8


def test_a_repository_registered_twice_is_one_line(tmp_path):
    class Clash:
        @hookimpl
        def register_toy_repos(self, register):
            register(SD_TURBO, lambda seed: {})

    plugins.register_plugin(Clash(), name="clash")
    with pytest.raises(BenchError, match=f"{SD_TURBO}' is registered by both 'methods' and 'clash'"):
        build(tmp_path, [SD_TURBO])
    assert not any(tmp_path.iterdir())


def test_an_unknown_repository_is_one_line(tmp_path, capsys):
    assert main(["--cache", str(tmp_path), "nobody/nothing"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'nobody/nothing'" in err and SD_TURBO in err
    assert not any(tmp_path.iterdir())
