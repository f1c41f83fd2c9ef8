"""The DeepLab-v2 family (ASPP-S, ASPP-L, ResNet-101 with MSC) against the independent numpy reference.

Random caffemodel blobs with the released layer names (``caffe_v2``) go through ``caffe_import`` into the
TensorFlow nets; logits and intermediate tops must equal ``caffe_v2.reference_forward`` (Caffe's
semantics written out in numpy) to 1e-4 of the largest logit.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

import caffe_v2 as cv
from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.model import (
    MODELS,
    MSC,
    DeepLab,
    DeepLabLargeFOV,
    build_net,
    caffe_import,
    conv_flops,
    describe_weights,
    layer_table,
)
from deeplab_lfov.model.deeplab_layers import Layer, table_shapes
from deeplab_lfov.model.deeplab_presets import from_tf1_names, net_tables
from deeplab_lfov.model.deeplab_segmenter import msc_factors
from deeplab_lfov.model.ops import atrous_conv2d

TOL = 1e-4  # relative to max |reference logit|
WIDTH = 1 / 16
SIZES = [(33, 33), (40, 48), (9, 9)]


def _image(hw, seed=1):
    return np.random.RandomState(seed).uniform(-120, 140, size=(1, 3) + tuple(hw))


def _nhwc(x):
    return tf.constant(np.asarray(x).transpose(0, 2, 3, 1), tf.float32)


def _assert_close(got, want, what=""):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64).transpose(0, 2, 3, 1)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < TOL, (what, err)


def assign_weights(net, weights):
    """Every variable of ``net`` from ``weights``, names and shapes checked (no extra names either)."""
    variables = net.named_variables()
    assert variables.keys() == weights.keys(), set(variables) ^ set(weights)
    for name, var in variables.items():
        assert tuple(var.shape) == tuple(np.shape(weights[name])), name
        var.assign(weights[name])


def _blobs(name, width=WIDTH, classes=21, seed=0):
    if name == "resnet101":
        return cv.resnet101_blobs(width, classes, seed)
    return cv.aspp_vgg16_blobs(name, width, classes, seed)


@pytest.fixture(scope="module")
def nets():
    """A reduced-width net of each v2 preset with random Caffe blobs loaded (ResNet-101 single-scale)."""
    out = {}
    for name in ("aspp-s", "aspp-l", "resnet101"):
        blobs = _blobs(name)
        net = build_net(name, 21, width_multiplier=WIDTH, msc=False)
        assign_weights(net, caffe_import.caffe_to_tf_weights(blobs))
        out[name] = (net, blobs)
    return out


# ----------------------------------------------------------------------------- tables and presets
def test_presets_name_the_papers_nets():
    assert set(MODELS) == {"largefov", "aspp-s", "aspp-l", "resnet101"}
    assert [MODELS[n].msc for n in MODELS] == [False, False, False, True]
    assert MODELS["aspp-s"].rates == (2, 4, 8, 12) and MODELS["aspp-l"].rates == MODELS["resnet101"].rates == (
        6, 12, 18, 24)
    largefov = build_net("largefov", 5, width_multiplier=0.125)
    assert type(largefov) is DeepLabLargeFOV and largefov.table == layer_table(5, 0.125)
    for name, classifiers in [("largefov", ("fc8_voc12",)), ("aspp-s", tuple(f"fc8_voc12_{i}" for i in range(1, 5))),
                              ("resnet101", tuple(f"fc1_voc12_c{i}" for i in range(4)))]:
        net = build_net(name, 3, width_multiplier=WIDTH)
        assert net.model_name == name and net.num_classes == 3 and net.classifier_layers == classifiers
        assert net.msc == MODELS[name].msc and isinstance(net, MSC) == net.msc
        assert set(net.float32_layers) >= set(classifiers)
    assert build_net("resnet101", msc=False, width_multiplier=WIDTH).msc is False
    assert build_net("aspp-l", msc=True, width_multiplier=WIDTH).msc is True
    with pytest.raises(ValueError, match="unknown model"):
        build_net("aspp-m")


def test_tables_are_data():
    backbone, head = net_tables("aspp-s", 5, width_multiplier=0.125)
    assert [l.name for l in backbone][-2:] == ["conv5_3", "pool5"] and "pool5a" not in [l.name for l in backbone]
    assert [l.dilation for l in head if l.name.startswith("fc6")] == [2, 4, 8, 12]
    assert {l.bottoms for l in head if l.name.startswith("fc6")} == {("pool5",)}
    assert head[-1] == Layer("fc8_voc12", "sum", relu=False, bottoms=tuple(f"fc8_voc12_{i}" for i in range(1, 5)))
    backbone, head = net_tables("resnet101")
    convs = [l for l in backbone if l.kind == "conv"]
    assert len(convs) == 104 and len([l for l in backbone if l.kind == "sum"]) == 33
    assert convs[0] == Layer("conv1", "conv", filters=64, kernel=7, stride=2, pad=3, bias=False,
                             batch_norm="bn_conv1", scale="scale_conv1")
    assert {l.name for l in convs if l.stride != 1} == {"conv1", "res3a_branch1", "res3a_branch2a"}
    assert {l.dilation for l in convs if l.name.startswith("res4") and l.name.endswith("2b")} == {2}
    assert {l.dilation for l in convs if l.name.startswith("res5") and l.name.endswith("2b")} == {4}
    assert {l.name for l in convs if l.name.endswith("branch1")} == {f"res{s}a_branch1" for s in range(2, 6)}
    res4b22 = next(l for l in backbone if l.name == "res4b22")
    assert res4b22.bottoms == ("res4b21", "res4b22_branch2c") and res4b22.relu
    assert next(l for l in backbone if l.name == "res4b22_branch2a").bottoms == ("res4b21",)
    assert [l.dilation for l in head[:4]] == [6, 12, 18, 24] and all(l.bias and not l.relu for l in head[:4])
    shapes = table_shapes(backbone + head, 321, 321)
    assert shapes["conv1"][:2] == (161, 161) and shapes["pool1"][:2] == (81, 81) and shapes["res3a"][:2] == (41, 41)
    assert shapes["res5c"] == (41, 41, 2048) and shapes["fc1_voc12"] == (41, 41, 21)
    assert table_shapes(backbone + head, 513, 513)["fc1_voc12"][:2] == (65, 65)
    with pytest.raises(ValueError, match="reads 'nowhere'"):
        table_shapes((Layer("x", "sum", bottoms=("data", "nowhere")),))
    with pytest.raises(ValueError, match="one shape"):
        DeepLab((Layer("a", "conv", filters=2, pad=1), Layer("b", "conv", filters=3, pad=1)),
                (Layer("s", "sum", bottoms=("a", "b")),))


# ----------------------------------------------------------------------------- numerics against the reference
@pytest.mark.parametrize("hw", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("name", ["aspp-s", "aspp-l"])
def test_vgg_aspp_matches_reference(nets, name, hw):
    net, blobs = nets[name]
    x = _image(hw)
    ref = cv.reference_forward(name, blobs, x)
    endpoints = {}
    _assert_close(net(_nhwc(x), endpoints=endpoints), ref["fc8_voc12"], name)
    for top in ("pool3", "pool5", "fc6_2", "fc8_voc12_4"):
        _assert_close(endpoints[top], ref[top], top)


@pytest.mark.parametrize("hw", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_resnet101_matches_reference(nets, hw):
    """BatchNorm + Scale folding, the residual sums, the strided and atrous convolutions, top by top."""
    net, blobs = nets["resnet101"]
    x = _image(hw)
    ref = cv.reference_forward("resnet101", blobs, x)
    endpoints = {}
    _assert_close(net(_nhwc(x), endpoints=endpoints), ref["fc1_voc12"], "fc1_voc12")
    for top in ("conv1", "pool1", "res2a_branch1", "res2a", "res3a_branch2a", "res3a", "res4a", "res4b22_branch2b",
                "res5c", "fc1_voc12_c3"):
        want = ref[top].transpose(0, 2, 3, 1)
        got = endpoints[top].numpy()
        assert got.shape == want.shape, top
        assert np.abs(got - want).max() <= TOL * np.abs(want).max(), top


def _msc_reference(blobs, x):
    """MSC from single-scale reference passes: Interp'd inputs, towers, Interp to the scale-1 size, max."""
    full = cv.reference_forward("resnet101", blobs, x)["fc1_voc12"]
    h, w = x.shape[2:]
    parts = [full]
    for shrink, zoom in ((4, 3), (2, 1)):
        scaled = cv.interp(x, cv.interp_out_size(h, shrink, zoom), cv.interp_out_size(w, shrink, zoom))
        tower = cv.reference_forward("resnet101", blobs, scaled)["fc1_voc12"]
        parts.append(cv.interp(tower, *full.shape[2:]))
    return np.max(parts, axis=0), parts


