"""Reading images and label maps from disk, and the network's input preprocessing.

Every reader opens its file through ``reading.open_regular`` (regular files only, never a blocking open:
a FIFO named ``x.jpg`` is an error, not a hang), reads the header, and refuses an image of more than
``MAX_IMAGE_PIXELS`` pixels (or a per-call ``max_pixels``) before decoding it: a thread-safe check of
the size the header declares, so nothing is allocated for a decompression bomb.

Images: every mode Pillow opens becomes (H, W, 3) uint8 RGB, turned by its EXIF orientation:

* 8-bit colour and grey (RGB, L, P, 1, CMYK, YCbCr, LAB, HSV) as Pillow converts them;
* 16-bit grey (I;16, and I from 16-bit PNG, PPM or TIFF) scaled to 8 bits by its bit depth (65535 is
  white, not every value above 255); 32-bit integers (I) by their range when they exceed 16 bits;
* transparency (RGBA, LA, PA, RGBa, P with a transparent colour) composited over the network's mean colour,
  what its padding is: transparent pixels carry no signal and hidden colours never leak through;
* 32-bit floating point (F) is refused with its reason (no standard range to map to colours).

Labels: one class index per pixel, from a palette ('P'), grayscale ('L'), 1-bit or 16/32-bit integer
image; values outside 0..255 are refused with the values and their pixel counts (never wrapped modulo
256).  Colour-coded RGB masks, the most common mistake, are refused with the command that converts them.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.constants import IMG_MEAN_BGR
from ..core.errors import DeepLabError
from ..core.files import atomic_path
from ..core.text import counted
from .reading import open_regular

__all__ = ["IMG_MEAN", "MAX_IMAGE_PIXELS", "IMAGE_FORMATS", "atomic_path", "open_image", "header_size", "read_image",
           "read_label", "index_values", "preprocess", "check_label_values", "value_counts", "count_values", "save_png"]

# The largest image (in pixels) any reader decodes unless the caller passes its own ``max_pixels``: Pillow's
# own threshold for a decompression bomb (1024 * 1024 * 1024 // 4 // 3, about 89.5 MP: 9459 x 9459).  A 12 MP
# photo, a 50 MP camera frame and a 9000 x 9000 mask pass; decoded, the largest image takes 268 MB as RGB.
# The header's size is checked before decoding, so a 60 KB PNG declaring 60000 x 60000 allocates nothing.
# (A per-call limit above twice Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` also needs that raised: Pillow
# refuses such images itself.)
MAX_IMAGE_PIXELS = 89_478_485

# The formats the readers open: raster photo and label formats.  Others Pillow knows (EPS, which runs
# Ghostscript, PSD, ICO, FITS ...) are refused as "not an image format this project reads".
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM", "TGA", "SGI", "QOI", "JPEG2000",
                 "AVIF", "HEIF")

_ORIENTATION = 0x0112  # the EXIF tag
_BITS_PER_SAMPLE = 258  # the TIFF tag

# Mean of the ImageNet images VGG-16 was trained on, in the network's (B, G, R) channel order.
IMG_MEAN = np.array(IMG_MEAN_BGR, dtype=np.float32)
_MEAN_RGB = tuple(int(round(v)) for v in IMG_MEAN_BGR[::-1])  # what transparent pixels become

# Pillow warns of images above its threshold from ``Image.open``; the readers refuse them from the header
# themselves (a thread-safe check, where turning the warning into an error is not), so the warning is noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Pillow's plugins warn of damage they skip ("Corrupt EXIF data", "Tag data larger than file"): a file either
# decodes or is reported in one line, so these are noise (several lines on stderr per file).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
# and log some as errors ("More samples per pixel than can be decoded"), which Python prints on stderr when
# the program configures no logging: the file's one error line says it.
logging.getLogger("PIL").addHandler(logging.NullHandler())

_opened: Tuple[str, ...] = ()


def _formats() -> Tuple[str, ...]:
    """``IMAGE_FORMATS`` that this Pillow can open (plugins such as HEIF are optional), found once."""
    global _opened
    if not _opened:
        Image.init()
        _opened = tuple(f for f in IMAGE_FORMATS if f in Image.OPEN)
    return _opened


_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_INTEGER_GREY = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def _too_many(path: str, what: str, pixels: int, limit: int, size: Optional[Tuple[int, int]] = None) -> DeepLabError:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return DeepLabError(f"{path}: {dims}{pixels:,} pixels, more than the limit of {limit:,} for an {what} "
                        f"(a decompression bomb, or an image to downscale first)", f"{what} too large")


def open_image(path: str, what: str, max_pixels: Optional[int] = None) -> Image.Image:
    """Open and decode an image file; every failure is a ``DeepLabError`` naming the file and ``what``
    it was meant to be ("image", "label").

    The file must be a regular file (opened without blocking), in one of ``IMAGE_FORMATS``, and its header
    must declare at most ``max_pixels`` pixels (default ``MAX_IMAGE_PIXELS``), checked before decoding.
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    with open_regular(path, what) as f:
        size = None
        try:
            image = Image.open(f, formats=_formats())
            size = image.size
            if size[0] * size[1] > limit:
                raise _too_many(path, what, size[0] * size[1], limit, size)
            image.load()
            return image
        except DeepLabError:
            raise
        except Image.DecompressionBombError as e:  # over Pillow's own hard limit (twice its threshold)
            found = re.search(r"\((\d+) pixels\)", str(e))
            pixels = int(found.group(1)) if found else 0
            if pixels > limit:
                raise _too_many(path, what, pixels, limit) from None
            raise DeepLabError(f"{path}: refused, too many pixels for an {what} ({e})", f"{what} too large") from None
        except UnidentifiedImageError:
            raise DeepLabError(f"{path}: cannot decode {what}: not an image format this project reads "
                               f"({', '.join(IMAGE_FORMATS[:8])} ...)", f"cannot decode {what}") from None
        except MemoryError:
            dims = f" ({size[0]}x{size[1]})" if size else ""
            raise DeepLabError(f"{path}: not enough memory to decode this {what}{dims}", "out of memory") from None
        except Exception as e:  # noqa: BLE001  (Pillow's decoders raise many types on malformed files)
            reason = f"{type(e).__name__}: {e}" if not isinstance(e, (OSError, SyntaxError, ValueError)) else str(e)
            raise DeepLabError(f"{path}: cannot decode {what} ({' '.join(reason.split())[:200]})",
                               f"cannot decode {what}") from None


