"""The DeepLab nets: their layer tables, the Caffe operations they run, and their weights.

The family follows keras-hub's split by role:

* ``deeplab_layers``: ``Layer`` (one row of a net, Caffe's fields), table walking (sizes,
  classifiers), the weight holders ``Conv`` and ``FrozenBatchNorm``;
* ``vgg16_backbone``, ``resnet101_backbone``: the backbones as tables;
* ``deeplab_heads``: LargeFOV's head, VGG-16's ASPP, ResNet-101's ASPP-L;
* ``deeplab_segmenter``: ``DeepLab`` (runs any backbone + head), ``MSC`` (multi-scale inputs around it),
  ``conv_flops``;
* ``deeplab_presets``: the paper's nets by name (``MODELS``, ``build_net``, ``describe_weights``);
* ``largefov``: DeepLab-LargeFOV's ``layer_table`` and ``DeepLabLargeFOV`` (the ``largefov`` preset);
* ``ops``: Caffe's pooling, ``Interp`` and atrous/strided convolution in TensorFlow;
* ``caffe_import``: ``.caffemodel`` files read without Caffe (convolutions, BatchNorm, Scale, MSC copies);
* ``weights``: checkpoints, caffemodels and classic pickles in; checkpoints out.

``deeplab_lfov.model.DeepLabLargeFOV`` is the classic import path and stays one.
"""

from .deeplab_layers import FrozenBatchNorm, table_shapes
from .deeplab_presets import (
                              MAX_NET_VALUES,
                              MODELS,
                              Preset,
                              build_net,
                              classifier_layers,
                              describe_weights,
                              from_tf1_names,
                              net_tables,
                              variable_shapes,
)
from .deeplab_segmenter import MSC, DeepLab, conv_flops
from .largefov import DeepLabLargeFOV, Layer, conv_layers, layer_table, logits_size
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
           "native_atrous_gradients", "DeepLab", "MSC", "FrozenBatchNorm", "table_shapes", "MODELS", "Preset",
           "build_net", "net_tables", "describe_weights", "from_tf1_names", "variable_shapes",
           "classifier_layers", "MAX_NET_VALUES"]
