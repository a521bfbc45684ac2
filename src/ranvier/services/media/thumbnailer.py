"""Thumbnail generation with Pillow (spec: Client-Server API > Thumbnails).

Synchronous and CPU-bound: callers run it with `asyncio.to_thread`. Decompression-bomb
protection: only JPEG, PNG, GIF and WebP decoders are enabled, the image's dimensions
(read from its header, before any pixel is decoded) must stay under `max_pixels`, and
Pillow's own `MAX_IMAGE_PIXELS` guard (its warning and error) is treated the same way.
Output is JPEG for JPEG sources and PNG otherwise (keeps transparency); both are on the
spec's list of types safe to serve inline. Animated sources give a still of the first
frame (the spec allows a static thumbnail when animation is not supported).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from ranvier.core.media import ThumbnailSize

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported on first use, not at start-up: it adds ~2.4 MiB to idle memory.

_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP")
_JPEG_QUALITY: Final = 80


class ThumbnailError(Exception):
    """The content cannot be thumbnailed (not an image we decode, or corrupt)."""


class ImageTooLargeError(ThumbnailError):
    pass


@dataclass(frozen=True, slots=True)
class ThumbnailImage:
    data: bytes
    width: int
    height: int
    content_type: str


@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int
    height: int
    content_type: str


def _open(path: Path | IO[bytes], max_pixels: int) -> Image.Image:
    from PIL import Image

    try:
        img = Image.open(path, formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError("image has too many pixels") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ThumbnailError(f"cannot decode image: {e}") from None
    width, height = img.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        img.close()
        raise ImageTooLargeError(f"image of {width}x{height} pixels is too large")
    return img


def read_image_info(path: Path | IO[bytes], max_pixels: int) -> ImageInfo:
    """Dimensions and type from the header only."""
    with _open(path, max_pixels) as img:
        fmt = (img.format or "PNG").lower()
        return ImageInfo(img.size[0], img.size[1], f"image/{fmt}")


def _resize(img: Image.Image, size: ThumbnailSize) -> Image.Image:
    from PIL import Image, ImageOps

    box = (size.width, size.height)
    if size.method == "crop":
        # Scale to cover the box, then cut the centre: exactly width x height.
        return ImageOps.fit(img, box, Image.Resampling.LANCZOS)
    out = img.copy()
    # Fits inside the box keeping the aspect ratio; never enlarges.
    out.thumbnail(box, Image.Resampling.LANCZOS)
    return out


def make_thumbnail(path: Path, size: ThumbnailSize, max_pixels: int) -> ThumbnailImage:
    from PIL import Image, ImageOps

    with _open(path, max_pixels) as img:
        is_jpeg = img.format == "JPEG"
        try:
            if is_jpeg:
                # Decode at a reduced scale where JPEG allows: far less memory and CPU.
                img.draft("RGB", (size.width * 2, size.height * 2))
            img.load()
            source = ImageOps.exif_transpose(img)
            thumb = _resize(source, size)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLargeError("image has too many pixels") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise ThumbnailError(f"cannot decode image: {e}") from None
    buf = io.BytesIO()
    if is_jpeg:
        thumb.convert("RGB").save(buf, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    else:
        if thumb.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            thumb = thumb.convert("RGBA")
        thumb.save(buf, "PNG", optimize=True)
        content_type = "image/png"
    return ThumbnailImage(buf.getvalue(), thumb.width, thumb.height, content_type)
