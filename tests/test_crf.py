"""The dense CRF and the test-time protocol (flip, scales, 513 padding)."""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.crf.dense import DenseCRF
from deeplab_lfov.crf.params import CRFParams
from deeplab_lfov.data.images import preprocess
from deeplab_lfov.data.reader import read_list
from deeplab_lfov.evaluation.evaluator import evaluate
from deeplab_lfov.evaluation.predict import Predictor
from deeplab_lfov.model import DeepLabLargeFOV
from helpers import assert_one_line_error, make_dataset, run_cli


def _two_regions(seed=0):
    """A flat two-colour image with a wavy boundary, and blurred, noisy probabilities of it."""
    h, w = 80, 100
    yy, xx = np.mgrid[0:h, 0:w]
    truth = (xx > 50 + 8 * np.sin(yy / 6.0)).astype(np.int64)
    rgb = np.where(truth[..., None] == 1, [200, 60, 40], [40, 90, 200]).astype(np.uint8)
    rng = np.random.RandomState(seed)
    onehot = np.stack([truth == 0, truth == 1], -1).astype(np.float64)
    blurred = tf.nn.avg_pool2d(onehot[None], 15, 1, "SAME").numpy()[0]  # boundary smeared over ~15 px
    noisy = np.clip(blurred + rng.normal(0, 0.6, blurred.shape), 1e-3, None)
    probs = (noisy / noisy.sum(-1, keepdims=True)).astype(np.float32)
    return rgb, probs, truth


def test_crf_recovers_the_true_regions_better_than_argmax():
    rgb, probs, truth = _two_regions()
    before = np.mean(probs.argmax(-1) == truth)
    refined = DenseCRF()(rgb, probs)
    after = np.mean(refined.argmax(-1) == truth)
    assert before < 0.9  # the input really is noisy
    assert after > 0.98 and after > before + 0.08
    assert refined.shape == probs.shape
    np.testing.assert_allclose(refined.sum(-1), 1.0, rtol=1e-5)


class _RecordingBackend:
    """Stands in for pydensecrf.densecrf and records what reaches it."""

    def __init__(self):
        self.calls = {}

    def DenseCRF2D(self, w, h, n):
        backend = self

        class _CRF:
            def setUnaryEnergy(self, u):
                backend.calls["unary_shape"] = u.shape

            def addPairwiseGaussian(self, **kw):
                backend.calls["gaussian"] = kw

            def addPairwiseBilateral(self, **kw):
                backend.calls["bilateral"] = {k: v for k, v in kw.items() if k != "rgbim"}

            def inference(self, iterations):
                backend.calls["iterations"] = iterations
                return np.full((n, w * h), 1.0 / n, np.float32)
        return _CRF()


def test_every_crf_flag_reaches_the_library():
    from deeplab_lfov.settings import CRFConfig
    parser = CRFConfig.parser("test")
    settings = CRFConfig.from_args(parser.parse_args(["--crf", "--bi_w", "5", "--bi_xy_std", "70", "--bi_rgb_std",
                                                        "3", "--pos_w", "2", "--pos_xy_std", "4",
                                                        "--crf_iterations", "7"]))
    backend = _RecordingBackend()
    crf = DenseCRF(settings.crf_params(), backend=backend)
    crf(np.zeros((6, 8, 3), np.uint8), np.full((6, 8, 3), 1 / 3, np.float32))
    assert backend.calls == {"unary_shape": (3, 48), "gaussian": {"sxy": 4.0, "compat": 2.0},
                             "bilateral": {"sxy": 70.0, "srgb": 3.0, "compat": 5.0}, "iterations": 7}
    assert CRFConfig.from_args(parser.parse_args([])).crf_params() is None
    assert CRFParams() == CRFParams(bi_w=4, bi_xy_std=121, bi_rgb_std=5, pos_w=3, pos_xy_std=3, iterations=10)
    assert CRFConfig(crf=True).crf_params() == CRFParams()  # the flags' defaults are the paper's


