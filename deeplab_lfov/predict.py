"""Test-time prediction: one image in, class probabilities at its own size out.

DeepLab's published protocol and the usual test-time augmentations are options:

* ``pad_to``: pad the (preprocessed) image at the bottom and right with the mean colour to
  ``pad_to`` x ``pad_to`` (DeepLab tests on 513x513), then crop the padding away again;
* ``scales``: run the net on rescaled copies and average the probabilities at full size;
* ``flip``: also run on the mirrored image and average (mirrored back).

With the defaults (one scale of 1.0, no flip, no padding) the result is exactly the plain
prediction: softmax of the Interp-upsampled logits.  The forward pass is one compiled function
that accepts any image size without retracing.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ._tf import tf
from .images import preprocess
from .model import DeepLabLargeFOV, interp_bilinear

__all__ = ["Predictor", "predictor_for"]


class Predictor:
    """Probabilities and labels of a model on single images, with test-time options.

    Args:
      model: a ``DeepLabLargeFOV``.
      scales: input scales whose probabilities are averaged.
      flip: average with the prediction on the horizontally mirrored image.
      pad_to: pad each side to at least this size (DeepLab: 513), cropped away afterwards.
    """

    def __init__(self, model: DeepLabLargeFOV, *, scales: Sequence[float] = (1.0,), flip: bool = False,
                 pad_to: Optional[int] = None):
        self.model = model
        self.scales = tuple(scales)
        self.flip = bool(flip)
        self.pad_to = pad_to
        self._forward = tf.function(self._probabilities_at,
                                    input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                                     tf.TensorSpec([2], tf.int32)],
                                    reduce_retracing=True)

    def _probabilities_at(self, images: tf.Tensor, out_size: tf.Tensor) -> tf.Tensor:
        logits = self.model(images, training=False)
        # Interp to the net's input size (as Caffe does), then to the requested size if different.
        logits = interp_bilinear(logits, tf.shape(images)[1:3])
        probs = tf.nn.softmax(logits, axis=-1)
        if tf.reduce_any(tf.shape(images)[1:3] != out_size):
            probs = interp_bilinear(probs, out_size)
        return probs

    def probabilities_of_inputs(self, net_inputs: np.ndarray) -> np.ndarray:
        """(N, H, W, C) probabilities of N preprocessed (BGR, mean-subtracted) images of one size."""
        count, height, width = net_inputs.shape[:3]
        batch = net_inputs
        if self.pad_to:
            ph, pw = max(self.pad_to - height, 0), max(self.pad_to - width, 0)
            batch = np.pad(batch, [(0, 0), (0, ph), (0, pw), (0, 0)])  # zero after mean subtraction = the mean
        size = np.array(batch.shape[1:3], np.int32)
        if self.flip:
            batch = np.concatenate([batch, batch[:, :, ::-1]], axis=0)
        total = None
        for scale in self.scales:
            scaled = batch
            if scale != 1.0:
                target = [max(1, int(round(size[0] * scale))), max(1, int(round(size[1] * scale)))]
                scaled = interp_bilinear(tf.constant(batch), target).numpy()
            probs = self._forward(tf.constant(scaled, tf.float32), tf.constant(size)).numpy()
            if self.flip:
                probs = 0.5 * (probs[:count] + probs[count:, :, ::-1])
            total = probs if total is None else total + probs
        total /= len(self.scales)
        return total[:, :height, :width]

    def probabilities_of_input(self, net_input: np.ndarray) -> np.ndarray:
        """(H, W, C) probabilities of one preprocessed (BGR, mean-subtracted) image."""
        return self.probabilities_of_inputs(net_input[None])[0]

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, C) class probabilities of an RGB uint8 image."""
        return self.probabilities_of_input(preprocess(rgb))

    def probabilities_batch(self, rgbs) -> np.ndarray:
        """(N, H, W, C) probabilities of N RGB uint8 images of one size, run as one batch."""
        return self.probabilities_of_inputs(np.stack([preprocess(rgb) for rgb in rgbs]))

    def labels(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) label map of an RGB uint8 image."""
        return np.argmax(self.probabilities(rgb), axis=-1).astype(np.uint8)


def predictor_for(settings, weights_path: str, num_classes: Optional[int]) -> Predictor:
    """Load the weights, build the model they describe, and wrap it with the test-time settings
    (``settings.TestTimeSettings``: scales, flip, pad_to, precision)."""
    from .model import compute_dtype_for
    from .weights import build_model, load_weights
    model = build_model(load_weights(weights_path), num_classes, source=weights_path,
                        compute_dtype=compute_dtype_for(settings.precision))
    return Predictor(model, scales=settings.scales, flip=settings.flip, pad_to=settings.pad_to)
