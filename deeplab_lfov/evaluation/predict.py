"""Test-time prediction: one image in, class probabilities at its own size out.

DeepLab's published protocol and the usual test-time augmentations are options:

* ``pad_to``: pad the (preprocessed) image at the bottom and right with the mean colour to
  ``pad_to`` x ``pad_to`` (DeepLab tests on 513x513), then crop the padding away again;
* ``scales``: run the net on rescaled copies and average the probabilities at full size;
* ``flip``: also run on the mirrored image and average (mirrored back).

With the defaults (one scale of 1.0, no flip, no padding) the result is exactly the plain
prediction: softmax of the Interp-upsampled logits.  The whole protocol is one TensorFlow function
(``test_time_probabilities``), compiled once for any image size; exported models run the same one.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ..core._tf import tf
from ..data.images import IMG_MEAN, preprocess
from ..model.deeplab_segmenter import constant_filters
from ..model.largefov import DeepLabLargeFOV
from ..model.ops import interp_bilinear

__all__ = ["Predictor", "predictor_for", "test_time_probabilities", "preprocess_tensor"]


def preprocess_tensor(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 RGB (N, H, W, 3) to the network's input, in TensorFlow: the same float32 operations as
    ``images.preprocess`` (BGR, minus the VGG mean), so exported models see the same numbers."""
    return tf.reverse(tf.cast(rgb, tf.float32), axis=[-1]) - tf.constant(IMG_MEAN)


def test_time_probabilities(model: DeepLabLargeFOV, net_inputs: tf.Tensor, *, scales: Sequence[float] = (1.0,),
                            flip: bool = False, pad_to: Optional[int] = None,
                            filters: Optional[Mapping[str, tf.Tensor]] = None) -> tf.Tensor:
    """(N, H, W, C) probabilities of preprocessed images (N, H, W, 3), in TensorFlow operations only.

    The one definition of the test-time protocol: the ``Predictor`` and the exported SavedModel and
    TFLite files all run this function, so they agree exactly.  ``filters`` go to the model
    (``constant_filters``).
    """
    height, width = tf.shape(net_inputs)[1], tf.shape(net_inputs)[2]
    batch = net_inputs
    if pad_to:  # zero after mean subtraction = the mean colour
        batch = tf.pad(batch, [[0, 0], [0, tf.maximum(pad_to - height, 0)], [0, tf.maximum(pad_to - width, 0)], [0, 0]])
    size = tf.shape(batch)[1:3]
    count = tf.shape(batch)[0]
    if flip:
        batch = tf.concat([batch, tf.reverse(batch, axis=[2])], axis=0)
    total = None
    for scale in scales:
        scaled = batch
        if scale != 1.0:  # round half to even on float64, as Python's round()
            target = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float64) * scale), tf.int32), 1)
            scaled = interp_bilinear(batch, target)
        logits = model(scaled, training=False, filters=filters) if filters else model(scaled, training=False)
        # Interp to the net's input size (as Caffe does), then to the full size if different.
        probs = tf.nn.softmax(interp_bilinear(logits, tf.shape(scaled)[1:3]), axis=-1)
        if scale != 1.0:
            probs = interp_bilinear(probs, size)
        if flip:
            probs = 0.5 * (probs[:count] + tf.reverse(probs[count:], axis=[2]))
        total = probs if total is None else total + probs
    total = total / float(len(scales))
    return total[:, :height, :width]


class Predictor:
    """Probabilities and labels of a model on single images, with test-time options.

    Args:
      model: a ``DeepLabLargeFOV`` (any net of the family).
      scales: input scales whose probabilities are averaged.
      flip: average with the prediction on the horizontally mirrored image.
      pad_to: pad each side to at least this size (DeepLab: 513), cropped away afterwards.
      constant_filters: run with the model's 3x3 (and larger) filters as constants of the compiled
        graphs (``deeplab_segmenter.constant_filters``): the same numbers, bit for bit, 4% faster at
        321x321 and 6% at 513x513 on this project's 2-core AVX-512 machine (oneDNN packs constant
        filters once), but TensorFlow keeps about seven copies of a graph's constants: LargeFOV's
        process grows by ~600 MB (1 GB at its peak) per compiled graph (``probabilities`` and
        ``labels`` are two) and the first call takes ~2 s longer.  Off by default.  The weights are
        read when a graph is first traced: not for a model still training.

    ``labels`` and ``labels_batch`` run the whole path in one graph (uint8 RGB in, uint8 labels out:
    preprocessing, the protocol, argmax of the probabilities), so the probabilities never leave
    TensorFlow; the labels are those of ``np.argmax`` of ``probabilities`` (the first of equal maxima).
    """

    def __init__(self, model: DeepLabLargeFOV, *, scales: Sequence[float] = (1.0,), flip: bool = False,
                 pad_to: Optional[int] = None, constant_filters: bool = False):
        self.model = model
        self.scales = tuple(float(s) for s in scales)
        self.flip = bool(flip)
        self.pad_to = pad_to
        self.constant_filters = bool(constant_filters)
        self._forward = tf.function(self.graph_probabilities,
                                    input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        self._labels = tf.function(self.graph_labels, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])

    def graph_probabilities(self, net_inputs: tf.Tensor) -> tf.Tensor:
        """``test_time_probabilities`` with this predictor's model and options."""
        filters = constant_filters(self.model) if self.constant_filters else None
        return test_time_probabilities(self.model, net_inputs, scales=self.scales, flip=self.flip, pad_to=self.pad_to,
                                       filters=filters)

    def graph_labels(self, rgb: tf.Tensor) -> tf.Tensor:
        """(N, H, W) uint8 labels of uint8 RGB images (N, H, W, 3), in TensorFlow operations only."""
        probs = self.graph_probabilities(preprocess_tensor(rgb))
        return tf.cast(tf.argmax(probs, axis=-1, output_type=tf.int32), tf.uint8)

    def probabilities_of_inputs(self, net_inputs: np.ndarray) -> np.ndarray:
        """(N, H, W, C) probabilities of N preprocessed (BGR, mean-subtracted) images of one size."""
        return self._forward(tf.constant(net_inputs, tf.float32)).numpy()

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
        """(H, W) uint8 label map of an RGB uint8 image."""
        return self.labels_batch([rgb])[0]

    def labels_batch(self, rgbs) -> np.ndarray:
        """(N, H, W) uint8 label maps of N RGB images of one size, run as one batch."""
        rgbs = [np.asarray(rgb) for rgb in rgbs]
        if all(rgb.dtype == np.uint8 for rgb in rgbs):
            return self._labels(tf.constant(np.stack(rgbs))).numpy()
        return np.argmax(self.probabilities_batch(rgbs), axis=-1).astype(np.uint8)  # other dtypes: as preprocess


def predictor_for(settings, weights_path: str, num_classes: Optional[int], record=None) -> Predictor:
    """Load the weights, build the model they describe (``record``: their ``weights_record``, if the caller
    has read it), and wrap it with the test-time settings (``settings.TestTimeConfig``: scales, flip,
    pad_to, precision)."""
    from ..model.ops import compute_dtype_for
    from ..model.weights import load_model
    model = load_model(weights_path, num_classes, model=getattr(settings, "model", None),
                       msc=getattr(settings, "msc", None), record=record,
                       compute_dtype=compute_dtype_for(settings.precision))
    return Predictor(model, scales=settings.scales, flip=settings.flip, pad_to=settings.pad_to)