def header_size(path: str, what: str = "image") -> Tuple[int, int]:
    """(width, height) an image file declares, from its header alone (nothing decoded); errors as ``open_image``."""
    with open_regular(path, what) as f:
        try:
            with Image.open(f, formats=_formats()) as image:
                return image.size
        except Exception as e:  # noqa: BLE001  (as in open_image)
            raise DeepLabError(f"{path}: cannot decode {what} ({' '.join(str(e).split())[:200]})",
                               f"cannot decode {what}") from None


def _declared_bits(image: Image.Image) -> Optional[int]:
    """The bits per sample a TIFF declares (12-bit data in 16-bit samples), if any."""
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(_BITS_PER_SAMPLE) if tags is not None else None
    if isinstance(bits, (tuple, list)):
        bits = bits[0] if bits else None
    return int(bits) if isinstance(bits, int) and 1 <= bits <= 16 else None


def _integer_grey_to_8bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit grey as 8-bit 'L': scaled by the bit depth (the TIFF's declared one, 16 for I;16 and
    16-bit PNG/PPM, else the smallest of 8 and 16 bits that holds the values), by the range beyond 16 bits."""
    values = np.asarray(image)
    bits = _declared_bits(image)
    lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
    if bits is None:
        bits = 8 if image.mode == "I" and 0 <= lo and hi <= 255 else 16
    if lo < 0 or hi >= 1 << max(bits, 16):  # 32-bit integers: their range
        scaled = (values.astype(np.float32) - lo) * np.float32(255.0 / max(hi - lo, 1))
        return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
    top = (1 << bits) - 1
    clipped = np.minimum(values, top).astype(np.uint32)
    return Image.fromarray(((clipped * 255 + top // 2) // top).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image, path: str) -> Image.Image:
    """Any mode Pillow opens as 8-bit RGB (see the module docstring), or a one-line refusal."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _INTEGER_GREY:
        return _integer_grey_to_8bit(image).convert("RGB")
    if mode == "F":
        raise DeepLabError(f"{path}: a 32-bit floating-point image (mode F) has no standard range of colours; save "
                           f"it as an 8- or 16-bit image", "image mode unsupported")
    try:
        if mode in _TRANSPARENT_MODES or (mode == "P" and "transparency" in image.info) or (
                mode in ("L", "RGB") and "transparency" in image.info):
            rgba = image.convert("RGBA")
            out = Image.new("RGB", image.size, _MEAN_RGB)
            out.paste(rgba, (0, 0), rgba)  # over the mean colour, by its alpha
            return out
        return image.convert("RGB")
    except (ValueError, OSError) as e:
        raise DeepLabError(f"{path}: image mode {mode} cannot be converted to RGB ({e})",
                           "image mode unsupported") from None


