"""PASCAL VOC 2012 + SBD label preparation (what ``util/prepare_voc.py`` runs).

The augmented training set of DeepLab uses VOC2012's own labels where they exist and the
Semantic Boundaries Dataset's (``cls/NAME.mat``, ``GTcls.Segmentation``) for the rest, all as
single-channel index PNGs named ``SegmentationClassAug/NAME.png``.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..core.constants import IGNORE_LABEL, NUM_CLASSES
from ..core.errors import DeepLabError
from .colormap import VOC_COLORS
from .images import save_png

__all__ = ["colour_to_index", "read_sbd_mat", "convert_labels", "check_lists"]


def colour_to_index(rgb: np.ndarray, path: str = "label") -> np.ndarray:
    """Map a VOC colour-coded label (H, W, 3) back to class indices; unknown colours are an error."""
    codes = VOC_COLORS.astype(np.int64) @ np.array([65536, 256, 1])
    lookup = {int(c): i for i, c in enumerate(codes) if i < NUM_CLASSES or i == IGNORE_LABEL}
    flat = rgb[..., :3].astype(np.int64) @ np.array([65536, 256, 1])
    out = np.zeros(flat.shape, np.uint8)
    for code in np.unique(flat):
        if int(code) not in lookup:
            colour = (int(code) >> 16, (int(code) >> 8) & 255, int(code) & 255)
            raise DeepLabError(f"{path}: colour {colour} is not in the VOC colour map")
        out[flat == code] = lookup[int(code)]
    return out


def read_sbd_mat(path: str) -> np.ndarray:
    """SBD's class segmentation (``GTcls.Segmentation``) as uint8 indices."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
        return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)
    except (KeyError, AttributeError, ValueError, OSError, TypeError) as e:
        raise DeepLabError(f"{path}: not an SBD class segmentation .mat (GTcls.Segmentation): {e}") from None


def _voc_label(path: str) -> np.ndarray:
    with Image.open(path) as image:
        if image.mode in ("P", "L"):
            return np.asarray(image, np.uint8)
        return colour_to_index(np.asarray(image.convert("RGB")), path)


def convert_labels(voc_dir: str, sbd_dir: Optional[str], output_dir: str, overwrite: bool = False) -> Dict[str, int]:
    """Write index PNGs for every VOC and SBD label; VOC's own label wins where both exist."""
    voc_seg = os.path.join(voc_dir, "SegmentationClass")
    if not os.path.isdir(voc_seg) and not sbd_dir:
        raise DeepLabError(f"{voc_seg}: not found (is --voc_dir the VOC2012 folder?)")
    sbd_cls = os.path.join(sbd_dir, "cls") if sbd_dir else None
    if sbd_dir and not os.path.isdir(sbd_cls):
        raise DeepLabError(f"{sbd_cls}: not found (is --sbd_dir SBD's 'dataset' folder?)")
    os.makedirs(output_dir, exist_ok=True)
    counts = {"voc": 0, "sbd": 0, "kept": 0}
    done = set()
    for path in sorted(glob.glob(os.path.join(voc_seg, "*.png"))):
        name = os.path.splitext(os.path.basename(path))[0]
        done.add(name)
        target = os.path.join(output_dir, name + ".png")
        if os.path.exists(target) and not overwrite:
            counts["kept"] += 1
            continue
        save_png(target, Image.fromarray(_voc_label(path), mode="L"))
        counts["voc"] += 1
    for path in sorted(glob.glob(os.path.join(sbd_cls, "*.mat"))) if sbd_cls else []:
        name = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(output_dir, name + ".png")
        if name in done:
            continue
        if os.path.exists(target) and not overwrite:
            counts["kept"] += 1
            continue
        save_png(target, Image.fromarray(read_sbd_mat(path), mode="L"))
        counts["sbd"] += 1
    return counts


def check_lists(voc_dir: str, label_dir: str, lists: Sequence[str]) -> List[str]:
    """'LIST:LINE: PATH' for every list entry whose image or label file is missing."""
    missing = []
    for list_path in lists:
        try:
            with open(list_path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise DeepLabError(f"{list_path}: cannot read list file ({e.strerror or e})") from None
        for number, text in enumerate(lines, start=1):
            fields = text.split()
            if len(fields) != 2:
                continue
            image = os.path.join(voc_dir, "JPEGImages", os.path.basename(fields[0]))
            label = os.path.join(label_dir, os.path.basename(fields[1]))
            for path in (image, label):
                if not os.path.exists(path):
                    missing.append(f"{list_path}:{number}: {path}")
    return missing
