"""Images made elsewhere, read from where they are: a folder, a ``.zip`` or ``.tar`` archive, or an ``.npz``
sample batch.

A source lists its images by name (a folder's or archive's relative paths, ``/``-separated; a batch's row
numbers as ``"<array>[<row>]"``) and reads one image as :class:`ReadImage`: its uint8 RGB pixels and, for an
encoded file, the file's own bytes (kept as they are, so a copy in a run directory is byte-identical to the
original). Image files are PNG, JPEG or WebP; other files are ignored. Batches are the ADM evaluator's format
(``arr_0``: uint8 N x H x W x 3) or a dump of DMD2's evaluation arrays (``all_images``, with ``all_captions``);
an uncompressed batch is memory-mapped, so a 30,000-image batch is not loaded whole.
"""

from __future__ import annotations

import os
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

#: File extensions read as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: Image arrays of a sample batch, in the order they are looked for.
BATCH_ARRAYS = ("arr_0", "all_images")
#: Where a batch keeps its prompts (DMD2's dump).
BATCH_CAPTIONS = "all_captions"


@dataclass
class ReadImage:
    """One image as read: uint8 (H, W, 3) pixels, and the encoded file's bytes and extension (None for a batch
    row, which has no file); ``name``: where it came from in its source."""

    pixels: np.ndarray
    data: bytes | None = None
    ext: str | None = None
    name: str = ""


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not Path(name).name.startswith(".")


