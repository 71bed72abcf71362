"""``bench data coco`` and the downloader, against a local HTTP server on 127.0.0.1: resuming interrupted
transfers (within a command and across commands), rejecting bad checksums, unpacking, and offline behaviour."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError


class Server:
    """Serves ``files`` (name -> bytes) with Range support; ``cut[name] = n`` makes the next ``drops`` responses
    for that file stop after n bytes (the connection closes mid-transfer)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.drops = 0
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                name = self.path.rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                owner.requests.append((name, rng))
                data = owner.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in owner.cut and owner.drops > 0:
                    owner.drops -= 1
                    body = body[: max(0, owner.cut[name] - start)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def _remote(name: str, data: bytes, base: str, md5: str | None = None, unpacks_to: str | None = None):
    from bench.download import RemoteFile

    return RemoteFile(name, f"{base}/{name}", len(data), md5 or hashlib.md5(data).hexdigest(), unpacks_to)


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    from bench.download import fetch

    data = bytes(range(256)) * 4000  # about 1 MB
    server.files["blob.bin"] = data
    server.cut["blob.bin"] = 300_000
    server.drops = 1
    path = fetch(_remote("blob.bin", data, server.url), tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == data
    assert server.requests == [("blob.bin", None), ("blob.bin", "bytes=300000-")]
    assert not (tmp_path / "blob.bin.part").exists()


def test_partial_download_is_kept_and_resumed_by_the_next_command(server, tmp_path):
    from bench.download import fetch

    data = b"0123456789" * 50_000
    server.files["blob.bin"] = data
    server.cut["blob.bin"] = 123_456
    server.drops = 1
    with pytest.raises(BenchError, match="run the same command again to resume"):
        fetch(_remote("blob.bin", data, server.url), tmp_path, progress=False, timeout=10, retries=0)
    assert (tmp_path / "blob.bin.part").stat().st_size == 123_456
    assert not (tmp_path / "blob.bin").exists(), "an incomplete file never gets its final name"
    path = fetch(_remote("blob.bin", data, server.url), tmp_path, progress=False, timeout=10)
    assert path.read_bytes() == data
    assert server.requests[-1] == ("blob.bin", "bytes=123456-")


def test_checksum_mismatch_is_rejected(server, tmp_path):
    from bench.download import fetch

    data = b"not the file you were promised" * 100
    server.files["blob.bin"] = data
    wrong = _remote("blob.bin", data, server.url, md5="0" * 32)
    with pytest.raises(BenchError, match="checksum mismatch for blob.bin"):
        fetch(wrong, tmp_path, progress=False, timeout=10)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()
    # a complete file already in place with the wrong content is rejected too, not trusted
    (tmp_path / "blob.bin").write_bytes(data)
    with pytest.raises(BenchError, match="checksum mismatch"):
        fetch(wrong, tmp_path, progress=False, timeout=10)


def _coco_zips(coco_root: Path) -> dict[str, bytes]:
    """The fixture's COCO-like data packed like the official zips."""
    out = {}
    for name, prefix in (("annotations_trainval2014.zip", "annotations"), ("val2014.zip", "val2014")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for p in sorted((coco_root / prefix).iterdir()):
                zf.write(p, f"{prefix}/{p.name}")
        out[name] = buf.getvalue()
    return out


def test_data_coco_command_downloads_verifies_and_unpacks(server, coco_root, tmp_path, monkeypatch):
    import bench.download as download

    zips = _coco_zips(coco_root)
    server.files.update(zips)
    server.cut["val2014.zip"] = len(zips["val2014.zip"]) // 2
    server.drops = 1
    table = (_remote("annotations_trainval2014.zip", zips["annotations_trainval2014.zip"], "http://unused",
                     unpacks_to="annotations/captions_val2014.json"),
             _remote("val2014.zip", zips["val2014.zip"], "http://unused", unpacks_to="val2014"))
    monkeypatch.setattr(download, "COCO_2014_FILES", table)
    root = tmp_path / "coco"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["data", "coco", "--root", str(root), "--base-url", server.url, "--no-progress"])
    assert rc == 0, err.getvalue()
    assert "COCO 2014 ready" in out.getvalue()
    assert (root / "annotations" / "captions_val2014.json").read_bytes() == \
        (coco_root / "annotations" / "captions_val2014.json").read_bytes()
    assert sorted(p.name for p in (root / "val2014").iterdir()) == sorted(p.name for p in (coco_root / "val2014").iterdir())
    assert not list(root.glob("*.zip")) and not list(root.glob("*.part"))
    assert ("val2014.zip", f"bytes={len(zips['val2014.zip']) // 2}-") in server.requests
    # the suite reads what was fetched; running the command again fetches nothing
    from bench.suites.coco import Coco30kSuite

    assert len(Coco30kSuite(data_root=str(root), num_prompts=4).prompts()) == 4
    n = len(server.requests)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert main(["data", "coco", "--root", str(root), "--base-url", server.url, "--no-progress"]) == 0
    assert len(server.requests) == n


def test_data_coco_rejects_a_file_that_is_not_the_official_one(server, tmp_path, monkeypatch):
    import bench.download as download

    fake = b"PK\x05\x06" + b"\x00" * 18  # an empty zip, not COCO's annotations
    server.files["annotations_trainval2014.zip"] = fake
    real = download.COCO_2014_FILES[0]
    monkeypatch.setattr(download, "COCO_2014_FILES", (download.RemoteFile(
        real.name, real.url, len(fake), real.md5, real.unpacks_to),))
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["data", "coco", "--root", str(tmp_path), "--base-url", server.url, "--annotations-only",
                   "--no-progress"])
    assert rc == 2
    line = err.getvalue().strip().splitlines()[-1]
    assert "checksum mismatch for annotations_trainval2014.zip" in line and real.md5 in line
    assert not list(tmp_path.iterdir())


def test_data_coco_offline_says_what_to_fetch_by_hand(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["data", "coco", "--root", str(tmp_path / "coco")])
    assert rc == 2 and err.getvalue().count("\n") == 1
    msg = err.getvalue()
    for text in ("offline", "http://images.cocodataset.org/zips/val2014.zip", "a3d79f5ed8d289b7a7554ce06a5782b3",
                 "http://images.cocodataset.org/annotations/annotations_trainval2014.zip", "6,645,013,297 bytes",
                 f"python -m bench data coco --root {tmp_path / 'coco'}"):
        assert text in msg, text


def test_files_fetched_by_hand_are_verified_and_unpacked(coco_root, tmp_path, monkeypatch):
    import bench.download as download

    zips = _coco_zips(coco_root)
    root = tmp_path / "coco"
    root.mkdir()
    for name, data in zips.items():
        (root / name).write_bytes(data)
    table = tuple(_remote(n, d, "http://images.cocodataset.org/zips", unpacks_to=u)
                  for (n, d), u in zip(zips.items(), ("annotations/captions_val2014.json", "val2014"), strict=True))
    monkeypatch.setattr(download, "COCO_2014_FILES", table)
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert main(["data", "coco", "--root", str(root), "--keep-zips"]) == 0
    assert (root / "val2014").is_dir() and (root / "val2014.zip").exists()


def test_data_hpsv2_offline_names_the_hub_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        rc = main(["data", "hpsv2", "--root", str(tmp_path / "prompts")])
    assert rc == 2 and err.getvalue().count("\n") == 1
    assert "zhwang/HPDv2" in err.getvalue() and "benchmark/photo.json" in err.getvalue()
