"""Reading images and label maps from disk, and the network's input preprocessing.

Images: anything Pillow reads (JPEG, PNG; grayscale, palette, RGBA, CMYK) becomes RGB, turned by
its EXIF orientation.
Labels: single-channel index PNGs (palette 'P' or grayscale 'L'); colour-coded RGB label
images, the most common mistake, are refused with a message saying how to convert them.
Pillow's decompression-bomb limit stays on.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.constants import IMG_MEAN_BGR
from ..core.errors import DeepLabError
from ..core.files import atomic_path

__all__ = ["IMG_MEAN", "atomic_path", "open_image", "read_image", "read_label", "preprocess", "check_label_values",
           "save_png"]

_ORIENTATION = 0x0112  # the EXIF tag

# Mean of the ImageNet images VGG-16 was trained on, in the network's (B, G, R) channel order.
IMG_MEAN = np.array(IMG_MEAN_BGR, dtype=np.float32)


def open_image(path: str, what: str) -> Image.Image:
    """Open and decode an image file; every failure is a ``DeepLabError`` naming the file and ``what``
    it was meant to be ("image", "label")."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
        return image
    except FileNotFoundError:
        raise DeepLabError(f"{path}: {what} not found", f"{what} not found") from None
    except IsADirectoryError:
        raise DeepLabError(f"{path}: is a directory, not an {what}", f"{what} is a directory") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DeepLabError(f"{path}: refused, too many pixels for an {what} ({e})", f"{what} too large") from None
    except UnidentifiedImageError:
        raise DeepLabError(f"{path}: cannot decode {what}: not an image format Pillow reads",
                           f"cannot decode {what}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DeepLabError(f"{path}: cannot decode {what} ({e})", f"cannot decode {what}") from None


def read_image(path: str) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB, turned as a viewer shows it (its EXIF orientation applied,
    as OpenCV and labelme do, so masks line up with what the user sees and labels)."""
    image = open_image(path, "image")
    if image.getexif().get(_ORIENTATION, 1) != 1:
        try:
            image = ImageOps.exif_transpose(image)
        except (OSError, ValueError, SyntaxError) as e:
            raise DeepLabError(f"{path}: cannot apply its EXIF orientation ({e})", "cannot decode image") from None
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA").convert("RGB")
        else:
            image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def read_label(path: str) -> np.ndarray:
    """A label map as (H, W) uint8 class indices, from a palette or grayscale PNG."""
    image = open_image(path, "label")
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("I", "I;16", "I;16B"):
        values = np.asarray(image)
        if values.max(initial=0) > 255:
            raise DeepLabError(f"{path}: 16-bit label with values above 255", "label values out of range")
        return values.astype(np.uint8)
    if image.mode in ("RGB", "RGBA"):
        raise DeepLabError(
            f"{path}: label is an {image.mode} colour image, not an index PNG; convert colour-coded "
            f"VOC labels with util/prepare_voc.py (or use SegmentationClassAug)", "label is a colour image")
    raise DeepLabError(f"{path}: label has unsupported mode {image.mode} (expected a palette or grayscale PNG)",
                       "label mode unsupported")


def check_label_values(label: np.ndarray, num_classes: int, ignore_label: int, path: str) -> None:
    """Raise if a label holds values other than 0..num_classes-1 and ``ignore_label``."""
    values = np.unique(label)
    bad = values[(values >= num_classes) & (values != ignore_label)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8])
        raise DeepLabError(f"{path}: label values {shown} outside 0..{num_classes - 1} and ignore "
                           f"label {ignore_label}", "label values out of range")


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) to the network's input: BGR float32 minus the VGG mean."""
    return rgb[..., ::-1].astype(np.float32) - IMG_MEAN


def save_png(path: str, image: Image.Image) -> None:
    """Write a PNG atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
