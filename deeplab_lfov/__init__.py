"""DeepLab-LargeFOV on TensorFlow 2.x: a Caffe-exact model, weight import, training, CRF.

Modules, one job each:

* ``model``: the layer table and the network (Caffe-exact pooling and Interp).
* ``weights``: checkpoints, caffemodels and classic pickles in; name-based checkpoints out.
* ``caffe_import``: the caffemodel protobuf reader (no Caffe needed).
* ``images``, ``colormap``: image/label files and the VOC colour map.
* ``image_reader``: list files and the tf.data training pipeline.
* ``metrics``: confusion matrix and mean IoU.
* ``predict``, ``crf``: test-time prediction and the dense CRF.
* ``training``, ``evaluation``: what ``train.py`` and ``evaluate.py`` run.
"""

__version__ = "1.0.0"
