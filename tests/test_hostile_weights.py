"""Untrusted weights (issue 18): a file's declared sizes are checked before anything is allocated.

Each case runs in a subprocess under a 2 GB address-space cap (what a careless loader would exceed),
and must end in one ``error:`` line with exit code 2; the peak resident memory of each is printed
(pytest -s) and bounded."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, SUBPROCESS_ENV

CAP = 2 * 1024 ** 3
RUN = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
sys.argv = ["inference.py", {image!r}, {weights!r}, "--save_dir", {out!r}]
import runpy
try:
    runpy.run_path("inference.py", run_name="__main__")
finally:
    print("peak_kb", [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1], file=sys.stderr)
"""


def _load_under_cap(tmp_path, weights):
    image = tmp_path / "x.png"
    from PIL import Image
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    proc = subprocess.run([sys.executable, "-c", RUN.format(cap=CAP, image=str(image), weights=str(weights),
                                                            out=str(tmp_path / "out"))],
                          cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("peak_kb")]
    if proc.returncode != 2:
        print(proc.stderr[-3000:])
    peak_mb = int(proc.stderr.rsplit("peak_kb", 1)[1].split()[0]) / 1024
    print(f"{os.path.basename(str(weights))}: exit {proc.returncode}, peak {peak_mb:.0f} MB")
    return proc.returncode, lines, peak_mb


TINY_BOMB = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05\x00\x00\x00\x00\x01"
             b"\x85U\x01b\x87R.")  # an ndarray of 2**32 int8, which _reconstruct allocates before any data


def test_a_tiny_pickle_asking_for_a_huge_array_is_refused_before_allocating(tmp_path):
    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.model.weights import load_safe_pickle
    path = tmp_path / "net_weights.ckpt"
    path.write_bytes(TINY_BOMB)
    assert len(path.read_bytes()) < 100
    with pytest.raises(DeepLabError, match="4,294,967,296 elements"):  # refused by its header, uncapped too
        load_safe_pickle(str(path))
    code, lines, peak = _load_under_cap(tmp_path, path)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "net_weights.ckpt" in lines[0], lines
    assert peak < 1500


def test_object_string_and_structured_arrays_in_a_pickle_are_refused(tmp_path):
    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.model.weights import load_safe_pickle
    for i, array in enumerate((np.array(["a", "b"]), np.zeros(2, dtype=[("x", "f4"), ("y", "i4")]))):
        path = tmp_path / f"bad{i}.ckpt"
        path.write_bytes(pickle.dumps({"conv1_1/w": array}, protocol=2))
        with pytest.raises(DeepLabError, match=f"bad{i}.ckpt"):
            load_safe_pickle(str(path))


def test_a_caffemodel_declaring_a_wide_layer_is_refused_before_the_net_is_built(tmp_path):
    """fc6 declared with 2,000,000 outputs (its 1x1x1 filter per output stored: 8 MB in the file) would
    make fc6/fc7 allocate tens of GB; its input width does not fit pool5, and the net is far too large."""
    from test_weights import _caffemodel_bytes

    from helpers import recipe_weights_caffe
    layers = {k: list(v) for k, v in recipe_weights_caffe("slim").items()}
    layers["fc6"] = [np.zeros((2_000_000, 1, 1, 1), np.float32), np.zeros(2_000_000, np.float32)]
    path = tmp_path / "wide.caffemodel"
    path.write_bytes(_caffemodel_bytes(layers))
    code, lines, peak = _load_under_cap(tmp_path, path)
    assert code == 2 and len(lines) == 1 and "wide.caffemodel" in lines[0], lines
    assert peak < 1500


def test_a_tiny_checkpoint_declaring_a_huge_tensor_is_refused_before_reading(tmp_path):
    """A checkpoint whose data file is cut to 81 bytes while its index still declares a 96 KB tensor (a
    crafted index may declare gigabytes the same way): refused from the index, before any tensor is read."""
    import tensorflow as tf
    big = str(tmp_path / "big.ckpt")
    tf.raw_ops.SaveV2(prefix=big, tensor_names=["conv1_1/w"], shape_and_slices=[""],
                      tensors=[tf.zeros([64, 64, 3, 2])])
    data = open(big + ".data-00000-of-00001", "rb").read()
    with open(big + ".data-00000-of-00001", "wb") as f:  # the data cut to 81 bytes: the index still says 96 KB
        f.write(data[:81])
    code, lines, peak = _load_under_cap(tmp_path, big)
    assert code == 2 and len(lines) == 1 and "big.ckpt" in lines[0], lines


def test_a_checkpoint_of_strings_under_a_weight_name_is_refused(tmp_path):
    import tensorflow as tf

    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.model.weights import load_weights
    prefix = str(tmp_path / "strings.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["conv1_1/w"], shape_and_slices=[""],
                      tensors=[tf.constant(["x", "y"])])
    with pytest.raises(DeepLabError, match="strings.ckpt.*conv1_1/w.*string"):
        load_weights(prefix)
