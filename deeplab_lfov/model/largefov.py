"""DeepLab-LargeFOV (VGG-16 with atrous convolution), numerically equal to the Caffe original.

The network is described by ``layer_table``: a tuple of ``Layer`` records in Caffe's order with
Caffe's names (``conv1_1`` ... ``fc8_voc12``).  ``DeepLabLargeFOV`` builds its variables from that
table and runs it with Caffe semantics (``ops``: ceil-mode max pooling, average pooling that counts
the padding (``pool5a``), ``Interp``-style bilinear upsampling with aligned corners).

Tensors are NHWC, images are mean-subtracted BGR (see ``deeplab_lfov.data.images.preprocess``); filters
are stored in TensorFlow's HWIO layout under the classic port's names (``conv1_1/w``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..core._tf import tf
from ..core.constants import NUM_CLASSES
from .ops import (
    atrous_conv2d,
    caffe_avg_pool,
    caffe_max_pool,
    caffe_pool_output_size,
    compute_dtype_for,
    interp_bilinear,
    native_atrous_gradients,
)

__all__ = ["Layer", "layer_table", "conv_layers", "logits_size", "conv_flops", "DeepLabLargeFOV",
           # the operations, importable from here as before
           "compute_dtype_for", "caffe_pool_output_size", "interp_bilinear", "atrous_conv2d",
           "native_atrous_gradients"]

# Full widths of the original net; ``width_multiplier`` scales all but fc8.
_FULL_WIDTHS = {
    "conv1": 64, "conv2": 128, "conv3": 256, "conv4": 512, "conv5": 512, "fc6": 1024, "fc7": 1024,
}


# Layers kept in float32 under mixed precision (as Keras keeps a model's last layers): the head,
# whose logits are compared by argmax. It is ~19% of the FLOPs at 321x321; with it in bfloat16 the
# argmax agreed with float32 on only 98.7% of the pixels of a golden Caffe input (>= 99.1% so).
_FLOAT32_LAYERS = ("fc6", "fc7", "fc8_voc12")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of the layer table, with the fields of Caffe's layer parameters."""

    name: str
    kind: str  # "conv", "max_pool", "avg_pool" or "dropout"
    filters: int = 0
    kernel: int = 3
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    relu: bool = True
    rate: float = 0.0  # dropout rate


def _conv(name: str, filters: int, *, kernel: int = 3, dilation: int = 1, relu: bool = True) -> Layer:
    # Every convolution of the net is 'same'-sized: Caffe pad = dilation * (kernel - 1) / 2.
    return Layer(name, "conv", filters=filters, kernel=kernel, pad=dilation * (kernel - 1) // 2,
                 dilation=dilation, relu=relu)


def _pool(name: str, kind: str, stride: int) -> Layer:
    return Layer(name, kind, kernel=3, stride=stride, pad=1)