def test_evaluate_crf_without_the_package_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    code, _, err = run_cli("evaluate.py", ["--crf", "--crf_backend", "pydensecrf", "--restore_from", tmp_path], capsys)
    assert_one_line_error(code, err, "pydensecrf2", "pip install")


@pytest.fixture(scope="module")
def model():
    return DeepLabLargeFOV(num_classes=21, width_multiplier=0.125, seed=4)


def test_flip_averaging_of_a_mirrored_image_is_the_mirrored_prediction(model):
    rgb = np.random.RandomState(0).randint(0, 255, (41, 57, 3), dtype=np.uint8)
    predictor = Predictor(model, flip=True)
    np.testing.assert_allclose(predictor.probabilities(rgb[:, ::-1]), predictor.probabilities(rgb)[:, ::-1],
                               rtol=1e-4, atol=1e-6)
    plain = Predictor(model).probabilities(rgb)
    assert not np.allclose(plain[:, ::-1], Predictor(model).probabilities(rgb[:, ::-1]), atol=1e-6)


def test_single_scale_one_is_the_plain_prediction(model):
    rgb = np.random.RandomState(1).randint(0, 255, (50, 38, 3), dtype=np.uint8)
    plain = tf.nn.softmax(model.upsampled_logits(tf.constant(preprocess(rgb)[None]))).numpy()[0]
    np.testing.assert_allclose(Predictor(model, scales=(1.0,)).probabilities(rgb), plain, rtol=1e-5, atol=1e-7)
    multi = Predictor(model, scales=(0.5, 0.75, 1.0)).probabilities(rgb)
    assert multi.shape == plain.shape and not np.allclose(multi, plain)
    np.testing.assert_allclose(multi.sum(-1), 1.0, rtol=1e-5)


def test_padding_to_513_keeps_the_scored_area(model, tmp_path):
    list_path = make_dataset(str(tmp_path), 2)
    entries = read_list(str(tmp_path), list_path)
    padded = Predictor(model, pad_to=513)
    assert padded.probabilities(np.zeros((120, 160, 3), np.uint8)).shape == (120, 160, 21)
    plain_cm = evaluate(Predictor(model), entries, num_classes=21, log=lambda s: None)["plain"]
    padded_cm = evaluate(padded, entries, num_classes=21, log=lambda s: None)["plain"]
    assert plain_cm.sum() == padded_cm.sum() > 0  # same pixels scored
    assert plain_cm.sum(1).tolist() == padded_cm.sum(1).tolist()


def test_evaluate_with_crf_reports_both_from_one_run_with_workers(tmp_path, capsys, model):
    from deeplab_lfov.model.weights import save_weights
    list_path = make_dataset(str(tmp_path), 3)
    prefix = save_weights(str(tmp_path / "w.ckpt"), {k: v.numpy() for k, v in model.named_variables().items()})
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--restore_from",
                                             prefix, "--crf", "--workers", "2", "--crf_iterations", "3",
                                             "--save_dir", ""], capsys)
    assert code == 0, err
    assert "Without CRF:" in out and "With CRF:" in out and out.count("Mean IoU:") == 2


def test_crf_search_prints_the_best_setting(tmp_path, capsys, model):
    from deeplab_lfov.model.weights import save_weights
    list_path = make_dataset(str(tmp_path), 2)
    prefix = save_weights(str(tmp_path / "w.ckpt"), {k: v.numpy() for k, v in model.named_variables().items()})
    code, out, err = run_cli("util/crf_search.py", ["--data_dir", tmp_path, "--data_list", list_path,
                                                    "--restore_from", prefix, "--bi_w", "3,5", "--bi_xy_std", "30",
                                                    "--bi_rgb_std", "3", "--crf_iterations", "2"], capsys)
    assert code == 0, err
    assert len([l for l in out.splitlines() if l.startswith("bi_w ")]) == 2 and "Best: --bi_w " in out
    assert "--crf_iterations 2 " in out  # the best line is a setting to paste: iterations included
    plain = float(re.search(r"Without CRF: mean IoU ([0-9.]+)", out).group(1))
    best = float(re.search(r"Best: .*\(mean IoU ([0-9.]+)\)", out).group(1))
    assert (best < plain) == ("No setting of this grid beats the net without the CRF" in out)


