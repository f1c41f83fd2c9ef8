"""Hard labels as a CRF unary: the classes absent from a label map share one channel, and the CRF on
the present classes plus that channel gives the full CRF's probabilities and labels (both backends)."""

import os

import numpy as np
import pytest
from PIL import Image

from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.crf.classes import reduce_label_unary, unary_from_labels
from deeplab_lfov.crf.dense import make_crf
from deeplab_lfov.crf.params import CRFParams
from helpers import SAMPLE

PHOTO = np.asarray(Image.open(os.path.join(SAMPLE, "JPEGImages", "sample_003.jpg")).convert("RGB"))[:60, :80]


def _pseudo_labels(classes=(0, 8, 15), ignore_label=255):
    labels = np.full(PHOTO.shape[:2], classes[0], np.uint8)
    labels[10:45, 20:70] = classes[1]
    labels[30:55, 5:30] = classes[2]
    labels[:4] = ignore_label  # unsure pixels: a flat unary
    return labels


@pytest.mark.parametrize("backend", ["tf", "pydensecrf"])
@pytest.mark.parametrize("classes", [(0, 8, 15), (3, 20, 7), (0, 1, 2)])
def test_the_absent_classes_channel_gives_the_full_crfs_probabilities(backend, classes):
    labels = _pseudo_labels(classes)
    crf = make_crf(CRFParams(iterations=5), backend)
    full = crf(PHOTO, unary_from_labels(labels, 21, 0.7, 255))
    unary = reduce_label_unary(labels, 21, 0.7, 255)
    first_absent = min(set(range(21)) - set(classes))
    assert unary.probs.shape == labels.shape + (4,)
    assert unary.classes.tolist() == sorted(classes + (first_absent,))
    assert unary.multiplicity.tolist() == [18.0 if c == first_absent else 1.0 for c in unary.classes]
    reduced = crf(PHOTO, unary.probs, unary.multiplicity)
    assert np.abs(unary.expand(reduced) - full).max() < 1e-5
    assert np.array_equal(unary.labels(reduced), full.argmax(-1))


def test_shared_channel_stands_for_the_first_absent_class_in_ties():
    labels = np.array([[2, 255]], np.uint8)
    unary = reduce_label_unary(labels, 4, 0.7, 255)
    assert unary.classes.tolist() == [0, 2] and unary.multiplicity.tolist() == [3.0, 1.0]
    flat = np.full((1, 2, 2), 0.25, np.float32)  # a tie everywhere: the full argmax says class 0
    assert unary.labels(flat).tolist() == [[0, 0]]
    q = np.array([[[0.1, 0.7], [0.3, 0.1]]], np.float32)
    assert unary.labels(q).tolist() == [[2, 0]]
    expanded = unary.expand(q)
    assert expanded.shape == (1, 2, 4) and expanded[0, 0].tolist() == pytest.approx([0.1, 0.1, 0.7, 0.1])


def test_every_class_present_or_none_present():
    every = reduce_label_unary(np.arange(6, dtype=np.uint8).reshape(2, 3), 6, 0.7, 255)
    assert every.classes.tolist() == list(range(6)) and every.shared is None
    assert every.multiplicity.tolist() == [1.0] * 6
    assert np.array_equal(every.probs, unary_from_labels(np.arange(6, dtype=np.uint8).reshape(2, 3), 6, 0.7, 255))
    none = reduce_label_unary(np.full((2, 3), 255, np.uint8), 6, 0.7, 255)
    assert none.classes.tolist() == [0] and none.multiplicity.tolist() == [6.0] and none.shared == 0
    assert np.allclose(none.probs, 1 / 6) and none.labels(none.probs).tolist() == [[0] * 3] * 2


def test_label_values_outside_the_classes_are_refused():
    with pytest.raises(DeepLabError, match=r"^a\.png: label values outside 0\.\.5 and ignore label 255: 9 \(2 pixels\)$"):
        reduce_label_unary(np.array([[1, 9, 255, 9]], np.uint8), 6, 0.7, 255, "a.png")


def test_crf_refine_names_the_pseudo_label_with_stray_values_once(tmp_path):
    from deeplab_lfov.crf.refine import init_worker, refine_one
    Image.fromarray(PHOTO).save(tmp_path / "a.png")
    labels = np.zeros(PHOTO.shape[:2], np.uint8)
    labels[:2, :3] = 30
    Image.fromarray(labels, mode="L").save(tmp_path / "a_label.png")
    init_worker(CRFParams(iterations=1), 21, 0.7, 255, None, "tf")
    message, kind = refine_one((str(tmp_path / "a_label.png"), str(tmp_path / "a.png"), str(tmp_path / "out.png")))
    assert message == f"{tmp_path / 'a_label.png'}: label values outside 0..20 and ignore label 255: 30 (6 pixels)"
    assert kind == "label values out of range" and not os.path.exists(tmp_path / "out.png")


