"""Downloading data files: resumable HTTP transfers with a progress bar, size and checksum checks, unpacking.

A transfer writes to ``<name>.part`` and asks the server for the remaining bytes (an HTTP Range request)
when a partial file exists, so an interrupted download continues where it stopped, within one command
(a few retries) and across commands. The finished file must have the expected size and checksum before it
is renamed to its final name; a mismatch removes the partial file and says so. Archives are unpacked into a
temporary folder inside the destination and moved into place, with a stamp file recording completion.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import ipaddress
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.hub_errors import offline

CHUNK = 1 << 20
RETRIES = 3
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name, URL, size in bytes, MD5 checksum, and what unpacking it yields."""

    name: str
    url: str
    size: int | None
    md5: str | None = None
    unpacks_to: str | None = None
    what: str = ""

    def describe(self) -> str:
        size = f"{self.size:,} bytes" if self.size else "size unknown"
        md5 = f", md5 {self.md5}" if self.md5 else ""
        return f"{self.url} ({size}{md5})"


#: The official MS-COCO 2014 files the coco30k suite reads. Sizes and MD5 sums as published by several
#: independent mirrors and dataset loaders of these exact files.
COCO_2014_FILES: tuple[RemoteFile, ...] = (
    RemoteFile("annotations_trainval2014.zip", "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
               252_872_794, "0a379cfc70b0e71301e0f377548639bd", "annotations/captions_val2014.json",
               "COCO 2014 train/val annotations (captions_val2014.json)"),
    RemoteFile("val2014.zip", "http://images.cocodataset.org/zips/val2014.zip",
               6_645_013_297, "a3d79f5ed8d289b7a7554ce06a5782b3", "val2014",
               "COCO 2014 validation images (40,504 JPEGs)"),
)


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def by_hand(files: Sequence[RemoteFile], dest: Path, command: str) -> str:
    listing = "; ".join(f.describe() for f in files)
    return f"fetch by hand into {dest}: {listing}; then run `{command}` to verify and unpack"


def _verified_stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stamp_value(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def verify(file: RemoteFile, path: Path) -> None:
    """Check size and MD5 of a finished file (remembered in a stamp, so a 6 GB file is hashed once)."""
    stamp = _verified_stamp(path)
    if stamp.exists() and stamp.read_text() == _stamp_value(path):
        return
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        raise BenchError(f"{path} has {size:,} bytes, expected {file.size:,}; delete it and download again")
    if file.md5:
        got = file_md5(path)
        if got != file.md5:
            raise BenchError(f"checksum mismatch for {path}: md5 {got}, expected {file.md5}; delete it and download "
                             "again")
    stamp.write_text(_stamp_value(path))


def fetch(file: RemoteFile, dest: Path, url: str | None = None, progress: bool = True,
          timeout: float | None = None, retries: int = RETRIES, command: str = "") -> Path:
    """Download ``file`` into ``dest`` (resuming a ``.part`` file); returns the verified path.

    ``command`` is the command line a user re-runs after fetching by hand (for error messages).
    """
    from bench.hub_errors import NETWORK_TIMEOUT_S

    url = url or file.url
    command = command or "the same command"
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / file.name
    if final.exists():
        verify(file, final)
        return final
    if offline() and not is_loopback(url):
        raise BenchError(f"offline (BENCH_OFFLINE/HF_HUB_OFFLINE is set), so {file.name} is not downloaded; "
                         + by_hand([file], dest, command))
    part = dest / f"{file.name}.part"
    timeout = timeout or NETWORK_TIMEOUT_S
    attempt = 0
    while True:
        try:
            _transfer(url, part, file.size, timeout, progress, file.name)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                raise BenchError(f"download of {file.name} was interrupted {attempt} times ({exc}); "
                                 f"{part.stat().st_size if part.exists() else 0:,} bytes are kept in {part}: run "
                                 "the same command again to resume") from None
            time.sleep(min(5.0, 0.2 * attempt))
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
                raise BenchError(f"disk full while downloading {file.name} into {dest}; free space and run the "
                                 "same command again to resume") from exc
            reason = getattr(exc, "reason", None) or exc
            raise BenchError(f"cannot download {url} ({reason}); " + by_hand([file], dest, command)) from exc
    size = part.stat().st_size
    if file.size is not None and size != file.size:
        part.unlink(missing_ok=True)
        raise BenchError(f"{file.name}: the server sent {size:,} bytes, expected {file.size:,}; the partial file was "
                         "removed, run the command again")
    if file.md5:
        got = file_md5(part)
        if got != file.md5:
            part.unlink(missing_ok=True)
            raise BenchError(f"checksum mismatch for {file.name}: md5 {got}, expected {file.md5}; the download was "
                             "removed; check the URL or mirror and run the command again")
    os.replace(part, final)
    _verified_stamp(final).write_text(_stamp_value(final))
    return final


class _Interrupted(Exception):
    """The connection ended before the file did (resumable)."""


def _transfer(url: str, part: Path, size: int | None, timeout: float, progress: bool, label: str) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "sbv2-bench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from our table
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the part file is already complete (or wrong)
            return
        raise
    with response:
        status = getattr(response, "status", 200)
        if offset and status != 206:  # the server ignored the range: start again
            offset = 0
        length = response.headers.get("Content-Length")
        expected_end = offset + int(length) if length is not None else size
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=size or expected_end, initial=offset, desc=label, unit="B", unit_scale=True,
                       unit_divisor=1024, dynamic_ncols=True, leave=False)
        try:
            with open(part, "r+b" if offset else "wb") as f:
                f.seek(offset)
                f.truncate()
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Interrupted(str(exc) or type(exc).__name__) from exc
                    if not block:
                        break
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        finally:
            if bar is not None:
                bar.close()
    got = part.stat().st_size
    if expected_end is not None and got < expected_end:
        raise _Interrupted(f"connection closed at byte {got:,} of {expected_end:,}")