def read_image(path: str, max_pixels: Optional[int] = None) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB, turned as a viewer shows it (its EXIF orientation applied,
    as OpenCV and labelme do, so masks line up with what the user sees and labels).

    Every mode is converted as the module docstring says, or refused; ``max_pixels`` as in ``open_image``.
    """
    image = open_image(path, "image", max_pixels)
    try:
        turned = image.getexif().get(_ORIENTATION, 1) != 1
        if turned:
            image = ImageOps.exif_transpose(image)
    except Exception as e:  # noqa: BLE001  (a malformed EXIF block)
        raise DeepLabError(f"{path}: cannot apply its EXIF orientation ({e})", "cannot decode image") from None
    return np.asarray(_to_rgb(image, path), dtype=np.uint8)


def value_counts(values: np.ndarray, limit: int = 5) -> str:
    """``"40 (3 pixels), 21 (1 pixel)"``: the most frequent of ``values`` with their counts."""
    found, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return _listed_counts(found[order], counts[order], limit)


def _listed_counts(values: np.ndarray, counts: np.ndarray, limit: int) -> str:
    """The first ``limit`` of ``values`` (most frequent first) with their pixel counts, then how many more."""
    shown = ", ".join(f"{int(v)} ({counted(int(n), 'pixel')})" for v, n in zip(values[:limit], counts[:limit]))
    return shown + (f" and {counted(len(values) - limit, 'more value')}" if len(values) > limit else "")


def index_values(image: Image.Image, path: str, what: str = "label") -> np.ndarray:
    """(H, W) uint8 class indices of a palette, grayscale, 1-bit or 16/32-bit integer label image.

    Values outside 0..255 are refused with the values and their pixel counts (they would wrap modulo 256);
    colour images are refused with the command that converts them.
    """
    mode = image.mode
    if mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if mode == "1":
        return np.asarray(image).astype(np.uint8)
    if mode in _INTEGER_GREY:
        values = np.asarray(image)
        bad = (values < 0) | (values > 255)
        if bad.any():
            raise DeepLabError(f"{path}: {what} values outside 0..255: {value_counts(values[bad])} (a {mode} image; "
                               f"{what}s are 8-bit class indices)", f"{what} values out of range")
        return values.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        raise DeepLabError(
            f"{path}: {what} is an {mode} colour image, not an index PNG (one class index per pixel); convert colour "
            f"masks with util/convert_labels.py MASK_DIR --output_dir LABEL_DIR --classes classes.txt (without "
            f"--classes it lists their colours)", f"{what} is a colour image")
    raise DeepLabError(f"{path}: {what} has unsupported mode {mode} (expected a palette, grayscale or 16-bit "
                       f"grayscale PNG of class indices)", f"{what} mode unsupported")


def read_label(path: str, max_pixels: Optional[int] = None, what: str = "label") -> np.ndarray:
    """A label map as (H, W) uint8 class indices (see ``index_values``); ``max_pixels`` as in ``open_image``.
    ``what`` names the file in errors ("prediction" for ``evaluate.py --pred_dir``)."""
    return index_values(open_image(path, what, max_pixels), path, what)


def count_values(label: np.ndarray, minlength: int = 256) -> np.ndarray:
    """``np.bincount`` of a label map's values (non-negative integers), in blocks of 4 M pixels: ``bincount``
    casts to int64, 8 bytes a pixel, which for a 9000 x 9000 label would be 648 MB at once."""
    flat = label.reshape(-1)
    counts = np.zeros(max(minlength, int(flat.max(initial=0)) + 1), np.int64)
    for start in range(0, flat.size, 1 << 22):
        block = np.bincount(flat[start:start + (1 << 22)])
        counts[:len(block)] += block
    return counts


def check_label_values(label: np.ndarray, num_classes: int, ignore_label: int, path: str,
                       what: str = "label") -> None:
    """Raise if a label (or a prediction: ``what``) holds values other than 0..num_classes-1 and
    ``ignore_label``, naming the values and their pixel counts."""
    if label.dtype == np.uint8:
        counts = count_values(label)
        present = np.nonzero(counts)[0]
        bad = present[(present >= num_classes) & (present != ignore_label)]
        if not bad.size:
            return
        order = bad[np.argsort(-counts[bad], kind="stable")]
        shown = _listed_counts(order, counts[order], 5)
    else:
        mask = (label < 0) | ((label >= num_classes) & (label != ignore_label))
        if not mask.any():
            return
        shown = value_counts(label[mask])
    raise DeepLabError(f"{path}: {what} values outside 0..{num_classes - 1} and ignore label {ignore_label}: {shown}",
                       f"{what} values out of range")


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) to the network's input: BGR float32 minus the VGG mean."""
    return rgb[..., ::-1].astype(np.float32) - IMG_MEAN


def save_png(path: str, image: Image.Image) -> None:
    """Write a PNG atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