def decode_bytes(data: bytes, name: str) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3) pixels; an unreadable image is one line naming it."""
    from bench.suites.base import decode_image

    return np.asarray(decode_image(data, name, "image", hint="replace it, or remove it and pass allow_missing=true"),
                      dtype=np.uint8)


class ImageSource:
    """Base of the readers: :attr:`names` (sorted) and :meth:`read`. :meth:`text` reads a small non-image file
    of the source (a manifest, a mapping) or returns None."""

    kind = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: list[str] = []

    def read(self, name: str) -> ReadImage:
        raise NotImplementedError

    def text(self, name: str) -> str | None:
        return None

    def captions(self) -> list[str] | None:
        """Prompts stored with the images (a batch's ``all_captions``), one per image in order; else None."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "images": len(self.names)}


class FolderSource(ImageSource):
    """Image files under a folder, at any depth (hidden files and folders left out)."""

    kind = "folder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        names = []
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = Path(root).relative_to(path)
            names += [(rel / f).as_posix() for f in files if is_image_name(f)]
        self.names = sorted(names)

    def read(self, name: str) -> ReadImage:
        p = self.path / name
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BenchError(f"image {p} cannot be read ({exc.strerror}); check the folder and run again") from exc
        return ReadImage(decode_bytes(data, str(p)), data, Path(name).suffix.lower().lstrip("."), name)

    def text(self, name: str) -> str | None:
        p = self.path / name
        return p.read_text(encoding="utf-8") if p.is_file() else None


class _ArchiveSource(ImageSource):
    """Shared reading of archive members (one lock: archive handles are not safe to share between threads)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()

    def member(self, name: str) -> bytes | None:
        raise NotImplementedError

    def read(self, name: str) -> ReadImage:
        with self._lock:
            data = self.member(name)
        if data is None:
            raise BenchError(f"{self.path} has no member {name!r}; it changed while being read: run again")
        return ReadImage(decode_bytes(data, f"{self.path}:{name}"), data, Path(name).suffix.lower().lstrip("."),
                         name)

    def text(self, name: str) -> str | None:
        with self._lock:
            data = self.member(name)
        return data.decode("utf-8") if data is not None else None


class ZipSource(_ArchiveSource):
    kind = "zip"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BenchError(f"{path} is not a readable zip archive ({exc}); check the file") from exc
        self._members = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}
        self.names = sorted(n for n in self._members if is_image_name(n))

    def member(self, name: str) -> bytes | None:
        return self._zip.read(self._members[name]) if name in self._members else None


class TarSource(_ArchiveSource):
    kind = "tar"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._tar = tarfile.open(path)
            members = [m for m in self._tar.getmembers() if m.isfile()]
        except (OSError, tarfile.TarError) as exc:
            raise BenchError(f"{path} is not a readable tar archive ({exc}); check the file") from exc
        self._members = {m.name.removeprefix("./"): m for m in members}
        self.names = sorted(n for n in self._members if is_image_name(n))

    def member(self, name: str) -> bytes | None:
        m = self._members.get(name)
        f = self._tar.extractfile(m) if m is not None else None
        return f.read() if f is not None else None


def _mapped_array(path: Path, member: str) -> np.ndarray | None:
    """The ``.npy`` member of an uncompressed ``.npz``, memory-mapped; None when it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class BatchSource(ImageSource):
    """A sample batch: uint8 N x H x W x 3 in ``arr_0`` (ADM evaluator) or ``all_images`` (DMD2's arrays)."""

    kind = "npz"

    def __init__(self, path: Path, array: str | None = None) -> None:
        super().__init__(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                files = list(f.files)
                self._captions = ([str(c) for c in f[BATCH_CAPTIONS]] if BATCH_CAPTIONS in files else None)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise BenchError(f"{path} is not a readable .npz sample batch ({exc}); write it with numpy.savez") from exc
        wanted = [array] if array else [a for a in BATCH_ARRAYS if a in files]
        if not wanted or wanted[0] not in files:
            raise BenchError(f"{path} holds no image array ({', '.join(files) or 'nothing'}); a sample batch keeps "
                             f"uint8 N x H x W x 3 images in {' or '.join(BATCH_ARRAYS)} (or name it: array=NAME)")
        self.array_name = wanted[0]
        images = _mapped_array(path, self.array_name + ".npy")
        if images is None:
            with np.load(path, allow_pickle=False) as f:
                images = f[self.array_name]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise BenchError(f"{path}: {self.array_name} is {images.dtype} {tuple(images.shape)}, not uint8 "
                             "N x H x W x 3 (RGB); save the images as such")
        self.images = images
        self.names = [f"{self.array_name}[{i}]" for i in range(len(images))]

    def row(self, name: str) -> int:
        return int(name[len(self.array_name) + 1 : -1])

    def read(self, name: str) -> ReadImage:
        return ReadImage(np.array(self.images[self.row(name)]), name=name)

    def captions(self) -> list[str] | None:
        return self._captions

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "array": self.array_name, "shape": list(self.images.shape)}


def open_source(path: str | os.PathLike[str], array: str | None = None) -> ImageSource:
    """The reader of ``path``: a folder, a ``.zip``, a ``.tar`` (``.tar.gz``, ``.tgz``) or an ``.npz`` batch."""
    p = Path(path).expanduser()
    if not p.exists():
        raise BenchError(f"{p} does not exist; give a folder of images, a .zip or .tar of them, or an .npz batch")
    if p.is_dir():
        source: ImageSource = FolderSource(p)
    elif p.suffix.lower() == ".npz":
        source = BatchSource(p, array)
    elif p.suffix.lower() == ".zip":
        source = ZipSource(p)
    elif p.name.lower().endswith((".tar", ".tar.gz", ".tgz")):
        source = TarSource(p)
    else:
        raise BenchError(f"{p} is not a folder, .zip, .tar or .npz; give the images in one of those")
    if not source.names:
        raise BenchError(f"{p} holds no images ({', '.join(IMAGE_EXTENSIONS)} files or an image array)")
    return source


def image_bytes(image: ReadImage) -> tuple[bytes, str]:
    """The bytes to keep for an image and their extension: the file's own, or a PNG of a batch row."""
    if image.data is not None and image.ext:
        return image.data, image.ext
    from bench.images import encode_png

    return encode_png(image.pixels), "png"


def read_text_file(path: str | os.PathLike[str]) -> str:
    p = Path(path).expanduser()
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{p} cannot be read ({exc}); give a readable UTF-8 file") from exc