def layer_table(num_classes: int = NUM_CLASSES, width_multiplier: float = 1.0,
                widths: Optional[Mapping[str, int]] = None, dropout_rate: float = 0.5) -> Tuple[Layer, ...]:
    """The DeepLab-LargeFOV layer table.

    Args:
      num_classes: outputs of ``fc8_voc12`` (21 for PASCAL VOC).
      width_multiplier: scales every width but fc8's; 0.125 gives the "slim" test net
        (8, 16, 32, 64, 64, 128, 128 filters).
      widths: explicit filters per conv layer name (``{"conv1_1": 8, ...}``), overriding the
        multiplier; used to build a net matching a checkpoint.
      dropout_rate: of drop6 and drop7 in training (0.5 in DeepLab).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")

    def width(name: str) -> int:
        if widths and name in widths:
            return int(widths[name])
        group = name.split("_")[0]
        return max(1, int(round(_FULL_WIDTHS[group] * width_multiplier)))

    table = []
    for block, (convs, pool_stride) in enumerate([(2, 2), (2, 2), (3, 2), (3, 1), (3, 1)], start=1):
        for i in range(1, convs + 1):
            name = f"conv{block}_{i}"
            table.append(_conv(name, width(name), dilation=2 if block == 5 else 1))
        table.append(_pool(f"pool{block}", "max_pool", pool_stride))
    table += [
        _pool("pool5a", "avg_pool", 1),
        _conv("fc6", width("fc6"), dilation=12),
        Layer("drop6", "dropout", rate=dropout_rate),
        _conv("fc7", width("fc7"), kernel=1),
        Layer("drop7", "dropout", rate=dropout_rate),
        _conv("fc8_voc12", num_classes, kernel=1, relu=False),
    ]
    return tuple(table)


def conv_layers(table: Iterable[Layer]) -> Tuple[Layer, ...]:
    """The layers that own weights, in order."""
    return tuple(layer for layer in table if layer.kind == "conv")


def logits_size(height: int, width: int, table: Optional[Sequence[Layer]] = None) -> Tuple[int, int]:
    """Spatial size of the fc8 output for an input of ``height`` x ``width``."""
    for layer in table or layer_table():
        if layer.kind in ("max_pool", "avg_pool"):
            height = caffe_pool_output_size(height, layer.kernel, layer.stride, layer.pad)
            width = caffe_pool_output_size(width, layer.kernel, layer.stride, layer.pad)
    return height, width


def conv_flops(model: DeepLabLargeFOV, height: int, width: int) -> float:
    """Forward FLOPs (2 x multiply-adds) of the convolutions for one ``height`` x ``width`` image."""
    total, h, w, cin = 0.0, height, width, 3
    for layer in model.table:
        if layer.kind == "conv":
            total += 2.0 * h * w * layer.kernel ** 2 * cin * layer.filters
            cin = layer.filters
        elif layer.kind in ("max_pool", "avg_pool"):
            h = caffe_pool_output_size(h, layer.kernel, layer.stride, layer.pad)
            w = caffe_pool_output_size(w, layer.kernel, layer.stride, layer.pad)
    return total


class _Conv(tf.Module):
    """Weights of one convolution: ``w`` in HWIO, ``b``."""

    def __init__(self, layer: Layer, in_channels: int, rng: np.random.RandomState, dtype=tf.float32):
        super().__init__(name=layer.name)
        shape = (layer.kernel, layer.kernel, in_channels, layer.filters)
        if layer.name.startswith("fc8"):
            std = 0.01  # DeepLab's classifier initialisation (Caffe 'gaussian', std 0.01)
        else:
            std = math.sqrt(2.0 / (layer.kernel * layer.kernel * in_channels))  # He et al.
        self.w = tf.Variable(rng.normal(0.0, std, size=shape).astype(np.float32), name="w", dtype=dtype)
        self.b = tf.Variable(np.zeros([layer.filters], np.float32), name="b", dtype=dtype)


class DeepLabLargeFOV(tf.Module):
    """DeepLab-LargeFOV: VGG-16, atrous conv5 (rate 2) and fc6 (rate 12), output stride 8.

    Args:
      num_classes: classes of fc8 (21 for PASCAL VOC).
      width_multiplier: scales all widths but fc8's (1.0 = the published net, 20.5M parameters).
      widths: explicit widths per conv layer (see ``layer_table``).
      seed: seed of the random initialisation (He-normal filters, zero biases, fc8 N(0, 0.01)).
      dropout_rate: of drop6/drop7 when ``training`` (0.5 as in DeepLab).
      compute_dtype: dtype of the convolutions; variables stay float32 (``tf.bfloat16`` or
        ``tf.float16`` for mixed precision).

    Example:
      >>> model = DeepLabLargeFOV(num_classes=21, width_multiplier=0.125, seed=0)
      >>> logits = model(tf.zeros([1, 321, 321, 3]))   # (1, 41, 41, 21)
      >>> labels = model.predict_labels(tf.zeros([1, 321, 321, 3]))   # (1, 321, 321)
    """

    def __init__(self, num_classes: int = NUM_CLASSES, width_multiplier: float = 1.0, *,
                 widths: Optional[Mapping[str, int]] = None, seed: Optional[int] = 0,
                 dropout_rate: float = 0.5, compute_dtype=tf.float32, name: str = "deeplab_lfov"):
        super().__init__(name=name)
        self.num_classes = int(num_classes)
        self.table = layer_table(num_classes, width_multiplier, widths, dropout_rate)
        self.compute_dtype = tf.as_dtype(compute_dtype)
        self.float32_layers = set(_FLOAT32_LAYERS)
        rng = np.random.RandomState(seed)
        in_channels = 3
        self.convs: Dict[str, _Conv] = {}
        for layer in conv_layers(self.table):
            conv = _Conv(layer, in_channels, rng)
            setattr(self, layer.name, conv)  # tracked as model/conv1_1/w in object checkpoints
            self.convs[layer.name] = conv
            in_channels = layer.filters

    # ----------------------------------------------------------------------------------- weights
    def named_variables(self) -> Dict[str, tf.Variable]:
        """Variables under the classic names, in layer order: ``{"conv1_1/w": var, ...}``."""
        out = {}
        for name, conv in self.convs.items():
            out[f"{name}/w"] = conv.w
            out[f"{name}/b"] = conv.b
        return out

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.named_variables().values()))

    # ----------------------------------------------------------------------------------- forward
    def __call__(self, images: tf.Tensor, training: bool = False, *,
                 endpoints: Optional[Dict[str, tf.Tensor]] = None) -> tf.Tensor:
        """fc8 logits (N, h, w, num_classes) of mean-subtracted BGR ``images`` (N, H, W, 3).

        ``training`` turns dropout on.  Pass a dict as ``endpoints`` to receive every layer's
        output by its Caffe name (used by the parity tests).
        """
        x = tf.cast(images, self.compute_dtype)
        for layer in self.table:
            if layer.kind == "conv":
                conv = self.convs[layer.name]
                dtype = tf.float32 if layer.name in self.float32_layers else self.compute_dtype
                x = tf.cast(x, dtype)
                w = tf.cast(conv.w, dtype)
                b = tf.cast(conv.b, dtype)
                x = atrous_conv2d(x, w, layer.dilation, differentiable=training)
                x = tf.nn.bias_add(x, b)
                if layer.relu:
                    x = tf.nn.relu(x)
            elif layer.kind == "max_pool":
                x = caffe_max_pool(x, layer.kernel, layer.stride, layer.pad)
            elif layer.kind == "avg_pool":
                x = caffe_avg_pool(x, layer.kernel, layer.stride, layer.pad)
            elif layer.kind == "dropout":
                if training and layer.rate > 0:
                    x = tf.nn.dropout(x, rate=layer.rate)
            else:  # pragma: no cover - the table is ours
                raise ValueError(f"unknown layer kind {layer.kind!r}")
            if endpoints is not None:
                endpoints[layer.name] = x
        return tf.cast(x, tf.float32)

    def upsampled_logits(self, images: tf.Tensor) -> tf.Tensor:
        """Logits resized to the input size with Caffe's Interp (aligned corners)."""
        logits = self(images, training=False)
        return interp_bilinear(logits, tf.shape(images)[1:3])

    def predict_probabilities(self, images: tf.Tensor) -> tf.Tensor:
        """Softmax probabilities at the input size, (N, H, W, num_classes)."""
        return tf.nn.softmax(self.upsampled_logits(images), axis=-1)

    def predict_labels(self, images: tf.Tensor) -> tf.Tensor:
        """Label map at the input size, (N, H, W) int32: argmax of the upsampled logits."""
        return tf.argmax(self.upsampled_logits(images), axis=-1, output_type=tf.int32)
