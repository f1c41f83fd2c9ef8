"""The dense CRF in TensorFlow: the permutohedral filter against the exact Gaussian filter and against
pydensecrf's, the same labels as pydensecrf, edge cases, no compiled package needed, inside the SavedModel."""

import os
import re
import sys

import numpy as np
import pydensecrf.densecrf as pydensecrf  # noqa: E402  (the reference: pydensecrf2, in the dev requirements)
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_lfov.crf.dense import DenseCRF
from deeplab_lfov.crf.params import CRFParams
from deeplab_lfov.crf.tf_crf import PermutohedralLattice, TFDenseCRF
from helpers import SAMPLE, run_cli

PHOTO = np.asarray(Image.open(os.path.join(SAMPLE, "JPEGImages", "sample_003.jpg")))


def _exact(features, values):
    """The symmetric-normalised Gaussian filter, O(N^2)."""
    k = np.exp(-0.5 * ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1))
    norm = 1 / np.sqrt(k.sum(1))
    return norm * (k @ (norm * values))


def _ours(features, values):
    lattice = PermutohedralLattice(tf.constant(features, tf.float32))
    norm = tf.math.rsqrt(lattice.filter(tf.ones([len(features), 1])) + 1e-20)
    return (norm * lattice.filter(norm * tf.constant(values[:, None], tf.float32))).numpy()[:, 0]


def _pydensecrf(features, values):
    """pydensecrf's own normalised filter, read off one mean-field step of a two-label CRF:
    logit(Q1) - logit(Q0) = filter(Q0[1] - Q0[0]) with a unit Potts weight."""
    q0 = np.stack([(1 - values) / 2, (1 + values) / 2]).astype(np.float32)
    crf = pydensecrf.DenseCRF(len(features), 2)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(q0)))
    crf.addPairwiseEnergy(np.ascontiguousarray(features.T, np.float32), compat=1.0,
                          kernel=pydensecrf.DIAG_KERNEL, normalization=pydensecrf.NORMALIZE_SYMMETRIC)
    q1 = np.array(crf.inference(1))
    return np.log(q1[1] / q1[0]) - np.log(q0[1] / q0[0])


@pytest.mark.parametrize("source,shape", [("random", (32, 32)), ("random", (48, 64)), ("photo", (32, 32)),
                                          ("photo", (48, 64))])
def test_bilateral_filter_error_is_at_most_pydensecrfs(source, shape):
    rng = np.random.RandomState(shape[0])
    rgb = rng.randint(0, 255, shape + (3,)) if source == "random" else PHOTO[:shape[0], :shape[1]]
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    features = np.concatenate([np.stack([xs.ravel(), ys.ravel()], 1) / 10.0, rgb.reshape(-1, 3) / 13.0], 1)
    values = rng.uniform(-0.8, 0.8, size=features.shape[0])
    exact = _exact(features, values)
    ours = np.abs(_ours(features, values) - exact).mean()
    theirs = np.abs(_pydensecrf(features, values) - exact).mean()
    assert ours <= 1.1 * theirs, (ours, theirs)