def test_msc_matches_reference(nets):
    base, blobs = nets["resnet101"]
    net = MSC(base)
    x = _image((33, 33), seed=2)
    ref = cv.reference_forward("resnet101", blobs, x, msc=True)  # Caffe's own sizes line up at 33
    endpoints = {}
    _assert_close(net(_nhwc(x), endpoints=endpoints), ref["fc_fusion"], "fc_fusion")
    for top in ("data_res05", "data_res075", "res5c_res05", "fc1_voc12_res075", "fc1_voc12_res05_interp",
                "fc1_voc12_res075_interp", "fc1_voc12"):
        _assert_close(endpoints[top], ref[top], top)
    # The max really picks from every scale.
    picks = np.argmax(np.stack([ref["fc1_voc12"], ref["fc1_voc12_res075_interp"], ref["fc1_voc12_res05_interp"]]), 0)
    assert set(np.unique(picks)) == {0, 1, 2}
    # Sizes where Caffe's factors do not land on the scale-1 size: resized to it anyway.
    for hw in ((40, 48), (9, 9)):
        x = _image(hw, seed=3)
        fused, parts = _msc_reference(blobs, x)
        with pytest.raises(ValueError, match="Eltwise"):
            cv.reference_forward("resnet101", blobs, x, msc=True)
        logits = net.loss_logits(_nhwc(x), training=False)
        _assert_close(logits[0], fused, f"fused {hw}")
        _assert_close(logits[1], parts[0], f"scale 1 {hw}")
        _assert_close(logits[2], parts[1], f"scale 0.75 {hw}")


