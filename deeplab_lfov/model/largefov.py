"""DeepLab-LargeFOV (VGG-16 with atrous convolution), numerically equal to the Caffe original.

The network is described by ``layer_table``: a tuple of ``Layer`` records in Caffe's order with
Caffe's names (``conv1_1`` ... ``fc8_voc12``), the VGG-16 backbone with ``pool5a`` and the LargeFOV
head.  ``DeepLabLargeFOV`` is the family's ``DeepLab`` (``deeplab_segmenter``) built from that table; it
runs it with Caffe semantics (``ops``: ceil-mode max pooling, average pooling that counts
the padding (``pool5a``), ``Interp``-style bilinear upsampling with aligned corners).

Tensors are NHWC, images are mean-subtracted BGR (see ``deeplab_lfov.data.images.preprocess``); filters
are stored in TensorFlow's HWIO layout under the classic port's names (``conv1_1/w``).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

from ..core._tf import tf
from ..core.constants import NUM_CLASSES
from .deeplab_heads import largefov_head
from .deeplab_layers import Layer, conv_layers, output_size
from .deeplab_segmenter import DeepLab, conv_flops
from .ops import (
    atrous_conv2d,
    caffe_pool_output_size,
    compute_dtype_for,
    interp_bilinear,
    native_atrous_gradients,
)
from .vgg16_backbone import vgg16_backbone

__all__ = ["Layer", "layer_table", "conv_layers", "logits_size", "conv_flops", "DeepLabLargeFOV",
           # the operations, importable from here as before
           "compute_dtype_for", "caffe_pool_output_size", "interp_bilinear", "atrous_conv2d",
           "native_atrous_gradients"]

# Layers kept in float32 under mixed precision (as Keras keeps a model's last layers): the head,
# whose logits are compared by argmax. It is ~19% of the FLOPs at 321x321; with it in bfloat16 the
# argmax agreed with float32 on only 98.7% of the pixels of a golden Caffe input (>= 99.1% so).
# Every net of the family keeps its head's convolutions in float32 the same way (``DeepLab``).
_FLOAT32_LAYERS = ("fc6", "fc7", "fc8_voc12")


def _tables(num_classes: int, width_multiplier: float, widths: Optional[Mapping[str, int]],
            dropout_rate: float) -> Tuple[Tuple[Layer, ...], Tuple[Layer, ...]]:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    return (vgg16_backbone(width_multiplier, widths, pool5a=True),
            largefov_head(num_classes, width_multiplier, widths, dropout_rate=dropout_rate))


def layer_table(num_classes: int = NUM_CLASSES, width_multiplier: float = 1.0,
                widths: Optional[Mapping[str, int]] = None, dropout_rate: float = 0.5) -> Tuple[Layer, ...]:
    """The DeepLab-LargeFOV layer table: ``vgg16_backbone(pool5a=True)`` + ``largefov_head``.

    Args:
      num_classes: outputs of ``fc8_voc12`` (21 for PASCAL VOC).
      width_multiplier: scales every width but fc8's; 0.125 gives the "slim" test net
        (8, 16, 32, 64, 64, 128, 128 filters).
      widths: explicit filters per conv layer name (``{"conv1_1": 8, ...}``), overriding the
        multiplier; used to build a net matching a checkpoint.
      dropout_rate: of drop6 and drop7 in training (0.5 in DeepLab).
    """
    backbone, head = _tables(num_classes, width_multiplier, widths, dropout_rate)
    return backbone + head


def logits_size(height: int, width: int, table: Optional[Sequence[Layer]] = None) -> Tuple[int, int]:
    """Spatial size of the logits for an input of ``height`` x ``width`` (LargeFOV's unless ``table``)."""
    return output_size(table or layer_table(), height, width)


class DeepLabLargeFOV(DeepLab):
    """DeepLab-LargeFOV: VGG-16, atrous conv5 (rate 2) and fc6 (rate 12), output stride 8.

    The ``"largefov"`` preset of the family (``build_net("largefov")`` builds one): a
    ``DeepLab`` with LargeFOV's tables and its classic constructor.

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
        backbone, head = _tables(num_classes, width_multiplier, widths, dropout_rate)
        super().__init__(backbone, head, model_name="largefov", seed=seed, compute_dtype=compute_dtype, name=name)
