"""Generated images on their way to disk: float -> uint8, broken-image flags, PNG/JPEG encoding and decoding.

One rule turns float images in [0, 1] into 8-bit pixels everywhere in the project (NaN -> 0, clip to [0, 1],
x 255, + 0.5, truncate), and one rule flags broken images: ``nan`` (a non-finite value), ``black`` (no
value above 1/255) or ``constant`` (every value equal).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np

#: Flag names of broken images, in report order.
FLAGS = ("nan", "black", "constant")


def flag_from_stats(finite: bool, high: float, low: float) -> str | None:
    """The flag of an image whose values are all finite (or not), with maximum ``high`` and minimum ``low``."""
    if not finite:
        return "nan"
    if high <= 1.0 / 255.0:
        return "black"
    if high == low:
        return "constant"
    return None


def image_flag(image: np.ndarray) -> str | None:
    """``"nan"``, ``"black"`` or ``"constant"`` for a broken float image (3, H, W) in [0, 1], else None."""
    x = np.asarray(image)
    finite = bool(np.isfinite(x).all())
    return flag_from_stats(finite, float(x.max()), float(x.min())) if finite else "nan"


def to_uint8_and_flags(images: Any) -> tuple[np.ndarray, list[str | None]]:
    """Float images in [0, 1] (B, 3, H, W), on any device -> uint8 (B, H, W, 3) on the host, and each image's
    flag (:func:`flag_from_stats`). The conversion runs on the images' device."""
    import torch

    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x.detach().float()
    finite = torch.isfinite(x).flatten(1).all(1)
    clean = torch.nan_to_num(x, nan=0.0)
    flat = clean.flatten(1)
    stats = torch.stack([finite.float(), flat.amax(1), flat.amin(1)], 1).cpu().numpy()
    u8 = (clean.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return u8, [flag_from_stats(bool(ok), float(hi), float(lo)) for ok, hi, lo in stats]


def to_uint8(images: Any) -> np.ndarray:
    """Float images in [0, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), by the one rounding rule of this module."""
    return to_uint8_and_flags(images)[0]


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image_uint8: np.ndarray, level: int = 1) -> bytes:
    """uint8 (H, W, 3) -> a standard 8-bit RGB PNG: every row with the "Sub" filter, zlib at ``level``.

    Several times faster than PIL's encoder at a similar size, and zlib releases the GIL, so a thread pool
    encodes in parallel. PNG is lossless: any reader gets exactly these pixels back.
    """
    img = np.ascontiguousarray(image_uint8, dtype=np.uint8)
    h, w, c = img.shape
    if c != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
    rows = img.reshape(h, w * c)
    filtered = np.empty((h, 1 + w * c), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type "Sub": each byte minus the byte one pixel to the left (mod 256)
    filtered[:, 1 : 1 + c] = rows[:, :c]
    np.subtract(rows[:, c:], rows[:, :-c], out=filtered[:, 1 + c :])
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, filtering 0, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)) + _png_chunk(b"IEND", b""))


def encode_image(image_uint8: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    """uint8 (H, W, 3) -> PNG (:func:`encode_png`) or JPEG (PIL, ``quality``) bytes."""
    if fmt == "png":
        return encode_png(image_uint8)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def decode_pixels(data: bytes, name: str) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3), exactly as a reader of the file gets them."""
    from bench.suites.base import decode_image

    return np.asarray(decode_image(data, name, "image"), dtype=np.uint8)
