"""Content fingerprints: what a folder holds, hashed again whenever a file may have changed, whatever its
size and modification time say."""

from __future__ import annotations

import hashlib
import os
import shutil

from bench import fingerprint

BIG = 4 * fingerprint.SAMPLE_BYTES  # larger than the content sample: its hash is cached


def _counting(monkeypatch) -> list[int]:
    hashed: list[int] = []
    real = fingerprint._sha256_fd
    monkeypatch.setattr(fingerprint, "_sha256_fd", lambda fd: hashed.append(fd) or real(fd))
    return hashed


def test_folder_fingerprint_is_content_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    weights = os.urandom(BIG)
    (model / "unet" / "w.safetensors").write_bytes(weights)
    (model / "config.json").write_text("{}")
    (model / ".lock").write_text("123")  # hidden files are not content
    hashed = _counting(monkeypatch)
    first = fingerprint.path_fingerprint(model)
    by_hand = hashlib.sha256()
    for rel, data in (("config.json", b"{}"), ("unet/w.safetensors", weights)):
        by_hand.update(f"{rel}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert first == {"sha256": by_hand.hexdigest(), "files": 2} and len(hashed) == 1  # small files: no cache
    assert fingerprint.path_fingerprint(model) == first and len(hashed) == 1, "unchanged files are not hashed again"
    (model / "unet" / "w.safetensors").write_bytes(os.urandom(BIG))
    os.utime(model / "unet" / "w.safetensors", ns=(1, 1))
    assert fingerprint.path_fingerprint(model)["sha256"] != first["sha256"] and len(hashed) == 2
    one = fingerprint.path_fingerprint(model / "config.json")
    assert one == {"sha256": hashlib.sha256(b"{}").hexdigest(), "files": 1}


def test_a_file_replaced_with_the_same_size_and_time_is_noticed(tmp_path, monkeypatch):
    """`cp` over the file, then `touch -r` to restore its time: the change time and inode still differ; and a
    byte changed in place (same inode) changes the content sample."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "w.safetensors"
    f.write_bytes(os.urandom(BIG))
    first = fingerprint.path_fingerprint(f)["sha256"]
    stat = f.stat()
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(BIG))
    shutil.copyfile(other, f)
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert f.stat().st_size == stat.st_size and f.stat().st_mtime_ns == stat.st_mtime_ns
    assert fingerprint.path_fingerprint(f)["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest() != first
    # the cache is also refused when only the sample differs (a stale entry whose stat still matches)
    cache = fingerprint._HashCache()
    entry = cache.entries[str(f.resolve())]
    entry["sha256"] = "0" * 64
    entry["sample"] = "stale"
    cache.changed = True
    cache.save()
    assert fingerprint.path_fingerprint(f)["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()


def test_output_folders_inside_a_folder_are_not_its_content(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    first = fingerprint.path_fingerprint(model)
    (model / "runs" / "smoke-sbv2").mkdir(parents=True)
    (model / "runs" / "smoke-sbv2" / ".lock").write_text("1")
    (model / "runs" / "smoke-sbv2" / "config.json").write_text("{}")
    (model / "mine").mkdir()
    (model / "mine" / "config.json").write_text("{}")
    assert fingerprint.path_fingerprint(model, exclude=[model / "mine"]) == first
    assert fingerprint.path_fingerprint(model)["files"] == 2


def test_files_digest_is_names_and_contents(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"aaaa")
    b.write_bytes(os.urandom(BIG))
    by_hand = hashlib.sha256()
    for name, data in (("a.jpg", b"aaaa"), ("b.jpg", b.read_bytes())):
        by_hand.update(f"{name}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    assert fingerprint.files_digest([a, b]) == by_hand.hexdigest()
    a.write_bytes(b"bbbb")  # same name, same size
    assert fingerprint.files_digest([a, b]) != by_hand.hexdigest()