def _stamp(dest: Path, name: str) -> Path:
    return dest / f".{name}.unpacked"


def is_unpacked(file: RemoteFile, dest: Path) -> bool:
    return _stamp(dest, file.name).exists() and bool(file.unpacks_to) and (dest / str(file.unpacks_to)).exists()


def unpack(archive: Path, dest: Path) -> None:
    """Extract a zip into ``dest``: into a temporary folder first, then each top-level entry moved into place."""
    tmp = dest / f".unpack-{archive.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise BenchError(f"{archive} is damaged (member {bad} fails its CRC); delete it and download again")
            for info in zf.infolist():
                target = (tmp / info.filename).resolve()
                if not str(target).startswith(str(tmp.resolve())):
                    raise BenchError(f"{archive} holds a member outside its folder ({info.filename}); not unpacked")
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchError(f"{archive} is not a valid zip ({exc}); delete it and download again") from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in _NO_SPACE:
            raise BenchError(f"disk full while unpacking {archive}; free space and run the command again") from exc
        raise
    _merge(tmp, dest)
    shutil.rmtree(tmp, ignore_errors=True)
    _stamp(dest, archive.name).write_text("ok\n")


def _merge(src: Path, dst: Path) -> None:
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)


def fetch_all(files: Sequence[RemoteFile], dest: Path, base_url: str | None = None, unpack_archives: bool = True,
              keep_archives: bool = False, progress: bool = True, command: str = "") -> list[Path]:
    """Fetch, verify and (optionally) unpack several files; returns the files or unpacked paths.

    Offline (``BENCH_OFFLINE`` or ``HF_HUB_OFFLINE``), files already in ``dest`` are verified and unpacked and
    the missing ones are listed, with their URLs, sizes and checksums, in a one-line error.
    """
    command = command or "the same command"
    needed = [f for f in files if not (unpack_archives and is_unpacked(f, dest)) and not (dest / f.name).exists()]
    remote = [f for f in needed if not is_loopback(base_url.rstrip("/") + "/" + f.name if base_url else f.url)]
    if offline() and remote:
        raise BenchError("offline (BENCH_OFFLINE/HF_HUB_OFFLINE is set), nothing is downloaded; "
                         + by_hand(remote, dest, command))
    out = []
    for file in files:
        if unpack_archives and is_unpacked(file, dest):
            out.append(dest / str(file.unpacks_to))
            continue
        url = base_url.rstrip("/") + "/" + file.name if base_url else file.url
        path = fetch(file, dest, url=url, progress=progress, command=command)
        if unpack_archives and file.unpacks_to:
            unpack(path, dest)
            if not keep_archives:
                with contextlib.suppress(OSError):
                    path.unlink()
                    _verified_stamp(path).unlink(missing_ok=True)
            out.append(dest / file.unpacks_to)
        else:
            out.append(path)
    return out
