"""Lets the scripts of this folder run from a plain checkout: if ``deeplab_lfov`` is not installed,
the package beside this folder is used.  (Installed with ``pip install .``, nothing changes.)"""

import importlib.util
import os
import sys

if importlib.util.find_spec("deeplab_lfov") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
