"""Weight import and export: TF1 checkpoints (V1, V2), caffemodels, pickles, and their failures."""

import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.model import DeepLabLargeFOV, caffe_import
from deeplab_lfov.model.weights import assign_weights, build_model, load_safe_pickle, load_weights, save_weights
from helpers import FIXTURES, assert_one_line_error, recipe_weights_caffe, recipe_weights_tf, run_cli

X = np.random.RandomState(7).uniform(-100, 100, size=(1, 40, 33, 3)).astype(np.float32)


def _tf1_checkpoint(path, weights, version):
    """A checkpoint as the classic TF 0.11 port wrote it: graph mode, name-based, classic names."""
    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.get_variable(name, initializer=tf.constant(value))
                     for name, value in weights.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables, write_version=version)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, path, write_meta_graph=False)


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_tf1_saver_checkpoint_restores_same_logits(tmp_path, version):
    weights = recipe_weights_tf("slim")
    saver_version = getattr(tf.compat.v1.train.SaverDef, version)
    prefix = _tf1_checkpoint(str(tmp_path / "model.ckpt-init"), weights, saver_version)
    if version == "V1":
        assert os.path.isfile(prefix) and not os.path.exists(prefix + ".index")
    model = build_model(load_weights(prefix))
    reference = DeepLabLargeFOV(width_multiplier=0.125)
    assign_weights(reference, weights)
    np.testing.assert_array_equal(model(X).numpy(), reference(X).numpy())


def test_not_restore_last_with_five_classes(tmp_path):
    weights = recipe_weights_tf("slim")
    prefix = _tf1_checkpoint(str(tmp_path / "model.ckpt"), weights, tf.compat.v1.train.SaverDef.V2)
    loaded = load_weights(prefix)
    with pytest.raises(DeepLabError, match=r"these weights have 21 classes, not 5"):
        build_model(loaded, num_classes=5)
    model = build_model(loaded, num_classes=5, skip_last=True)
    assert model(X).shape[-1] == 5
    np.testing.assert_array_equal(model.conv3_2.w.numpy(), weights["conv3_2/w"])


def test_wrong_shapes_and_missing_names_are_all_listed(tmp_path):
    weights = recipe_weights_tf("slim")
    weights["conv2_1/w"] = weights["conv2_1/w"][:, :, :, :4]
    del weights["fc7/b"]
    model = DeepLabLargeFOV(width_multiplier=0.125)
    with pytest.raises(DeepLabError) as e:
        assign_weights(model, weights, source="x.ckpt")
    assert "conv2_1/w has shape [3, 3, 8, 4]" in str(e.value) and "fc7/b missing" in str(e.value)


def test_save_weights_round_trip_is_name_based(tmp_path):
    weights = recipe_weights_tf("slim")
    prefix = save_weights(str(tmp_path / "w.ckpt"), weights)
    reader = tf.train.load_checkpoint(prefix)
    assert set(reader.get_variable_to_shape_map()) == set(weights)  # classic names, nothing else
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    back = load_weights(prefix)
    for name in weights:
        np.testing.assert_array_equal(back[name], weights[name])


def test_classic_pickle_of_arrays_loads(tmp_path):
    weights = recipe_weights_tf("slim")
    path = tmp_path / "net_weights.ckpt"
    with open(path, "wb") as f:
        pickle.dump(weights, f, protocol=2)
    back = load_weights(str(path))
    np.testing.assert_array_equal(back["fc6/w"], weights["fc6/w"])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "net_weights.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"conv1_1/w": _Exploit(marker)}, f)
    with pytest.raises(DeepLabError, match="unsafe or invalid pickle.*system"):
        load_safe_pickle(str(path))
    assert not marker.exists()


def _caffemodel_bytes(layers, v1=False):
    """Serialize {name: [arrays]} as a NetParameter (current or legacy V1 layout)."""
    net = caffe_import._NetParameter(name="test")
    for name, blobs in layers.items():
        layer = net.layers.add(name=name, type=4) if v1 else net.layer.add(name=name, type="Convolution")
        for arr in blobs:
            blob = layer.blobs.add()
            if v1:
                shape = (list(arr.shape) + [1, 1, 1, 1])[:4] if arr.ndim == 4 else [1, 1, 1, arr.size]
                blob.num, blob.channels, blob.height, blob.width = shape
            else:
                blob.shape.dim.extend(arr.shape)
            blob.data.extend(arr.reshape(-1).tolist() if arr.size < 10 else arr.reshape(-1))
    return net.SerializeToString()


def test_caffemodel_claiming_a_huge_blob_is_refused_without_allocating(tmp_path):
    net = caffe_import._NetParameter(name="evil")
    blob = net.layer.add(name="conv1_1", type="Convolution").blobs.add()
    blob.shape.dim.extend([1_000_000, 1_000_000])  # 10^12 elements claimed, none stored
    path = tmp_path / "evil.caffemodel"
    path.write_bytes(net.SerializeToString())
    with pytest.raises(DeepLabError, match="claims 1000000000000 elements"):
        load_weights(str(path))


