"""The fully-connected CRF DeepLab refines its predictions with.

* ``params``: ``CRFParams``, DeepLab's CRF settings;
* ``dense``: ``make_crf`` (either backend), the ``pydensecrf`` backend and its worker processes;
* ``tf_crf``: the CRF in TensorFlow operations (permutohedral lattice), the default backend;
* ``classes``: hard (pseudo) labels as a unary, the classes absent from a label map in one channel;
* ``refine``: refining folders of pseudo labels or probabilities (``util/crf_refine.py``).

Importing this package imports no TensorFlow (CRF worker processes start fast); ``tf_crf`` does.
"""

from .dense import CRF_BACKENDS, CRF_PACKAGE, DenseCRF, check_backend, crf_labels, init_worker, make_crf
from .params import CRFParams

__all__ = ["CRFParams", "DenseCRF", "CRF_PACKAGE", "CRF_BACKENDS", "make_crf", "check_backend", "init_worker", "crf_labels"]
