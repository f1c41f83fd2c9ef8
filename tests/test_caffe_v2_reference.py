"""Checks of the DeepLab-v2 test helper (tests/caffe_v2.py): its layers, sizes, blob sets and caffemodels."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import signal

import caffe_v2 as cv
from deeplab_lfov.model.caffe_import import _NetParameter, read_caffemodel


def _scipy_conv(x, w, b, stride, pad, dilation):
    """Caffe convolution from scipy.signal.correlate over a zero-padded input and a dilated kernel."""
    o, c, kh, kw = w.shape
    xp = np.pad(x[0], ((0, 0), (pad, pad), (pad, pad)))
    wd = np.zeros((o, c, dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))
    wd[:, :, ::dilation, ::dilation] = w
    out = np.stack([signal.correlate(xp, wd[i], mode="valid")[0] for i in range(o)])
    return (out[:, ::stride, ::stride] + b[:, None, None])[None]


@pytest.mark.parametrize("stride,pad,dilation", [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 3, 3), (3, 1, 2)])
def test_conv2d_equals_scipy_correlate(stride, pad, dilation):
    rng = np.random.RandomState(stride * 100 + pad * 10 + dilation)
    x = rng.normal(size=(1, 3, 11, 14))
    w = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=(4,))
    got = cv.conv2d(x, w, b, stride=stride, pad=pad, dilation=dilation)
    want = _scipy_conv(x, w, b, stride, pad, dilation)
    assert got.shape == want.shape == (1, 4, cv.conv_out_size(11, 3, stride, pad, dilation),
                                       cv.conv_out_size(14, 3, stride, pad, dilation))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_conv2d_7x7_stride2_like_resnet_conv1():
    rng = np.random.RandomState(7)
    x, w, b = rng.normal(size=(1, 3, 33, 32)), rng.normal(size=(2, 3, 7, 7)), np.zeros(2)
    got = cv.conv2d(x, w, None, stride=2, pad=3)
    assert got.shape == (1, 2, 17, 16)
    np.testing.assert_allclose(got, _scipy_conv(x, w, b, 2, 3, 1), rtol=1e-10, atol=1e-10)


def test_pool_sizes_follow_caffe_ceil_mode():
    # Caffe: ceil((H + 2p - k) / s) + 1, minus one if the last window would start in the right padding.
    for h in range(1, 60):
        want = -(-(h + 2 - 3) // 2) + 1
        if (want - 1) * 2 >= h + 1:
            want -= 1
        assert cv.pool_out_size(h, 3, 2, 1) == want
        assert cv.pool_out_size(h, 3, 1, 1) == h          # pool4/pool5 of VGG keep the size
    # Odd and even sizes where ceil mode differs from floor mode and from TF's SAME padding:
    assert cv.pool_out_size(161, 3, 2, 1) == 81 == math.ceil(161 / 2)
    assert cv.pool_out_size(160, 3, 2, 1) == 81 != math.ceil(160 / 2)   # TF SAME would give 80
    assert cv.pool_out_size(5, 2, 2, 0) == 3 and cv.pool_out_size(4, 2, 2, 0) == 2
    # The clip rule: ceil((3 + 2 - 2) / 2) + 1 = 3, but the 3rd window would start in the right pad.
    assert cv.pool_out_size(3, 2, 2, 1) == 2 and cv.pool_out_size(2, 3, 2, 1) == 2


@pytest.mark.parametrize("h,w", [(9, 9), (10, 13), (1, 2)])
def test_max_pool_values_match_brute_force(h, w):
    x = np.random.RandomState(h * w).normal(size=(1, 2, h, w))
    got = cv.max_pool(x, 3, 2, 1)
    ho, wo = cv.pool_out_size(h, 3, 2, 1), cv.pool_out_size(w, 3, 2, 1)
    assert got.shape == (1, 2, ho, wo)
    xp = np.full((1, 2, h + 4, w + 4), -np.inf)
    xp[:, :, 1:1 + h, 1:1 + w] = x
    for i in range(ho):
        for j in range(wo):
            np.testing.assert_array_equal(got[:, :, i, j], xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3)))
    assert np.isfinite(got).all()


def test_batch_norm_and_scale_follow_caffe_formula():
    rng = np.random.RandomState(3)
    x = rng.normal(size=(2, 5, 3, 4))
    mean, var, factor = rng.normal(size=5), rng.uniform(0.1, 2.0, size=5), np.array([0.7])
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    got = cv.scale(cv.batch_norm(x, mean, var, factor), gamma, beta)
    m, v = (mean / 0.7)[None, :, None, None], (var / 0.7)[None, :, None, None]
    want = (x - m) / np.sqrt(v + 1e-5) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # eps matters for tiny variances; a zero factor zeroes the statistics (Caffe's special case).
    np.testing.assert_allclose(cv.batch_norm(x, mean, np.zeros(5), [1.0], eps=1e-3),
                               (x - mean[None, :, None, None]) / np.sqrt(1e-3))
    np.testing.assert_allclose(cv.batch_norm(x, mean, var, [0.0]), x / np.sqrt(1e-5))


def test_interp_sizes_and_values():
    assert cv.interp_out_size(321, shrink=8) == 41
    assert cv.interp_out_size(321, shrink=16) == 21
    assert cv.interp_out_size(321, shrink=2) == 161
    assert cv.interp_out_size(321, shrink=4, zoom=3) == 241
    assert cv.interp_out_size(31, shrink=3, zoom=4) == 41
    assert cv.interp_out_size(21, zoom=2) == 41
    assert cv.interp_out_size(41, zoom=8) == 321
    # A linear ramp is reproduced exactly by align-corners bilinear interpolation.
    yy, xx = np.meshgrid(np.arange(7.0), np.arange(9.0), indexing="ij")
    ramp = (3 * yy - 2 * xx + 1)[None, None]
    up = cv.interp(ramp, 13, 17)
    y2, x2 = np.meshgrid(np.arange(13) * 6 / 12, np.arange(17) * 8 / 16, indexing="ij")
    np.testing.assert_allclose(up[0, 0], 3 * y2 - 2 * x2 + 1, atol=1e-5)
    assert up[0, 0, 0, 0] == ramp[0, 0, 0, 0] and up[0, 0, -1, -1] == ramp[0, 0, -1, -1]
    # Shrinking a 321 label map by 8 (label_shrink) samples every 8th pixel exactly.
    labels = np.random.RandomState(0).randint(0, 21, size=(1, 1, 321, 321)).astype(np.float64)
    np.testing.assert_array_equal(cv.interp(labels, 41, 41), labels[:, :, ::8, ::8])
    # Same values as TensorFlow's align_corners resize (an independent implementation), float32 precision.
    x = np.random.RandomState(1).normal(size=(1, 2, 5, 6))
    tf_up = tf.compat.v1.image.resize_bilinear(x.transpose(0, 2, 3, 1).astype(np.float32), [9, 11], align_corners=True)
    np.testing.assert_allclose(cv.interp(x, 9, 11), tf_up.numpy().transpose(0, 3, 1, 2), atol=1e-5)


def test_resnet101_blob_set_names_counts_and_shapes():
    blobs = cv.resnet101_blobs(1 / 16, 21, seed=0)
    names = list(blobs)
    kinds = [cv.layer_type(n) for n in names]
    convs = [n for n, k in zip(names, kinds) if k == "Convolution"]
    # 1 + 33 blocks x 3 + 4 projection shortcuts = 104 backbone convs, plus the 4 ASPP branches.
    assert len(convs) == 108 and kinds.count("BatchNorm") == 104 and kinds.count("Scale") == 104
    # "101 layers": conv1 + 99 block convs + the classifier (shortcuts not counted, ASPP counted once).
    assert len([n for n in convs if not n.endswith("_branch1") and not n.startswith("fc1")]) + 1 == 101
    assert names[:7] == ["conv1", "bn_conv1", "scale_conv1", "res2a_branch1", "bn2a_branch1", "scale2a_branch1",
                         "res2a_branch2a"]
    assert names[-4:] == [f"fc1_voc12_c{i}" for i in range(4)]
    for present in ("res2c_branch2c", "res3b3_branch2a", "res4b22_branch2b", "bn4b22_branch2b", "scale5c_branch2c"):
        assert present in blobs
    for absent in ("res3b_branch2a", "res4b23_branch2a", "res4b_branch2a", "res5b1_branch2a", "res3b1_branch1"):
        assert absent not in blobs
    assert blobs["conv1"][0].shape == (4, 3, 7, 7) and len(blobs["conv1"]) == 1
    assert blobs["res2a_branch1"][0].shape == (16, 4, 1, 1)
    assert blobs["res5c_branch2c"][0].shape == (128, 32, 1, 1)
    assert [a.shape for a in blobs["fc1_voc12_c3"]] == [(21, 128, 3, 3), (21,)]
    for name, kind in zip(names, kinds):
        if kind == "BatchNorm":
            mean, var, factor = blobs[name]
            assert mean.shape == var.shape and factor.shape == (1,)
            assert (var > 0).all() and 0.5 <= factor[0] <= 2.0
        elif kind == "Scale":
            assert len(blobs[name]) == 2 and blobs[name][0].shape == blobs[name][1].shape
    msc = cv.resnet101_blobs(1 / 16, 21, seed=0, msc_copies=True)
    assert len(msc) == 948 and list(msc)[:len(names) - 4] == names[:-4]
    assert "bn_conv1_res05" in msc and "scale5c_branch2c_res075" in msc and "fc1_voc12_res075_c3" in msc
    np.testing.assert_array_equal(msc["res4b7_branch2b_res05"][0], blobs["res4b7_branch2b"][0])


def test_vgg16_aspp_blob_set():
    blobs = cv.aspp_vgg16_blobs("aspp-l", 1 / 16, 5, seed=1)
    assert len(blobs) == 13 + 4 * 3
    assert list(blobs)[13:16] == ["fc6_1", "fc7_1", "fc8_voc12_1"] and list(blobs)[-1] == "fc8_voc12_4"
    assert [a.shape for a in blobs["conv1_1"]] == [(4, 3, 3, 3), (4,)]
    assert [a.shape for a in blobs["fc6_3"]] == [(64, 32, 3, 3), (64,)]
    assert [a.shape for a in blobs["fc8_voc12_2"]] == [(5, 64, 1, 1), (5,)]
    assert "pool5a" not in blobs and "fc6" not in blobs
    with pytest.raises(ValueError, match="variant"):
        cv.aspp_vgg16_blobs("aspp-m")


def test_caffemodel_round_trips_through_project_reader(tmp_path):
    for blobs in (cv.resnet101_blobs(1 / 16, 21, seed=2, msc_copies=True), cv.aspp_vgg16_blobs("aspp-s", 1 / 16, 21, 2)):
        data = cv.caffemodel_bytes(blobs)
        path = tmp_path / "net.caffemodel"
        path.write_bytes(data)
        name, layers = read_caffemodel(str(path))
        assert name == "deeplab_v2" and list(layers) == list(blobs)
        for key, arrs in blobs.items():
            assert len(layers[key]) == len(arrs)
            for got, want in zip(layers[key], arrs):
                assert got.shape == want.shape
                np.testing.assert_array_equal(got, want)
        net = _NetParameter()
        net.ParseFromString(data)
        types = {layer.name: layer.type for layer in net.layer}
        assert {types[k] for k in blobs} <= {"Convolution", "BatchNorm", "Scale"}
        assert all(types[k] == cv.layer_type(k) for k in blobs)
    assert types["fc8_voc12_1"] == "Convolution"
    net = _NetParameter()
    net.ParseFromString(cv.caffemodel_bytes({"bn_x": [np.ones(2)] * 3}, {"bn_x": "BN"}))
    assert net.layer[0].type == "BN"


def test_output_strides():
    assert cv.resnet101_out_size(321) == 41 and cv.resnet101_out_size(513) == 65
    assert cv.vgg16_out_size(321) == 41 and cv.vgg16_out_size(513) == 65
    x = np.random.RandomState(4).uniform(-120, 140, size=(1, 3, 321, 321))
    out = cv.reference_forward("resnet101", cv.resnet101_blobs(1 / 32, 3, seed=4), x)
    assert out["conv1"].shape[2:] == (161, 161) and out["pool1"].shape[2:] == (81, 81)
    assert out["res2c"].shape[2:] == (81, 81) and out["res3a"].shape[2:] == (41, 41)
    assert out["res4b22"].shape == (1, 32, 41, 41) and out["res5c"].shape == (1, 64, 41, 41)
    assert out["fc1_voc12"].shape == (1, 3, 41, 41)
    vgg = cv.reference_forward("aspp-l", cv.aspp_vgg16_blobs("aspp-l", 1 / 32, 3, seed=4), x)
    assert [vgg[f"pool{i}"].shape[2] for i in range(1, 6)] == [161, 81, 41, 41, 41]
    assert vgg["fc8_voc12"].shape == (1, 3, 41, 41) and vgg["fc8_interp"].shape == (1, 3, 321, 321)


def test_forward_endpoints_are_consistent():
    rng = np.random.RandomState(5)
    blobs = cv.resnet101_blobs(1 / 16, 4, seed=5)
    x = rng.uniform(-120, 140, size=(1, 3, 40, 48))
    out = cv.reference_forward("resnet101", blobs, x)
    np.testing.assert_allclose(out["fc1_voc12"], sum(out[f"fc1_voc12_c{i}"] for i in range(4)))
    assert out["fc1_voc12"].shape == (1, 4, 6, 7)
    assert all(out[k].min() >= 0 for k in ("pool1", "res2c", "res3b3", "res4b22", "res5c"))
    assert 0 < (out["res5c"] > 0).mean() < 1 and np.isfinite(out["fc1_voc12"]).all()
    # eps is honoured, and a 9x9 input still runs.
    other = cv.reference_forward("resnet101", blobs, x, bn_eps=1e-3)
    assert not np.allclose(other["fc1_voc12"], out["fc1_voc12"], rtol=1e-9, atol=0)
    assert cv.reference_forward("resnet101", blobs, x[:, :, :9, :9])["fc1_voc12"].shape == (1, 4, 2, 2)
    vblobs = cv.aspp_vgg16_blobs("aspp-l", 1 / 16, 4, seed=5)
    large = cv.reference_forward("aspp-l", vblobs, x)
    small = cv.reference_forward("aspp-s", vblobs, x)
    np.testing.assert_array_equal(large["pool5"], small["pool5"])
    assert not np.allclose(large["fc8_voc12_1"], small["fc8_voc12_1"])
    np.testing.assert_allclose(large["fc8_voc12"], sum(large[f"fc8_voc12_{i}"] for i in range(1, 5)))
    with pytest.raises(ValueError, match="multi-scale"):
        cv.reference_forward("aspp-l", vblobs, x, msc=True)


def test_resnet_strides_dilations_and_shortcuts_match_the_prototxt():
    """Recompute single layers from their bottoms with scipy: res3a 1x1s stride 2, res4 dilation 2, res5 dilation 4."""
    blobs = cv.resnet101_blobs(1 / 16, 3, seed=9)
    x = np.random.RandomState(9).uniform(-120, 140, size=(1, 3, 97, 97))   # res5 maps of 13x13 show rate 4
    out = cv.reference_forward("resnet101", blobs, x)

    def conv_bn(bottom, conv, bn, sc, stride, pad, dilation, relu):
        w = blobs[conv][0].astype(np.float64)
        y = _scipy_conv(bottom, w, np.zeros(w.shape[0]), stride, pad, dilation)
        m, v, f = (a.astype(np.float64) for a in blobs[bn])
        g, b = (a.astype(np.float64) for a in blobs[sc])
        y = (y - m[None, :, None, None] / f[0]) / np.sqrt(v[None, :, None, None] / f[0] + 1e-5)
        y = y * g[None, :, None, None] + b[None, :, None, None]
        return np.maximum(y, 0) if relu else y

    checks = [  # top, bottom, stride, pad, dilation, relu
        ("res3a_branch1", "res2c", 2, 0, 1, False), ("res3a_branch2a", "res2c", 2, 0, 1, True),
        ("res3a_branch2b", "res3a_branch2a", 1, 1, 1, True), ("res4a_branch1", "res3b3", 1, 0, 1, False),
        ("res4a_branch2a", "res3b3", 1, 0, 1, True), ("res4b22_branch2b", "res4b22_branch2a", 1, 2, 2, True),
        ("res5a_branch2b", "res5a_branch2a", 1, 4, 4, True), ("res5c_branch2b", "res5c_branch2a", 1, 4, 4, True),
        ("res5c_branch2c", "res5c_branch2b", 1, 0, 1, False)]
    for top, bottom, stride, pad, dilation, relu in checks:
        tag = top[3:]
        want = conv_bn(out[bottom], top, "bn" + tag, "scale" + tag, stride, pad, dilation, relu)
        np.testing.assert_allclose(out[top], want, rtol=1e-9, atol=1e-9, err_msg=top)
    np.testing.assert_allclose(out["res5c"], np.maximum(out["res5b"] + out["res5c_branch2c"], 0))
    np.testing.assert_allclose(out["res5a"], np.maximum(out["res5a_branch1"] + out["res5a_branch2c"], 0))
    assert out["res5c"].shape[2:] == (13, 13)
    for i, rate in enumerate(cv.RESNET_ASPP_RATES):
        w, b = blobs[f"fc1_voc12_c{i}"]
        np.testing.assert_allclose(out[f"fc1_voc12_c{i}"], _scipy_conv(out["res5c"], w, b, 1, rate, rate), atol=1e-9)


def test_msc_forward():
    rng = np.random.RandomState(6)
    blobs = cv.resnet101_blobs(1 / 16, 3, seed=6)
    x = rng.uniform(-120, 140, size=(1, 3, 33, 33))
    out = cv.reference_forward("resnet101", blobs, x, msc=True)
    assert out["data_res05"].shape[2:] == (17, 17) and out["data_res075"].shape[2:] == (25, 25)
    assert out["fc1_voc12"].shape[2:] == (5, 5)
    assert out["fc1_voc12_res05"].shape[2:] == (3, 3) and out["fc1_voc12_res075"].shape[2:] == (4, 4)
    assert out["fc1_voc12_res05_interp"].shape[2:] == out["fc1_voc12_res075_interp"].shape[2:] == (5, 5)
    stacked = np.stack([out["fc1_voc12"], out["fc1_voc12_res075_interp"], out["fc1_voc12_res05_interp"]])
    np.testing.assert_array_equal(out["fc_fusion"], stacked.max(axis=0))
    assert out["fc1_interp"].shape[2:] == (33, 33)
    # The 1.0 tower is the single-scale net; the 0.5 tower is the single-scale net on data_res05.
    single = cv.reference_forward("resnet101", blobs, x)
    np.testing.assert_allclose(out["fc1_voc12"], single["fc1_voc12"])
    half = cv.reference_forward("resnet101", blobs, out["data_res05"])
    np.testing.assert_allclose(out["fc1_voc12_res05"], half["fc1_voc12"])
    np.testing.assert_allclose(out["res5c_res05"], half["res5c"])
    # 40 -> 6 at scale 1 but the 0.5 tower gives 3 -> zoom 2 -> 5: Caffe's Eltwise MAX refuses it.
    with pytest.raises(ValueError, match="Eltwise"):
        cv.reference_forward("resnet101", blobs, rng.normal(size=(1, 3, 40, 48)), msc=True)


def test_drsleep_checkpoint_names():
    blobs = cv.resnet101_blobs(1 / 16, 21, seed=8, msc_copies=True)
    tf1 = cv.drsleep_tf1_weights(blobs)
    assert len(tf1) == 108 + 4 + 104 * 4
    assert tf1["conv1/weights"].shape == (7, 7, 3, 4) and "conv1/biases" not in tf1
    assert tf1["fc1_voc12_c0/weights"].shape == (3, 3, 128, 21) and tf1["fc1_voc12_c0/biases"].shape == (21,)
    f = blobs["bn_conv1"][2][0]
    np.testing.assert_allclose(tf1["bn_conv1/moving_mean"], blobs["bn_conv1"][0] / f, rtol=1e-6)
    np.testing.assert_allclose(tf1["bn4b22_branch2b/moving_variance"],
                               blobs["bn4b22_branch2b"][1] / blobs["bn4b22_branch2b"][2][0], rtol=1e-6)
    np.testing.assert_array_equal(tf1["bn2a_branch1/gamma"], blobs["scale2a_branch1"][0])
    np.testing.assert_array_equal(tf1["bn_conv1/beta"], blobs["scale_conv1"][1])
    assert not any("res05" in k or "res075" in k for k in tf1)
