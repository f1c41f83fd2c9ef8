"""The input pipeline, label shrinking and the loss's handling of the ignore label."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.data.images import IMG_MEAN
from deeplab_lfov.data.reader import Entry, read_list, shrink_labels, train_dataset
from deeplab_lfov.model import DeepLabLargeFOV
from deeplab_lfov.training.trainer import segmentation_loss_terms
from helpers import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    return str(root), make_dataset(str(root), 4)


def test_crops_have_requested_size_and_padding_is_ignore(dataset):
    root, list_path = dataset
    entries = read_list(root, list_path)
    ds = train_dataset(entries, (150, 200), 2, num_classes=21, random_scale=False, seed=3)
    images, labels = next(iter(ds))
    assert images.shape == (2, 150, 200, 3) and labels.shape == (2, 150, 200)
    # The images are 120x160: everything past row 120 / column 160 is padding.
    assert (labels.numpy()[:, 120:, :] == 255).all() and (labels.numpy()[:, :, 160:] == 255).all()
    assert (images.numpy()[:, 120:, :, :] == 0).all()  # the mean colour after mean subtraction
    ds = train_dataset(entries, (64, 80), 4, num_classes=21, seed=3)
    images, labels = next(iter(ds))
    assert images.shape == (4, 64, 80, 3) and labels.shape == (4, 64, 80)


def test_mirrored_and_scaled_pairs_stay_aligned(tmp_path):
    # An image whose colour encodes its label: left class 1 on red, right class 0 on blue.
    h, w = 60, 90
    label = np.zeros((h, w), np.uint8)
    label[:, : w // 3] = 1
    label[10:20, 50:70] = 1
    rgb = np.where(label[..., None] == 1, [250, 0, 0], [0, 0, 250]).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(label, mode="L").save(tmp_path / "a_label.png")
    entries = [Entry("list", 1, str(tmp_path / "a.png"), str(tmp_path / "a_label.png"))]
    ds = train_dataset(entries, (48, 64), 1, num_classes=21, seed=5)
    flips = 0
    for images, labels in ds.take(16):
        bgr = images.numpy()[0] + IMG_MEAN
        lab = labels.numpy()[0]
        valid = lab != 255
        red = bgr[..., 2] > 125
        assert np.mean(red[valid] == (lab[valid] == 1)) > 0.97
        flips += int(lab[valid].size and (lab == 1)[:, -5:].mean() > (lab == 1)[:, :5].mean())
    assert 0 < flips < 16  # mirroring happened, and not always


def test_shrink_labels_is_caffe_interp_on_the_grid():
    labels = tf.constant(np.random.RandomState(0).randint(0, 21, size=(2, 321, 321)), tf.int32)
    np.testing.assert_array_equal(shrink_labels(labels, (41, 41)).numpy(), labels.numpy()[:, ::8, ::8])
    assert shrink_labels(labels[:, :64, :64], (9, 9)).shape == (2, 9, 9)


def test_loss_averages_over_valid_pixels_only():
    rng = np.random.RandomState(1)
    logits = tf.constant(rng.normal(size=(2, 5, 5, 4)), tf.float32)
    labels = rng.randint(0, 4, size=(2, 5, 5))
    labels[0, :3] = 255
    loss_sum, count = segmentation_loss_terms(logits, tf.constant(labels, tf.int32), 4, 255)
    lg = logits.numpy()
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    valid = labels != 255
    expect = -np.mean([logp[n, i, j, labels[n, i, j]] for n, i, j in zip(*np.nonzero(valid))])
    assert count.numpy() == valid.sum()
    assert loss_sum.numpy() / count.numpy() == pytest.approx(expect, rel=1e-5)


def test_all_ignore_batch_gives_zero_loss_and_zero_gradients():
    model = DeepLabLargeFOV(num_classes=21, width_multiplier=0.125, seed=0)
    images = tf.random.stateless_normal((2, 33, 33, 3), seed=(1, 1)) * 50
    labels = tf.fill((2, 33, 33), 255)
    with tf.GradientTape() as tape:
        loss_sum, count = segmentation_loss_terms(model(images, training=True), labels, 21, 255)
        loss = loss_sum / tf.maximum(count, 1.0)
    grads = tape.gradient(loss, list(model.named_variables().values()))
    assert float(loss) == 0.0
    assert all(float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)


def test_list_errors_name_the_line(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DeepLabError, match="empty.txt: the list is empty"):
        read_list(str(tmp_path), str(tmp_path / "empty.txt"))
    (tmp_path / "bad.txt").write_text("/a.jpg /a.png\n/only_one.jpg\n")
    with pytest.raises(DeepLabError, match=r"bad.txt:2: expected 'IMAGE LABEL'"):
        read_list(str(tmp_path), str(tmp_path / "bad.txt"))


def test_classic_image_reader_dequeues_crops_of_the_list(tmp_path):
    """``deeplab_lfov.image_reader.ImageReader``, the classic import path, over the tf.data pipeline."""
    from deeplab_lfov.image_reader import ImageReader
    list_path = make_dataset(tmp_path, 3)
    reader = ImageReader(str(tmp_path), list_path, (33, 41), random_scale=True, coord=None)
    assert len(reader.image_list) == 3 and reader.label_list[0].endswith(".png")
    images, labels = reader.dequeue(2)
    assert images.shape == (2, 33, 41, 3) and labels.shape == (2, 33, 41, 1) and labels.dtype.name == "uint8"
    assert set(np.unique(labels.numpy())) <= set(range(21)) | {255}
    with pytest.raises(DeepLabError, match="img_mean"):
        ImageReader(str(tmp_path), list_path, (33, 41), img_mean=(0.0, 0.0, 0.0))
