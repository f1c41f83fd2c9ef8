"""DeepLab on TensorFlow 2.x: Caffe-exact nets, weight import, training, CRF, deployment.

The package is in layers; a module imports only from its own layer and the layers below it (the
contract in ``pyproject.toml``, checked by ``make test``), never from above, and no imports go round
in a cycle.  From the top:

* ``cli``: the command-line programs (parse, call one library function, report).
* ``settings``: every setting of every program, once; the flags are generated from them.
* ``deploy`` (collections of images, SavedModel/TFLite export) | ``training`` (the step, the loop,
  its callbacks, snapshots, optimisers).
* ``evaluation``: test-time prediction, scoring, the CRF grid search.
* ``model`` (the nets as layer tables, Caffe's operations, weights in and out) | ``crf`` (the dense
  CRF, in TensorFlow or pydensecrf, and label refinement).
* ``data``: image and label files, class lists and colours, list files and the training pipeline,
  pre-flight checks, label conversion and statistics, VOC/SBD, the synthetic sample data.
* ``core``: constants, the error users see, quiet TensorFlow, atomic file writes, progress lines.

``deeplab_lfov.model.DeepLabLargeFOV`` and ``deeplab_lfov.image_reader.ImageReader`` are the classic
import paths.
"""

__version__ = "1.2.0"