def test_crf_refine_a_folder_of_pseudo_labels_and_probabilities(tmp_path, capsys):
    from PIL import Image
    rgb, probs, truth = _two_regions()
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "pseudo" / "sub").mkdir(parents=True)
    pseudo = probs.argmax(-1).astype(np.uint8)
    pseudo[probs.max(-1) < 0.7] = 255  # unsure pixels
    for name in ("a", "b", "sub/c"):
        Image.fromarray(rgb).save(tmp_path / "images" / f"{name}.jpg", quality=98)
        Image.fromarray(pseudo, mode="L").save(tmp_path / "pseudo" / f"{name}.png")
    np.save(tmp_path / "pseudo" / "p.npy", probs.astype(np.float16))
    Image.fromarray(rgb).save(tmp_path / "images" / "p.png")
    (tmp_path / "images" / "b.jpg").write_bytes(b"\xff\xd8 broken")  # b's image is corrupt
    args = ["util/crf_refine.py", [tmp_path / "pseudo", "--image_dir", tmp_path / "images", "--output_dir",
                                   tmp_path / "out", "--num_classes", "2", "--workers", "2"]]
    code, out, err = run_cli(args[0], args[1], capsys)
    assert code == 2 and "b.jpg: cannot decode image" in err and "1 of 4 inputs failed" in err
    assert "Refined 3 of 4" in out
    for name in ("a", "sub/c", "p"):
        refined = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert refined.shape == truth.shape
        assert np.mean(refined == truth) > np.mean(pseudo == truth) + 0.05  # the CRF filled and fixed pixels
    assert not os.path.exists(tmp_path / "out" / "b.png")
    code, out, err = run_cli(args[0], args[1] + ["--skip_existing"], capsys)
    assert code == 2 and "Refined 0 of 4" in out and "3 skipped" in out  # only the broken one is tried again
    (tmp_path / "images" / "b.jpg").unlink()
    Image.fromarray(rgb).save(tmp_path / "images" / "b.jpg")
    code, out, err = run_cli(args[0], args[1] + ["--skip_existing"], capsys)
    assert code == 0 and "Refined 1 of 4" in out
    code, out, err = run_cli(args[0], args[1] + ["--skip_existing"], capsys)
    assert code == 0 and "Nothing to do" in out


def test_evaluate_overlaps_the_tf_crf_with_the_net_and_scores_as_if_sequential(tmp_path, model):
    from deeplab_lfov.crf.dense import crf_labels, init_worker
    from deeplab_lfov.data.reader import load_pair
    from deeplab_lfov.evaluation.metrics import confusion_matrix
    entries = read_list(str(tmp_path), make_dataset(str(tmp_path), 3))
    params = CRFParams(iterations=3)
    predictor = Predictor(model)
    overlapped = evaluate(predictor, entries, num_classes=21, crf_params=params, log=lambda s: None)["crf"]
    init_worker(params, "tf")
    sequential = np.zeros_like(overlapped)
    for entry in entries:
        rgb, label = load_pair(entry, 21, 255)
        sequential += confusion_matrix(label, crf_labels(rgb, predictor.probabilities(rgb)), 21, 255)
    np.testing.assert_array_equal(overlapped, sequential)