@pytest.mark.parametrize("backend", ["tf", "pydensecrf"])
def test_crf_refine_of_a_label_png_equals_the_full_crfs_labels(tmp_path, backend):
    from deeplab_lfov.crf.refine import init_worker, refine_one
    labels = _pseudo_labels((0, 12, 5))
    Image.fromarray(PHOTO).save(tmp_path / "a.png")
    Image.fromarray(labels, mode="L").save(tmp_path / "a_label.png")
    params = CRFParams(iterations=5)
    init_worker(params, 21, 0.7, 255, None, backend)
    assert refine_one((str(tmp_path / "a_label.png"), str(tmp_path / "a.png"), str(tmp_path / "out.png"))) is None
    expected = make_crf(params, backend)(PHOTO, unary_from_labels(labels, 21, 0.7, 255)).argmax(-1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


def _striped_scene():
    """Labels 0 and 1 on the left, the rest unsure (255) across stripes of far-apart colours: where no
    label reaches, every class is at about 1/C and the CRF decides between near-ties."""
    rng = np.random.RandomState(3)
    colours = []
    while len(colours) < 16:
        c = rng.randint(0, 256, 3)
        if all(np.abs(c - d).max() > 70 for d in colours):
            colours.append(c)
    rgb = np.zeros((30, 20 + 14 * 15, 3), np.uint8)
    rgb[:, :20] = colours[0]
    for i in range(1, 16):
        rgb[:, 20 + (i - 1) * 14:20 + i * 14] = colours[i]
    labels = np.full(rgb.shape[:2], 255, np.uint8)
    labels[:, :10], labels[:, 10:20] = 0, 1
    return rgb, labels


@pytest.mark.parametrize("backend", ["tf", "pydensecrf"])
def test_near_ties_never_give_a_class_that_is_in_no_label(backend):
    rgb, labels = _striped_scene()
    crf = make_crf(CRFParams(), backend)
    unary = reduce_label_unary(labels, 21, 0.7, 255)
    reduced = unary.labels(crf(rgb, unary.probs, unary.multiplicity))
    full = crf(rgb, unary_from_labels(labels, 21, 0.7, 255)).argmax(-1)
    assert set(np.unique(reduced)) <= {0, 1}  # an absent class never beats a present one but by rounding
    assert np.mean(reduced == full) > 0.99


@pytest.mark.parametrize("backend", ["tf", "pydensecrf"])
def test_a_label_no_likelier_than_the_rest_ties_as_the_full_argmax(backend):
    labels = np.zeros((12, 16), np.uint8)
    labels[:, 8:] = 3
    rgb = np.full((12, 16, 3), 128, np.uint8)
    crf = make_crf(CRFParams(iterations=3), backend)
    unary = reduce_label_unary(labels, 5, 0.2, 255)  # gt_prob 1/5: every class equally likely everywhere
    full = crf(rgb, unary_from_labels(labels, 5, 0.2, 255)).argmax(-1)
    assert np.array_equal(unary.labels(crf(rgb, unary.probs, unary.multiplicity)), full)


def test_numpy_weights_reach_pydensecrf_as_float32():
    from deeplab_lfov.crf.dense import DenseCRF
    unary = reduce_label_unary(_pseudo_labels(), 21, 0.7, 255)
    q = DenseCRF(CRFParams(pos_w=np.float64(3), bi_w=np.float64(4), iterations=2))(
        PHOTO, unary.probs, unary.multiplicity)
    assert q.shape == unary.probs.shape and np.all(np.isfinite(q))


def test_crf_refine_refuses_an_ignore_label_that_is_one_of_the_classes(tmp_path, capsys):
    from helpers import assert_one_line_error, run_cli
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    code, out, err = run_cli("util/crf_refine.py", [tmp_path / "labels", "--image_dir", tmp_path / "images",
                                                   "--output_dir", tmp_path / "out", "--num_classes", "10",
                                                   "--ignore_label", "5"], capsys)
    assert_one_line_error(code, err, "--ignore_label 5", "10 classes")


@pytest.mark.parametrize("gt_prob, num_classes", [("0.1", "10"), ("0.04", "21")])
def test_crf_refine_refuses_a_gt_prob_that_makes_the_label_no_likelier_than_another_class(tmp_path, capsys,
                                                                                          gt_prob, num_classes):
    """gt_prob <= 1/C gives the labelled class no more probability than each of the others (less below it):
    the pseudo label would not count, or count against itself."""
    from helpers import assert_one_line_error, run_cli
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    code, out, err = run_cli("util/crf_refine.py", [tmp_path / "labels", "--image_dir", tmp_path / "images",
                                                   "--output_dir", tmp_path / "out", "--num_classes", num_classes,
                                                   "--gt_prob", gt_prob], capsys)
    assert_one_line_error(code, err, f"--gt_prob {gt_prob}", f"{num_classes} classes")
    assert not (tmp_path / "out").exists()