def test_loss_logits_sizes_and_names(nets):
    net = MSC(nets["resnet101"][0])
    assert net.loss_names() == ["fc_fusion", "fc1_voc12", "fc1_voc12_res075_interp", "fc1_voc12_res05"]
    assert net.loss_logits_sizes(321, 321) == [(41, 41)] * 3 + [(21, 21)]
    assert net.loss_logits_sizes(513, 513) == [(65, 65)] * 3 + [(33, 33)]
    assert net.scale_sizes(321, 321) == [(241, 241), (161, 161)] and net.scale_sizes(513, 513) == [(385, 385), (257, 257)]
    assert msc_factors(0.5) == (2, 1) and msc_factors(0.75) == (4, 3)
    with pytest.raises(ValueError):
        msc_factors(1.0)
    for hw in ((33, 33), (40, 48)):
        logits = net.loss_logits(tf.zeros((2,) + hw + (3,)), training=False)
        assert [tuple(l.shape[1:3]) for l in logits] == net.loss_logits_sizes(*hw)
        assert all(l.shape[0] == 2 and l.shape[3] == 21 for l in logits)
    assert net.logits_size(40, 48) == (6, 7) and tuple(net(tf.zeros([1, 40, 48, 3])).shape) == (1, 6, 7, 21)


def test_msc_delegates_to_its_base(nets):
    base = nets["resnet101"][0]
    net = MSC(base)
    assert net.model_name == "resnet101" and net.num_classes == 21 and net.table is base.table
    assert net.convs is base.convs and net.conv1 is base.conv1 and net.bn_conv1.gamma is base.bn_conv1.gamma
    assert net.named_variables().keys() == base.named_variables().keys() and net.count_params() == base.count_params()
    assert {id(v) for v in net.trainable_variables} == {id(v) for v in base.trainable_variables}
    with pytest.raises(AttributeError):
        net.no_such_layer  # noqa: B018
    x = tf.constant(_image((25, 30)).transpose(0, 2, 3, 1), tf.float32)
    assert net.predict_labels(x).shape == (1, 25, 30)
    np.testing.assert_allclose(net.predict_probabilities(x).numpy().sum(-1), 1.0, rtol=1e-5)


