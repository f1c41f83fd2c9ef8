"""The DeepLab nets: their layer tables, the Caffe operations they run, and their weights.

* ``ops``: Caffe's pooling, ``Interp`` and atrous convolution in TensorFlow;
* ``largefov``: DeepLab-LargeFOV (VGG-16, atrous), the layer table and ``DeepLabLargeFOV``;
* ``caffe_import``: ``.caffemodel`` files read without Caffe;
* ``weights``: checkpoints, caffemodels and classic pickles in; checkpoints out.

``deeplab_lfov.model.DeepLabLargeFOV`` is the classic import path and stays one.
"""

from .largefov import DeepLabLargeFOV, Layer, conv_flops, conv_layers, layer_table, logits_size
from .ops import (
                  atrous_conv2d,
                  caffe_avg_pool,
                  caffe_max_pool,
                  caffe_pool_output_size,
                  compute_dtype_for,
                  interp_bilinear,
                  native_atrous_gradients,
)

__all__ = ["DeepLabLargeFOV", "Layer", "layer_table", "conv_layers", "logits_size", "conv_flops", "compute_dtype_for",
           "caffe_pool_output_size", "caffe_max_pool", "caffe_avg_pool", "interp_bilinear", "atrous_conv2d",
           "native_atrous_gradients"]
