"""The classic import path ``deeplab_lfov.image_reader``: the list reader and training pipeline (``data.reader``),
and ``ImageReader``, the classic port's reader, served by the tf.data pipeline.

New code uses ``deeplab_lfov.data.reader`` directly; this module keeps the classic scripts' imports working.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .core._tf import tf
from .core.constants import IGNORE_LABEL, NUM_CLASSES
from .core.errors import DeepLabError
from .data.images import IMG_MEAN
from .data.reader import Entry, load_pair, read_list, shrink_labels, train_dataset

__all__ = ["ImageReader", "Entry", "read_list", "load_pair", "shrink_labels", "train_dataset"]


class ImageReader:
    """The classic ``ImageReader(data_dir, data_list, input_size, random_scale, coord)``: random crops of
    ``input_size`` (scaled and mirrored) from a list; ``dequeue(n)`` gives the next ``n`` pairs.

    There are no queue runners in TensorFlow 2: ``coord`` is accepted and unused.  ``img_mean`` must be
    the VGG mean the nets were trained with (the pipeline subtracts it); the labels come as the classic
    port's (N, H, W, 1) uint8.
    """

    def __init__(self, data_dir: str, data_list: str, input_size: Tuple[int, int], random_scale: bool = True,
                 random_mirror: bool = True, ignore_label: int = IGNORE_LABEL, img_mean: Optional[Sequence] = None,
                 coord=None, *, num_classes: int = NUM_CLASSES, seed: int = 1234):
        if img_mean is not None and not np.allclose(np.asarray(img_mean, np.float32).reshape(-1), IMG_MEAN):
            raise DeepLabError(f"img_mean {list(np.reshape(img_mean, -1))}: the pipeline subtracts the VGG mean "
                               f"(B, G, R) {list(IMG_MEAN)}, the one the nets were trained with")
        self.entries = read_list(data_dir, data_list)
        self.image_list = [e.image for e in self.entries]
        self.label_list = [e.label for e in self.entries]
        self.input_size = tuple(int(v) for v in input_size)
        self._options = dict(num_classes=num_classes, ignore_label=ignore_label, random_scale=random_scale,
                             random_mirror=random_mirror, seed=seed)
        self._batches = None
        self._batch_size = None

    def dequeue(self, num_elements: int):
        """The next ``num_elements`` (images (N, H, W, 3) float32 BGR minus the mean, labels (N, H, W, 1) uint8)."""
        if self._batches is None or num_elements != self._batch_size:
            dataset = train_dataset(self.entries, self.input_size, num_elements, **self._options)
            self._batches, self._batch_size = iter(dataset), num_elements
        images, labels = next(self._batches)
        return images, tf.cast(labels[..., None], tf.uint8)
