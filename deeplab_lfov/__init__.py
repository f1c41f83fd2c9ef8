"""DeepLab-LargeFOV on TensorFlow 2.x: a Caffe-exact model, weight import, training, CRF, deployment.

Modules, one job each:

* ``settings``: every setting of every program, once (flags are generated from it).
* ``model``: the layer table and the network (Caffe-exact pooling and Interp).
* ``weights``, ``caffe_import``: checkpoints, caffemodels and classic pickles in; checkpoints out.
* ``images``, ``colormap``, ``classes``: image/label files, colours, class lists.
* ``image_reader``: list files and the tf.data training pipeline.
* ``checks``: pre-flight checks and summaries of many problems.
* ``snapshots``, ``callbacks``, ``training``, ``optim``: the snapshot directory, the loop and its jobs,
  the compiled step, the optimisers.
* ``predict``, ``evaluation``, ``metrics``: test time and scoring.
* ``crf``, ``crf_tf``, ``refine``: the dense CRF (pydensecrf or TensorFlow) and label refinement.
* ``collection``, ``export``, ``progress``: inference over collections, SavedModel/TFLite export.
* ``convert``, ``statistics``, ``voc``, ``sample_data``: label conversion and statistics, VOC/SBD,
  the synthetic sample data.
* ``cli``: the command-line programs.
"""

__version__ = "1.1.0"
