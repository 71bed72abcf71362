"""Content fingerprints: what a folder holds, hashed once per (path, size, modification time)."""

from __future__ import annotations

import hashlib
import os

from bench import fingerprint


def test_folder_fingerprint_is_content_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "w.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    (model / ".lock").write_text("123")  # hidden files are not content
    hashed = []
    real = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda p: hashed.append(p) or real(p))
    first = fingerprint.path_fingerprint(model)
    by_hand = hashlib.sha256()
    for rel, data in (("config.json", b"{}"), ("unet/w.safetensors", b"weights")):
        by_hand.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert first == {"sha256": by_hand.hexdigest(), "files": 2} and len(hashed) == 2
    assert fingerprint.path_fingerprint(model) == first and len(hashed) == 2, "unchanged files are not hashed again"
    (model / "unet" / "w.safetensors").write_bytes(b"other weights")
    os.utime(model / "unet" / "w.safetensors", ns=(1, 1))
    assert fingerprint.path_fingerprint(model)["sha256"] != first["sha256"] and len(hashed) == 3
    one = fingerprint.path_fingerprint(model / "config.json")
    assert one == {"sha256": hashlib.sha256(b"{}").hexdigest(), "files": 1}