def test_full_caffemodel_over_64mb_converts_and_matches(tmp_path, capsys):
    """The original widths as a real (>64 MB) caffemodel, converted by util/extract_params.py."""
    path = tmp_path / "full.caffemodel"
    path.write_bytes(_caffemodel_bytes({k: list(v) for k, v in recipe_weights_caffe("full").items()}))
    assert path.stat().st_size > 64 * 1024 ** 2
    code, out, err = run_cli("util/extract_params.py", [path, "--output_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "20505429 parameters" in out
    back = load_weights(str(tmp_path / "out" / "deeplab_lfov.ckpt"))
    expect = recipe_weights_tf("full")
    for name in ("conv1_1/w", "fc6/w", "fc8_voc12/b"):
        np.testing.assert_array_equal(back[name], expect[name])


def test_v1_layout_with_fc8_under_another_name(tmp_path):
    layers = {k: list(v) for k, v in recipe_weights_caffe("slim").items()}
    layers["fc8_pascal"] = layers.pop("fc8_voc12")
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(_caffemodel_bytes(layers, v1=True))
    model = build_model(load_weights(str(path)))
    np.testing.assert_array_equal(model.fc8_voc12.b.numpy(), layers["fc8_pascal"][1])


def test_caffemodel_without_fc8_converts_for_fine_tuning(tmp_path, capsys):
    layers = {k: list(v) for k, v in recipe_weights_caffe("slim").items() if k != "fc8_voc12"}
    path = tmp_path / "init.caffemodel"
    path.write_bytes(_caffemodel_bytes(layers))
    code, out, err = run_cli("util/extract_params.py", [path, "--output_dir", tmp_path], capsys)
    assert code == 0 and "--not_restore_last" in out
    assert not any(k.startswith("fc8") for k in load_weights(str(tmp_path / "deeplab_lfov.ckpt")))


# ----------------------------------------------------------------------------- CLI errors
def test_extract_params_errors(tmp_path, capsys):
    code, _, err = run_cli("util/extract_params.py", [tmp_path / "missing.caffemodel"], capsys)
    assert_one_line_error(code, err, "missing.caffemodel")

    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(open(os.path.join(FIXTURES, "slim.caffemodel"), "rb").read()[:300_000])
    code, _, err = run_cli("util/extract_params.py", [truncated], capsys)
    assert_one_line_error(code, err, "truncated.caffemodel", "truncated or corrupt")

    other = tmp_path / "lenet.caffemodel"
    other.write_bytes(_caffemodel_bytes({"conv1": [np.zeros((20, 1, 5, 5), np.float32), np.zeros(20, np.float32)],
                                         "ip1": [np.zeros((500, 800), np.float32), np.zeros(500, np.float32)]}))
    code, _, err = run_cli("util/extract_params.py", [other], capsys)
    assert_one_line_error(code, err, "lenet.caffemodel", "no DeepLab-LargeFOV layers")


def test_checkpoint_with_wrong_shapes_is_a_one_line_error(tmp_path, capsys):
    from PIL import Image
    weights = recipe_weights_tf("slim")
    weights["conv3_1/w"] = np.zeros((3, 3, 16, 7), np.float32)  # breaks the chain into conv3_2
    prefix = _tf1_checkpoint(str(tmp_path / "bad.ckpt"), weights, tf.compat.v1.train.SaverDef.V2)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    code, _, err = run_cli("inference.py", [image, prefix], capsys)
    assert_one_line_error(code, err, "bad.ckpt", "conv3_2/w has shape [3, 3, 32, 32], model expects [3, 3, 7, 32]")


def test_pycaffe_path_is_used_only_when_given(tmp_path, capsys):
    """--pycaffe_path imports `caffe` from that folder (a stand-in here with PyCaffe's Net API)."""
    fake = tmp_path / "pycaffe"
    fake.mkdir()
    np.savez(fake / "blobs.npz", **{f"{k}__{i}": b for k, v in recipe_weights_caffe("slim").items()
                                    for i, b in enumerate(v)})
    (fake / "caffe.py").write_text(
        "import os, numpy as np\nTEST = 1\n"
        "class _Blob:\n    def __init__(self, a): self.data = a\n"
        "class Net:\n"
        "    def __init__(self, prototxt, caffemodel, phase):\n"
        "        z = np.load(os.path.join(os.path.dirname(__file__), 'blobs.npz'))\n"
        "        self.params = {}\n"
        "        for key in sorted(z.files, key=lambda k: (k.split('__')[0], int(k.split('__')[1]))):\n"
        "            self.params.setdefault(key.split('__')[0], []).append(_Blob(z[key]))\n")
    sys_modules_before = "caffe" in __import__("sys").modules
    code, out, err = run_cli("util/extract_params.py", [tmp_path / "any.caffemodel", "--pycaffe_path", fake,
                                                        "--output_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(load_weights(str(tmp_path / "out" / "deeplab_lfov.ckpt"))["fc7/w"],
                                  recipe_weights_tf("slim")["fc7/w"])
    assert not sys_modules_before
    __import__("sys").modules.pop("caffe", None)