def test_named_variables_and_frozen_batch_norms(nets):
    net = nets["resnet101"][0]
    names = list(net.named_variables())
    assert names[:6] == ["conv1/w", "bn_conv1/moving_mean", "bn_conv1/moving_variance", "bn_conv1/gamma",
                         "bn_conv1/beta", "res2a_branch1/w"]
    assert names[-2:] == ["fc1_voc12_c3/w", "fc1_voc12_c3/b"] and len(names) == 108 + 4 + 104 * 4
    trainable = {id(v) for v in net.trainable_variables}
    assert trainable == {id(v) for v in net.named_variables(trainable_only=True).values()}
    assert not any(id(v) in trainable for k, v in net.named_variables().items() if k.startswith("bn"))
    # The affine map is Caffe's BatchNorm then Scale.
    bn = net.batch_norms["bn3a_branch2b"]
    x = tf.random.stateless_normal((1, 2, 2, bn.gamma.shape[0]), seed=(0, 1))
    m, v, g, b = (t.numpy() for t in (bn.moving_mean, bn.moving_variance, bn.gamma, bn.beta))
    np.testing.assert_allclose(bn(x).numpy(), (x.numpy() - m) / np.sqrt(v + 1e-5) * g + b, rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_convolutions_and_not_the_batch_norms(monkeypatch):
    """Under MSC, through all four losses; the same on CPUs without a dilated backward kernel."""
    from deeplab_lfov.model import ops
    net = build_net("resnet101", 3, width_multiplier=1 / 32, seed=1)  # MSC
    x = tf.random.stateless_normal((1, 25, 25, 3), seed=(0, 1)) * 50
    everything = net.named_variables()

    def gradients():
        with tf.GradientTape() as tape:
            losses = net.loss_logits(x, training=True)
            loss = sum(tf.reduce_mean(l ** 2) for l in losses)
        return dict(zip(everything, tape.gradient(loss, list(everything.values()))))

    grads = gradients()
    for name, grad in grads.items():
        if name.startswith("bn"):
            assert grad is None, name
        else:
            assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 0, name
    monkeypatch.setattr(ops, "_NATIVE_ATROUS_GRADIENTS", False)  # space-to-batch (rate 2) and taps (4 ... 24)
    for name, grad in gradients().items():
        if grad is not None:
            scale = np.abs(grads[name].numpy()).max()
            np.testing.assert_allclose(grad.numpy(), grads[name].numpy(), rtol=0, atol=1e-5 * scale, err_msg=name)
    # ASPP: dropout only in training.
    aspp = build_net("aspp-l", 3, width_multiplier=1 / 32)
    y = tf.random.stateless_normal((1, 17, 17, 3), seed=(0, 2)) * 50
    np.testing.assert_array_equal(aspp(y).numpy(), aspp(y).numpy())
    assert not np.allclose(aspp(y, training=True).numpy(), aspp(y).numpy())


def test_any_input_size_in_a_compiled_function():
    """MSC's sizes computed from a dynamic input shape equal the static ones (odd and even sizes)."""
    net = build_net("aspp-s", 4, width_multiplier=1 / 32, msc=True, seed=2)
    fn = tf.function(lambda x: net.loss_logits(x, training=False),
                     input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    for hw in ((33, 33), (40, 48)):
        x = tf.random.stateless_normal((1,) + hw + (3,), seed=(1, 2)) * 50
        for got, want in zip(fn(x), net.loss_logits(x, training=False)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_bfloat16_keeps_the_head_in_float32(nets):
    base, blobs = nets["resnet101"]
    half = build_net("resnet101", 21, width_multiplier=WIDTH, msc=False, compute_dtype=tf.bfloat16)
    assign_weights(half, {k: v.numpy() for k, v in base.named_variables().items()})
    x = _nhwc(_image((33, 33)))
    endpoints = {}
    got = half(x, endpoints=endpoints)
    assert endpoints["res5c"].dtype == tf.bfloat16 and endpoints["fc1_voc12_c0"].dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in half.named_variables().values())
    want = base(x).numpy()
    assert np.abs(got.numpy() - want).max() < 0.1 * np.abs(want).max()


def test_strided_convolution_pads_as_caffe():
    rng = np.random.RandomState(0)
    w = rng.normal(size=(2, 3, 7, 7))
    for hw in ((10, 12), (11, 9), (2, 3)):
        x = rng.normal(size=(1, 3) + hw)
        got = atrous_conv2d(_nhwc(x), tf.constant(w.transpose(2, 3, 1, 0), tf.float32), 1, stride=2, pad=3)
        _assert_close(got, cv.conv2d(x, w, None, stride=2, pad=3), f"conv1 {hw}")
    x = rng.normal(size=(1, 3, 8, 7))
    one = rng.normal(size=(4, 3, 1, 1))
    got = atrous_conv2d(_nhwc(x), tf.constant(one.transpose(2, 3, 1, 0), tf.float32), 1, stride=2, pad=0)
    _assert_close(got, cv.conv2d(x, one, None, stride=2), "1x1/2")
    with pytest.raises(ValueError, match="strided and dilated"):
        atrous_conv2d(_nhwc(x), tf.zeros([3, 3, 3, 1]), 2, stride=2)


# ----------------------------------------------------------------------------- caffemodels and TF1 names
def test_caffemodel_with_msc_copies_converts(tmp_path):
    blobs = cv.resnet101_blobs(1 / 32, 5, seed=3, msc_copies=True)
    path = tmp_path / "msc.caffemodel"
    path.write_bytes(cv.caffemodel_bytes(blobs))
    types = {}
    caffe_import.read_caffemodel(str(path), types=types)
    assert types["bn_conv1"] == "BatchNorm" and types["scale_conv1"] == "Scale" and types["conv1"] == "Convolution"
    weights = caffe_import.caffemodel_weights(str(path))
    single = caffe_import.caffe_to_tf_weights(cv.resnet101_blobs(1 / 32, 5, seed=3))
    assert weights.keys() == single.keys() and not any("res0" in k for k in weights)
    for key in weights:
        np.testing.assert_array_equal(weights[key], single[key])
    net = build_net("resnet101", 5, width_multiplier=1 / 32)
    assign_weights(net, weights)  # every variable present, every shape right
    # A tower copy that differs from its original is refused, naming the file and the layer.
    bad = dict(blobs)
    bad["res4b7_branch2b_res075"] = [blobs["res4b7_branch2b"][0] + 1]
    path.write_bytes(cv.caffemodel_bytes(bad))
    with pytest.raises(DeepLabError) as e:
        caffe_import.caffemodel_weights(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "'res4b7_branch2b_res075'" in message
    orphan = {"fc1_voc12_res05_c0": blobs["fc1_voc12_c0"], "conv1": blobs["conv1"]}
    with pytest.raises(DeepLabError, match="'fc1_voc12_res05_c0'.*'fc1_voc12_c0'"):
        caffe_import.caffe_to_tf_weights(orphan, source="x.caffemodel")


def test_batch_norm_and_scale_blobs_map_to_the_four_tensors():
    mean, var = np.array([1.0, -2.0], np.float32), np.array([4.0, 0.5], np.float32)
    layers = {"bn_conv1": [mean, var, np.array([2.0], np.float32)], "scale_conv1": [np.ones(2, np.float32) * 3,
                                                                                    np.ones(2, np.float32)],
              "bn2a_branch1": [mean, var, np.zeros(1, np.float32)], "scale2a_branch1": [np.ones(2, np.float32)]}
    out = caffe_import.caffe_to_tf_weights(layers)
    np.testing.assert_array_equal(out["bn_conv1/moving_mean"], mean / 2)
    np.testing.assert_array_equal(out["bn_conv1/moving_variance"], var / 2)
    np.testing.assert_array_equal(out["bn_conv1/gamma"], [3, 3])
    np.testing.assert_array_equal(out["bn2a_branch1/moving_mean"], [0, 0])  # factor 0: Caffe zeroes the statistics
    np.testing.assert_array_equal(out["bn2a_branch1/beta"], [0, 0])  # a Scale without bias_term
    # V1-style 4-d vectors read the same; a matrix is not a BatchNorm blob.
    out = caffe_import.caffe_to_tf_weights({"bn_x": [mean.reshape(1, 2, 1, 1), var.reshape(1, 1, 1, 2),
                                                     np.ones((1, 1, 1, 1), np.float32)]})
    np.testing.assert_array_equal(out["bn_x/moving_variance"], var)
    with pytest.raises(DeepLabError, match="f.caffemodel: layer 'bn_y'"):
        caffe_import.caffe_to_tf_weights({"bn_y": [np.ones((2, 2), np.float32)] * 3}, types={"bn_y": "BatchNorm"},
                                         source="f.caffemodel")


def test_drsleep_tf1_names_load_into_the_same_net(nets):
    net, blobs = nets["resnet101"]
    tf1 = from_tf1_names(cv.drsleep_tf1_weights(blobs))
    ours = caffe_import.caffe_to_tf_weights(blobs)
    assert tf1.keys() == ours.keys()
    for key in ours:
        np.testing.assert_allclose(tf1[key], ours[key], rtol=1e-6)


# ----------------------------------------------------------------------------- recognising weights
@pytest.mark.parametrize("name", ["largefov", "aspp-s", "aspp-l", "resnet101"])
def test_describe_weights_rebuilds_the_net(name):
    net = build_net(name, 7, width_multiplier=1 / 16 if name == "resnet101" else 0.125, msc=False)
    shapes = {k: tuple(v.shape) for k, v in net.named_variables().items()}
    guess, widths, classes = describe_weights(shapes)
    assert guess == ("aspp-l" if name == "aspp-s" else name) and classes == 7  # ASPP-S and -L look alike
    rebuilt = build_net(guess, classes, widths=widths, msc=False)
    assert {k: tuple(v.shape) for k, v in rebuilt.named_variables().items()} == shapes
    without = {k: v for k, v in shapes.items() if not re.match(r"fc8|fc1_voc12", k)}
    assert describe_weights(without) == (guess, widths, None)


def test_describe_weights_refuses_strangers():
    with pytest.raises(DeepLabError, match="lenet.caffemodel: holds no DeepLab-LargeFOV layers"):
        describe_weights({"conv1/w": (5, 5, 1, 20), "ip1/w": (800, 500)}, source="lenet.caffemodel")
    with pytest.raises(DeepLabError, match="disagree"):
        describe_weights({"fc6_1/w": (3, 3, 8, 16), "fc8_voc12_1/w": (1, 1, 16, 21), "fc8_voc12_2/w": (1, 1, 16, 5)})
    assert describe_weights({"conv1_1/w": (3, 3, 3, 8), "fc8_pascal/w": (1, 1, 16, 4)})[::2] == ("largefov", 4)


# ----------------------------------------------------------------------------- FLOPs and the full-width net
def test_flops_per_preset():
    largefov = DeepLabLargeFOV(seed=None)
    assert abs(conv_flops(largefov, 321, 321) / 1e9 - 101.9) < 0.1  # unchanged by the family
    base = build_net("aspp-s", 21, width_multiplier=0.25, msc=False)
    msc = MSC(base)
    assert conv_flops(msc, 321, 321) == sum(conv_flops(base, s, s) for s in (321, 241, 161))
    backbone, head = net_tables("aspp-l")
    assert sum(1 for layer in backbone + head if layer.kind == "conv") == 13 + 12


def test_full_width_resnet101():
    """The published widths (44.15M variables, 43.94M trained), random Caffe blobs, against the reference."""
    net = build_net("resnet101", 21, msc=False, seed=None)
    assert net.count_params() == 44_153_876 and net.count_params(trainable_only=True) == 43_943_188
    assert sum(int(np.prod(v.shape)) for v in net.trainable_variables) == 43_943_188
    blobs = cv.resnet101_blobs(1.0, 21, seed=4)
    assign_weights(net, caffe_import.caffe_to_tf_weights(blobs))
    print(f"ResNet-101 at full width: {net.count_params():,} variables, {net.count_params(trainable_only=True):,} "
          f"trainable")
    x = _image((64, 64), seed=5)  # even: conv1's Caffe padding (3 and 3) differs from TF's SAME (2 and 3)
    _assert_close(net(_nhwc(x)), cv.reference_forward("resnet101", blobs, x)["fc1_voc12"], "full width")
    assert conv_flops(MSC(net), 513, 513) == sum(conv_flops(net, s, s) for s in (513, 385, 257))
