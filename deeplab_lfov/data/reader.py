"""List files, decoding one image/label pair, and the tf.data training pipeline.

A list line is ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``; both paths
are appended to ``--data_dir`` (as the classic port did).  ``load_pair`` decodes and validates
one pair (the pre-flight check in ``checks`` runs it over a whole list); ``train_dataset``
builds the augmented, batched stream:

  decode (Pillow, parallel) -> RGB->BGR, minus mean -> random scale (0.75-1.25 by default) -> random mirror
  -> pad (image with the mean, label with the ignore label) -> random crop -> batch -> prefetch.

Randomness is stateless and derived from ``seed``, so a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..core._tf import tf
from ..core.constants import IGNORE_LABEL
from ..core.errors import DeepLabError
from .images import IMG_MEAN, check_label_values, read_image, read_label

__all__ = ["Entry", "read_list", "load_pair", "train_dataset", "shrink_labels", "LABEL_FOLDER"]

LABEL_FOLDER = "SegmentationClassAug"  # where a bare image ID's label is, under --data_dir


@dataclasses.dataclass(frozen=True)
class Entry:
    """One line of a list file."""

    list_path: str
    line: int
    image: str
    label: str

    def where(self) -> str:
        return f"{self.list_path}:{self.line}"


def _is_bare_id(field: str) -> bool:
    """``2007_000032``: no folder, no extension (the lists of weakly-supervised code bases)."""
    return "/" not in field and "\\" not in field and not os.path.splitext(field)[1]


def read_list(data_dir: str, data_list: str, label_dir: Optional[str] = None) -> List[Entry]:
    """Parse a list file.

    A line is ``IMAGE LABEL`` (both appended to ``data_dir``, as the classic port did) or a bare
    image ID, meaning ``data_dir/JPEGImages/ID.jpg`` and ``data_dir/SegmentationClassAug/ID.png``.
    With ``label_dir`` every label is taken from that folder by its file name instead.  A list
    mixes no forms; a malformed line is an error naming it.
    """
    try:
        with open(data_list) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DeepLabError(f"{data_list}: cannot read list file ({e.strerror or e})") from None
    entries = []
    form = None
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields or text.lstrip().startswith("#"):
            continue
        if len(fields) == 1 and _is_bare_id(fields[0]):
            line_form = "ID"
            fields = [f"/JPEGImages/{fields[0]}.jpg", f"/{LABEL_FOLDER}/{fields[0]}.png"]
        elif len(fields) == 2:
            line_form = "IMAGE LABEL"
        else:
            raise DeepLabError(f"{data_list}:{number}: expected 'IMAGE LABEL' or a bare image ID, got {text.strip()!r}")
        if form and line_form != form:
            raise DeepLabError(f"{data_list}:{number}: a {line_form!r} line in a list of {form!r} lines")
        form = line_form
        image, label = (data_dir + path if path.startswith("/") or not data_dir else
                        os.path.join(data_dir, path) for path in fields)
        if label_dir:
            label = os.path.join(label_dir, os.path.basename(label))
        entries.append(Entry(data_list, number, image, label))
    if not entries:
        raise DeepLabError(f"{data_list}: the list is empty")
    return entries


def load_pair(entry: Entry, num_classes: int, ignore_label: int) -> Tuple[np.ndarray, np.ndarray]:
    """Decode and validate one pair: (RGB uint8, label uint8).  Errors name the list line."""
    try:
        image = read_image(entry.image)
        label = read_label(entry.label)
        if image.shape[:2] != label.shape:
            raise DeepLabError(f"{entry.label}: label size {label.shape[1]}x{label.shape[0]} differs from "
                               f"image size {image.shape[1]}x{image.shape[0]}", "label size differs from image")
        check_label_values(label, num_classes, ignore_label, entry.label)
    except DeepLabError as e:
        raise DeepLabError(f"{entry.where()}: {e}", e.kind) from None
    return image, label


def shrink_labels(labels: tf.Tensor, size) -> tf.Tensor:
    """Labels (N, H, W) sampled onto the logits grid ``size`` = (h, w), as Caffe's
    ``Interp shrink_factor: 8`` does with aligned corners (321 -> 41 is ``labels[:, ::8, ::8]``)."""
    def positions(full, small):
        full_f = tf.cast(full - 1, tf.float32)
        small_f = tf.cast(tf.maximum(small - 1, 1), tf.float32)
        return tf.cast(tf.round(tf.cast(tf.range(small), tf.float32) * full_f / small_f), tf.int32)
    shape = tf.shape(labels)
    rows = positions(shape[1], size[0])
    cols = positions(shape[2], size[1])
    return tf.gather(tf.gather(labels, rows, axis=1), cols, axis=2)


def _augment(image, label, seed, crop_h: int, crop_w: int, random_scale: bool, random_mirror: bool,
             ignore_label: int, scale_range: Tuple[float, float] = (0.75, 1.25)):
    """Scale, mirror, pad and crop one pair (image: BGR minus mean, float; label: int32 HxWx1)."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    if random_scale:
        scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
        hw = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale), tf.int32)
        image = tf.image.resize(image, hw, method="bilinear")
        label = tf.image.resize(label, hw, method="nearest")
    if random_mirror:
        flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    pad_h, pad_w = tf.maximum(crop_h - h, 0), tf.maximum(crop_w - w, 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])  # zero = the mean colour
    label = tf.pad(label, [[0, pad_h], [0, pad_w], [0, 0]], constant_values=ignore_label)
    both = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
    both = tf.image.stateless_random_crop(both, [crop_h, crop_w, 4], seed=seeds[2])
    return both[..., :3], tf.cast(both[..., 3], tf.int32)


def train_dataset(entries: Sequence[Entry], input_size: Tuple[int, int], batch_size: int, *,
                  num_classes: int, ignore_label: int = IGNORE_LABEL, random_scale: bool = True,
                  random_mirror: bool = True, seed: int = 1234, shuffle: bool = True,
                  repeat: bool = True, drop_remainder: bool = True,
                  scale_range: Tuple[float, float] = (0.75, 1.25)) -> tf.data.Dataset:
    """Batches of (images (B, h, w, 3) float32 BGR minus mean, labels (B, h, w) int32)."""
    crop_h, crop_w = input_size
    entries = list(entries)

    def decode(index):
        image, label = load_pair(entries[int(index)], num_classes, ignore_label)
        return image[..., ::-1].astype(np.float32) - IMG_MEAN, label[..., None].astype(np.int32)

    def load(index, seed_pair):
        image, label = tf.numpy_function(decode, [index], [tf.float32, tf.int32], stateful=False)
        image.set_shape([None, None, 3])
        label.set_shape([None, None, 1])
        return _augment(image, label, seed_pair, crop_h, crop_w, random_scale, random_mirror, ignore_label,
                        scale_range)

    ds = tf.data.Dataset.range(len(entries))
    if shuffle:
        ds = ds.shuffle(len(entries), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(2)  # a fresh stateless seed per element
    ds = tf.data.Dataset.zip((ds, seeds))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