def test_crf_refine_reports_each_bad_probabilities_file_and_refines_the_rest(tmp_path, capsys):
    """Issue 18: a zero-byte .npy, an .npz renamed .npy, a structured dtype, a header declaring a huge
    shape, NaN probabilities and a FIFO each become one reported problem; the good file is refined."""
    from PIL import Image
    rgb, probs, truth = _two_regions()
    (tmp_path / "images").mkdir()
    (tmp_path / "probs").mkdir()
    bad = {"empty": None, "npz": None, "structured": None, "huge": None, "nan": None, "fifo": None}
    for name in ["good"] + list(bad):
        Image.fromarray(rgb).save(tmp_path / "images" / f"{name}.png")
    np.save(tmp_path / "probs" / "good.npy", probs.astype(np.float16))
    (tmp_path / "probs" / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "probs" / "npz.npz", p=probs)
    os.replace(tmp_path / "probs" / "npz.npz", tmp_path / "probs" / "npz.npy")
    np.save(tmp_path / "probs" / "structured.npy", np.zeros(probs.shape[:2], dtype=[("a", "f4"), ("b", "f4")]))
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 2), np.float32))
    header["shape"] = (200000, 200000, 2)  # 320 GB declared, 0 bytes stored
    with open(tmp_path / "probs" / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    nan = probs.astype(np.float32)
    nan[0, 0] = np.nan
    np.save(tmp_path / "probs" / "nan.npy", nan)
    os.mkfifo(tmp_path / "probs" / "fifo.npy")
    code, out, err = run_cli("util/crf_refine.py", [tmp_path / "probs", "--image_dir", tmp_path / "images",
                                                    "--output_dir", tmp_path / "out", "--num_classes", "2"], capsys)
    assert code == 2 and "Refined 1 of 7" in out and "6 of 7 inputs failed" in err
    for name, needle in (("empty", "empty"), ("npz", "not a .npy"), ("structured", "structured"),
                         ("huge", "declares"), ("nan", "NaN"), ("fifo", "not a regular file")):
        assert f"{name}.npy: " in err and needle in err, (name, err)
    refined = np.asarray(Image.open(tmp_path / "out" / "good.png"))
    assert np.mean(refined == truth) > 0.9


def test_crf_search_shares_the_lattice_among_bilateral_weights_with_each_settings_own_scores(tmp_path, model):
    """The TF backend runs every bi_w of one (bi_xy_std, bi_rgb_std) pair on one lattice per image: the same
    labels as each setting's CRF alone (probabilities equal but for rounding), the grid's scores and order."""
    from deeplab_lfov.crf.tf_crf import TFDenseCRF
    from deeplab_lfov.data.reader import load_pair
    from deeplab_lfov.evaluation.crf_search import crf_grid_search
    from deeplab_lfov.evaluation.metrics import confusion_matrix, scores
    entries = read_list(str(tmp_path), make_dataset(str(tmp_path), 2))
    predictor = Predictor(model)
    grid = dict(bi_w=(5.0, 3.0), bi_xy_std=(30.0, 50.0), bi_rgb_std=(3.0,))
    result = crf_grid_search(predictor, entries, num_classes=21, ignore_label=255, iterations=3, **grid)
    expected = {}
    for w in grid["bi_w"]:
        for xy in grid["bi_xy_std"]:
            params = CRFParams(bi_w=w, bi_xy_std=xy, bi_rgb_std=3.0, iterations=3)
            alone, confusion = TFDenseCRF(params), np.zeros((21, 21), np.int64)
            for entry in entries:
                rgb, label = load_pair(entry, 21, 255)
                probs = predictor.probabilities(rgb).astype(np.float16).astype(np.float32)
                q = alone(rgb, probs)
                shared = TFDenseCRF(params).for_bi_weights(rgb, probs, grid["bi_w"])[grid["bi_w"].index(w)]
                np.testing.assert_allclose(shared, q, atol=1e-5)
                assert np.array_equal(shared.argmax(-1), q.argmax(-1))
                confusion += confusion_matrix(label, q.argmax(-1), 21, 255)
            expected[params] = scores(confusion)["mean_iou"]
    assert dict(result.tried) == expected
    order = [(w, xy) for w in grid["bi_w"] for xy in grid["bi_xy_std"]]  # the grid's order breaks ties
    assert [p for p, _ in result.tried] == sorted(expected, key=lambda p: (-expected[p], order.index((p.bi_w,
                                                                                                      p.bi_xy_std))))