def _thin_scene():
    """Thin lines (1-3 px) and a small disc on a textured background, with noisy probabilities."""
    h, w = 90, 120
    rng = np.random.RandomState(7)
    truth = np.zeros((h, w), np.int64)
    truth[20:22, 10:110] = 1
    truth[:, 60] = 2
    truth[50:53, :] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    truth[(yy - 70) ** 2 + (xx - 30) ** 2 < 36] = 2
    colours = np.array([(60, 110, 60), (220, 220, 40), (40, 40, 200)])
    rgb = np.clip(colours[truth] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    onehot = np.eye(3)[truth]
    probs = tf.nn.avg_pool2d(onehot[None], 5, 1, "SAME").numpy()[0] + rng.uniform(0, 0.6, (h, w, 3))
    return rgb, (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def test_labels_agree_with_pydensecrf_on_sample_images_and_thin_structures(trained_slim):
    from deeplab_lfov.data.images import read_image
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model.weights import build_model, load_weights
    predictor = Predictor(build_model(load_weights(trained_slim)))
    cases = [_thin_scene()]
    for name in sorted(os.listdir(os.path.join(SAMPLE, "JPEGImages")))[32:]:  # the validation images
        rgb = read_image(os.path.join(SAMPLE, "JPEGImages", name))
        cases.append((rgb, predictor.probabilities(rgb)))
    ours, theirs = TFDenseCRF(CRFParams()), DenseCRF(CRFParams())
    for rgb, probs in cases:
        agree = np.mean(ours(rgb, probs).argmax(-1) == theirs(rgb, probs).argmax(-1))
        assert agree >= 0.99, agree


def test_crf_gain_on_the_demo_validation_list_matches_pydensecrfs(trained_slim, capsys):
    gains = {}
    for backend in ("tf", "pydensecrf"):
        code, out, err = run_cli("evaluate.py", ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "val.txt"),
                                                 "--restore_from", trained_slim, "--crf", "--crf_backend", backend,
                                                 "--save_dir", ""], capsys)
        assert code == 0, err
        plain, crf = (float(v) for v in re.findall(r"Mean IoU: ([0-9.]+)", out))
        gains[backend] = crf - plain
    assert abs(gains["tf"] - gains["pydensecrf"]) <= 0.005, gains


@pytest.mark.parametrize("rgb,probs,params", [
    (np.full((20, 30, 3), 77, np.uint8), None, CRFParams()),                      # a constant image
    (np.array([[[10, 200, 30]]], np.uint8), None, CRFParams()),                   # 1 x 1
    (np.random.RandomState(1).randint(0, 255, (16, 18, 3)).astype(np.uint8), "one class", CRFParams()),
    (np.random.RandomState(2).randint(0, 255, (16, 18, 3)).astype(np.uint8), None, CRFParams(bi_rgb_std=0.1)),
    (np.random.RandomState(3).randint(0, 255, (16, 18, 3)).astype(np.uint8), None, CRFParams(bi_rgb_std=1000)),
])
def test_edge_cases_give_finite_probabilities_that_sum_to_one(rgb, probs, params):
    h, w = rgb.shape[:2]
    classes = 1 if probs == "one class" else 4
    probs = np.random.RandomState(h).dirichlet(np.ones(classes), size=(h, w)).astype(np.float32)
    out = TFDenseCRF(params)(rgb, probs)
    assert out.shape == probs.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_evaluate_and_inference_crf_need_no_compiled_package(trained_slim, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    code, out, err = run_cli("evaluate.py", ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "val.txt"),
                                             "--restore_from", trained_slim, "--crf", "--num_steps", "2",
                                             "--save_dir", ""], capsys)
    assert code == 0 and "With CRF:" in out, err
    image = os.path.join(SAMPLE, "JPEGImages", "sample_033.jpg")
    code, out, err = run_cli("inference.py", [image, trained_slim, "--crf", "--save_dir", tmp_path], capsys)
    assert code == 0 and os.path.exists(tmp_path / "mask.png"), err


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_the_exported_saved_model_with_crf_gives_the_in_process_crf_labels(trained_slim, tmp_path, capsys):
    from deeplab_lfov.data.images import read_image
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model.weights import build_model, load_weights
    code, out, err = run_cli("util/export_model.py", [trained_slim, "--output_dir", tmp_path, "--formats",
                                                      "saved_model", "--crf", "--crf_iterations", "5"], capsys)
    assert code == 0, err
    assert "saved_model: serving_default 100.000%, segment_encoded 100.000%" in out
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    rgb = read_image(os.path.join(SAMPLE, "JPEGImages", "sample_035.jpg"))
    predictor = Predictor(build_model(load_weights(trained_slim)))
    expected = TFDenseCRF(CRFParams(iterations=5))(rgb, predictor.probabilities(rgb)).argmax(-1)
    np.testing.assert_array_equal(serve(images=tf.constant(rgb[None]))["labels"].numpy()[0], expected)
    assert not np.array_equal(expected, predictor.labels(rgb))  # the CRF changed something
