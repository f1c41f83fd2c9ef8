"""The model against golden BVLC Caffe outputs, plus the pieces of Caffe semantics on their own."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.cli import extract_params
from deeplab_lfov.model import DeepLabLargeFOV, layer_table, logits_size
from deeplab_lfov.model.ops import caffe_avg_pool, caffe_max_pool, caffe_pool_output_size
from deeplab_lfov.model.weights import build_model, load_weights
from helpers import FIXTURES, MANIFEST, case_input, recipe_weights_tf

SLIM_CASES = [c for c in MANIFEST["cases"] if c["net"] == "slim"]
TOL = 1e-5  # relative to max |reference|


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """slim.caffemodel and slim_v1.caffemodel converted by util/extract_params.py."""
    out = {}
    for name in ("slim", "slim_v1"):
        d = tmp_path_factory.mktemp(name)
        assert extract_params.main([os.path.join(FIXTURES, f"{name}.caffemodel"), "--output_dir", str(d)]) == 0
        assert os.path.exists(d / "deeplab_lfov.ckpt.index") and os.path.exists(d / "net_skeleton.json")
        out[name] = build_model(load_weights(str(d / "deeplab_lfov.ckpt")))
    return out


def _check_case(model, case, blobs=("fc8", "pool1", "pool5a")):
    ref = np.load(os.path.join(FIXTURES, case["file"]))
    endpoints = {}
    model(tf.constant(case_input(case)), endpoints=endpoints)
    for blob in blobs:
        key = f"{blob}_nchw"
        if key not in ref.files:
            continue
        layer = "fc8_voc12" if blob == "fc8" else blob
        got = endpoints[layer].numpy().transpose(0, 3, 1, 2)
        want = ref[key]
        assert got.shape == want.shape, (blob, got.shape, want.shape)
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < TOL, (case["file"], blob, err)
    for layer, shape in case["blob_shapes"].items():
        if layer in endpoints:
            assert list(endpoints[layer].numpy().transpose(0, 3, 1, 2).shape) == shape, layer


@pytest.mark.parametrize("case", SLIM_CASES, ids=[c["file"] for c in SLIM_CASES])
@pytest.mark.parametrize("source", ["slim", "slim_v1"])
def test_slim_matches_caffe(converted, case, source):
    _check_case(converted[source], case)


def test_input_recipe_reproduces_stored_inputs():
    for case in SLIM_CASES:
        data = np.load(os.path.join(FIXTURES, case["file"]))
        if "input_nchw" in data.files:
            h, w = case["input_hw"]
            regen = np.random.RandomState(case["seed"]).uniform(-120, 140, size=(1, 3, h, w)).astype(np.float32)
            np.testing.assert_array_equal(regen, data["input_nchw"])


def test_recipe_reproduces_slim_caffemodel():
    """The weight recipe regenerates slim.caffemodel exactly, so it may stand in for full.caffemodel."""
    recipe = recipe_weights_tf("slim")
    stored = load_weights(os.path.join(FIXTURES, "slim.caffemodel"))
    assert set(recipe) == set(stored)
    for name in recipe:
        np.testing.assert_array_equal(recipe[name], stored[name])


def test_full_width_net_matches_caffe():
    """The published widths (20.5M parameters), weights from the recipe, at 321x321."""
    model = build_model(recipe_weights_tf("full"))
    assert model.count_params() == 20_505_429
    case = next(c for c in MANIFEST["cases"] if c["net"] == "full")
    _check_case(model, case)


def test_even_sizes_differ_from_tf_same():
    # 64x64: Caffe gives 9x9 logits where TF 'SAME' pooling would give 8x8.
    assert logits_size(64, 64) == (9, 9)
    assert logits_size(321, 321) == (41, 41)
    assert logits_size(513, 513) == (65, 65)
    for case in MANIFEST["cases"]:
        assert list(logits_size(*case["input_hw"])) == case["fc8_shape"][2:]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8, 9, 64, 97, 320, 321])
def test_pool_output_size_matches_caffe_formula(size):
    for stride in (1, 2):
        out = caffe_pool_output_size(size, 3, stride, 1)
        # Independent statement of Caffe's rule: ceil mode, last window starts inside the input.
        expect = -(-(size + 2 - 3) // stride) + 1
        if (expect - 1) * stride >= size + 1:
            expect -= 1
        assert out == expect


def _numpy_caffe_pool(x, kernel, stride, pad, mode):
    """Caffe's pooling loops, transcribed from pooling_layer.cpp (one channel, NHWC batch of 1)."""
    h, w = x.shape[1:3]
    oh, ow = caffe_pool_output_size(h, kernel, stride, pad), caffe_pool_output_size(w, kernel, stride, pad)
    out = np.zeros((1, oh, ow, x.shape[3]), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * stride - pad, j * stride - pad
            he, we = min(hs + kernel, h + pad), min(ws + kernel, w + pad)
            area = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[0, hs:he, ws:we]
            out[0, i, j] = window.max(axis=(0, 1)) if mode == "max" else window.sum(axis=(0, 1)) / area
    return out


@pytest.mark.parametrize("hw", [(6, 7), (8, 8), (9, 5), (2, 3)])
@pytest.mark.parametrize("stride", [1, 2])
def test_pooling_matches_caffe_loops(hw, stride):
    x = np.random.RandomState(0).normal(size=(1,) + hw + (2,)).astype(np.float32)
    got_max = caffe_max_pool(tf.constant(x), 3, stride, 1).numpy()
    got_avg = caffe_avg_pool(tf.constant(x), 3, stride, 1).numpy()
    np.testing.assert_allclose(got_max, _numpy_caffe_pool(x, 3, stride, 1, "max"), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_avg, _numpy_caffe_pool(x, 3, stride, 1, "ave"), rtol=1e-5, atol=1e-6)


def test_average_pool_divides_by_nine_at_corners():
    x = tf.ones([1, 4, 4, 1])
    y = caffe_avg_pool(x, 3, 1, 1).numpy()[0, :, :, 0]
    assert y[0, 0] == pytest.approx(4 / 9) and y[0, 1] == pytest.approx(6 / 9) and y[1, 1] == pytest.approx(1)


def test_unknown_spatial_size_gives_the_same_result():
    """The compiled, any-size path (dynamic padding) equals the static one, odd and even sizes."""
    model = DeepLabLargeFOV(width_multiplier=0.125, seed=3)
    fn = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    for hw in [(64, 64), (33, 50)]:
        x = tf.random.stateless_normal((1,) + hw + (3,), seed=(1, 2)) * 50
        np.testing.assert_allclose(fn(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-4)


def test_predictions_have_input_size_and_gradients_reach_every_variable():
    model = DeepLabLargeFOV(num_classes=5, width_multiplier=0.125, seed=0)
    x = tf.random.stateless_normal((2, 50, 37, 3), seed=(0, 1)) * 50
    assert model.predict_labels(x).shape == (2, 50, 37)
    probs = model.predict_probabilities(x).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True))
    grads = tape.gradient(loss, list(model.named_variables().values()))
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_layer_table_is_data():
    table = layer_table(num_classes=5, width_multiplier=0.125)
    convs = [l for l in table if l.kind == "conv"]
    assert [l.name for l in convs][-3:] == ["fc6", "fc7", "fc8_voc12"]
    assert [l.filters for l in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64, 128, 128, 5]
    assert [l.dilation for l in convs if l.name.startswith("conv5")] == [2, 2, 2]
    assert next(l for l in convs if l.name == "fc6").dilation == 12
    with pytest.raises(ValueError):
        layer_table(num_classes=0)


@pytest.mark.parametrize("rate,size", [(2, 13), (12, 41), (12, 10)])
def test_atrous_by_taps_equals_the_dilated_convolution_and_its_gradient(rate, size):
    """The training path of CPUs without a dilated backward kernel computes the same convolution."""
    from deeplab_lfov.model.ops import _atrous_by_taps
    rng = np.random.RandomState(rate)
    x = tf.constant(rng.normal(size=(2, size, size + 3, 5)), tf.float32)
    w = tf.constant(rng.normal(size=(3, 3, 5, 4)), tf.float32)
    native = tf.nn.conv2d(x, w, 1, "SAME", dilations=rate)
    np.testing.assert_allclose(_atrous_by_taps(x, w, rate).numpy(), native.numpy(), rtol=1e-5, atol=1e-5)
    grads = []
    for fn in (_atrous_by_taps, lambda a, b, r: tf.nn.convolution(a, b, padding="SAME", dilations=r)):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = tf.reduce_sum(fn(x, w, rate) * native)
        grads.append(tape.gradient(y, [x, w]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)
