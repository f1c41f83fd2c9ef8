"""Training and evaluation end to end on tiny generated VOC-layout data."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.data.images import preprocess, read_image, read_label
from deeplab_lfov.data.reader import read_list
from deeplab_lfov.evaluation.evaluator import evaluate
from deeplab_lfov.evaluation.metrics import confusion_matrix, scores
from deeplab_lfov.evaluation.predict import Predictor
from deeplab_lfov.model.weights import build_model, load_weights
from deeplab_lfov.settings import TrainConfig
from deeplab_lfov.training.optim import Optimizer, caffe_lr_multipliers, learning_rate_schedule
from deeplab_lfov.training.trainer import train
from helpers import assert_one_line_error, make_dataset, run_cli, train_args


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """A slim net trained on 4 images until it knows them."""
    root = str(tmp_path_factory.mktemp("overfit"))
    list_path = make_dataset(root, 4)
    config = TrainConfig(data_dir=root, data_list=list_path, snapshot_dir=os.path.join(root, "snap"),
                         save_dir=os.path.join(root, "img"), input_size=(120, 160), batch_size=4,
                         num_steps=200, learning_rate=3e-3, width_multiplier=0.125, random_scale=False,
                         save_pred_every=100, print_every=100, save_num_images=2)
    assert train(config, log=lambda s: None) == 200
    return root, list_path, config


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_slim_model_overfits_four_images(overfit):
    root, list_path, config = overfit
    model = build_model(load_weights(config.snapshot_dir))
    confusion = evaluate(Predictor(model), read_list(root, list_path), num_classes=21, log=lambda s: None)
    assert scores(confusion["plain"])["mean_iou"] > 0.9
    for step in (0, 100, 200):
        assert os.path.exists(os.path.join(config.snapshot_dir, f"model.ckpt-{step}.index"))
        assert os.path.exists(os.path.join(config.save_dir, f"train_{step}.png"))
    assert os.listdir(os.path.join(config.snapshot_dir, "logs"))  # TensorBoard events


def _numpy_miou(model, entries):
    """An independent mIoU: per-class intersections and unions of boolean masks, summed over images."""
    inter = np.zeros(21)
    union = np.zeros(21)
    for entry in entries:
        image, label = read_image(entry.image), read_label(entry.label)
        logits = model.upsampled_logits(tf.constant(preprocess(image)[None])).numpy()[0]
        pred = logits.argmax(-1)
        valid = label != 255
        for c in range(21):
            p, g = (pred == c) & valid, (label == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    present = union > 0
    return float(np.mean(inter[present] / union[present]))


def test_evaluate_py_miou_equals_numpy(overfit, tmp_path, capsys):
    root, list_path, config = overfit
    other = make_dataset(str(tmp_path), 3, seed=9, name="val.txt")  # unseen images: IoU well below 1
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", other, "--restore_from",
                                             config.snapshot_dir, "--save_dir", tmp_path / "masks"], capsys)
    assert code == 0, err
    reported = float(re.search(r"Mean IoU: ([0-9.]+)", out).group(1))
    model = build_model(load_weights(config.snapshot_dir))
    assert reported == pytest.approx(_numpy_miou(model, read_list(str(tmp_path), other)), abs=1e-4)
    assert "background" in out and "Pixel accuracy" in out
    assert sorted(os.listdir(tmp_path / "masks")) == ["img_0.png", "img_1.png", "img_2.png"]


def test_confusion_matrix_ignores_void_and_counts_rows_as_truth():
    labels = np.array([[0, 1, 255], [1, 1, 2]])
    preds = np.array([[0, 2, 1], [1, 0, 2]])
    cm = confusion_matrix(labels, preds, 3)
    assert cm.sum() == 5 and cm[1, 2] == 1 and cm[1, 0] == 1 and cm[2, 2] == 1
    assert scores(cm)["mean_iou"] == pytest.approx(np.mean([1 / 2, 1 / 3, 1 / 2]))  # class 2 also gets a false positive


def test_sgd_reproduces_caffe_update_with_multipliers_and_decay():
    w = tf.Variable([[1.0, -2.0]])
    b = tf.Variable([0.5])
    fc8 = tf.Variable([3.0])
    names = {"conv1_1/w": w, "conv1_1/b": b, "fc8_voc12/w": fc8}
    mult = caffe_lr_multipliers(names)
    assert mult == {"conv1_1/w": 1.0, "conv1_1/b": 2.0, "fc8_voc12/w": 10.0}
    opt = Optimizer(names, "sgd", learning_rate_schedule("fixed", 0.1, 10), momentum=0.9,
                    weight_decay=0.01, lr_mult=mult)
    grads = [tf.constant([[1.0, 1.0]]), tf.constant([1.0]), tf.constant([1.0])]
    opt.apply(grads, list(names.values()))
    np.testing.assert_allclose(w.numpy(), [[1 - 0.1 * (1 + 0.01), -2 - 0.1 * (1 - 0.02)]], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), [0.5 - 0.2 * 1.0], rtol=1e-6)  # biases: no decay, x2
    np.testing.assert_allclose(fc8.numpy(), [3 - 1.0 * (1 + 0.03)], rtol=1e-6)
    w1 = w.numpy().copy()
    opt.apply(grads, list(names.values()))  # Caffe: v2 = momentum * v1 + lr * (g + decay * w1); w2 = w1 - v2
    v1 = np.array([[0.1 * (1 + 0.01), 0.1 * (1 - 0.02)]])
    v2 = 0.9 * v1 + 0.1 * (1 + 0.01 * w1)
    np.testing.assert_allclose(w.numpy(), w1 - v2, rtol=1e-6)
    assert float(opt.iterations) == 2


def test_learning_rate_policies():
    assert float(learning_rate_schedule("step", 1e-3, 6000)(tf.constant(4500))) == pytest.approx(1e-5)
    assert float(learning_rate_schedule("poly", 1.0, 100)(tf.constant(50))) == pytest.approx(0.5 ** 0.9)
    assert float(learning_rate_schedule("fixed", 0.2, 100)(tf.constant(99))) == pytest.approx(0.2)


def test_train_py_flags_and_resume_continue_at_the_step(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)
    args = ["--data_dir", tmp_path, "--data_list", list_path, "--snapshot_dir", tmp_path / "snap",
            "--save_dir", tmp_path / "img", "--input_size", "64,64", "--batch_size", "2",
            "--width_multiplier", "0.125", "--save_pred_every", "3", "--optimizer", "sgd",
            "--learning_rate", "1e-3", "--weight_decay", "5e-4", "--lr_policy", "poly"]
    code, out, err = run_cli("train.py", args + ["--num_steps", "3"], capsys)
    assert code == 0, err
    assert re.search(r"step 3 \t loss = [0-9.]+, \([0-9.]+ sec/step", out)
    code, out, err = run_cli("train.py", args + ["--num_steps", "5"], capsys)
    assert code == 0, err
    assert "Resuming from" in out and "model.ckpt-3" in out and "from step 3 to 5" in out
    assert "step 4 " in out and "step 1 " not in out
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-5")


def test_not_restore_last_fine_tunes_to_new_classes(tmp_path, capsys, overfit):
    root, list_path, config = overfit
    args = ["--data_dir", root, "--data_list", list_path, "--snapshot_dir", tmp_path / "snap",
            "--save_dir", tmp_path / "img", "--input_size", "64,64", "--batch_size", "2", "--num_steps", "1",
            "--num_classes", "16", "--restore_from", config.snapshot_dir]
    code, out, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err, "21 classes, not 16", "--not_restore_last")
    code, out, err = run_cli("train.py", args + ["--not_restore_last"], capsys)
    assert code == 0, err
    weights = load_weights(str(tmp_path / "snap"))
    assert weights["fc8_voc12/b"].shape == (16,)


def test_a_non_finite_step_is_not_applied_and_is_recorded():
    from deeplab_lfov.model import DeepLabLargeFOV
    from deeplab_lfov.training.trainer import TrainStep
    model = DeepLabLargeFOV(width_multiplier=0.125, seed=0)
    opt = Optimizer(model.named_variables(), "adam", learning_rate_schedule("fixed", 1e-3, 10))
    step = TrainStep(tf.distribute.get_strategy(), model, opt, 21, 255)
    labels = tf.zeros([1, 33, 33], tf.int32)
    good = tf.random.stateless_uniform([1, 33, 33, 3], (1, 2), -100, 100)
    step((good, labels))
    before = model.fc6.w.numpy().copy()
    bias = model.fc8_voc12.b.numpy().copy()
    model.fc8_voc12.b.assign(np.full(21, np.inf, np.float32))  # infinite logits: a NaN loss
    assert not np.isfinite(float(step((good, labels))))
    model.fc8_voc12.b.assign(bias)
    step((good, labels))  # after a bad step nothing more is applied until the run stops
    np.testing.assert_array_equal(model.fc6.w.numpy(), before)
    assert int(step.bad_step.numpy()) == 2 and int(opt.iterations.numpy()) == 1


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_iter_size_2_of_batch_2_is_one_update_of_batch_4(kind):
    from deeplab_lfov.model import DeepLabLargeFOV
    from deeplab_lfov.training.trainer import TrainStep
    rng = np.random.RandomState(5)
    images = tf.constant(rng.uniform(-100, 100, size=(4, 41, 41, 3)), tf.float32)
    labels = rng.randint(0, 21, size=(4, 41, 41)).astype(np.int32)
    labels[0, 5:] = 255  # the two halves hold different numbers of valid pixels
    labels = tf.constant(labels)
    results = []
    for iter_size, batches in ((1, [(images, labels)]), (2, [(images[:2], labels[:2]), (images[2:], labels[2:])])):
        model = DeepLabLargeFOV(width_multiplier=0.125, seed=3, dropout_rate=0.0)
        variables = model.named_variables()
        opt = Optimizer(variables, kind, learning_rate_schedule("fixed", 1e-3, 10), weight_decay=5e-4,
                        lr_mult=caffe_lr_multipliers(variables) if kind == "sgd" else None)
        step = TrainStep(tf.distribute.get_strategy(), model, opt, 21, 255, iter_size=iter_size)
        loss = float(step.run(iter(batches)))
        results.append((loss, {k: v.numpy() for k, v in variables.items()}, int(opt.iterations)))
    (loss4, weights4, it4), (loss2, weights2, it2) = results
    assert it4 == it2 == 1 and loss2 == pytest.approx(loss4, rel=1e-5)
    initial = DeepLabLargeFOV(width_multiplier=0.125, seed=3).named_variables()
    for name in weights4:
        assert not np.array_equal(weights4[name], initial[name].numpy())  # every variable was updated
        difference = np.linalg.norm(weights2[name] - weights4[name]) / np.linalg.norm(weights4[name])
        assert difference < 1e-5, (name, difference)
        if kind == "sgd":  # element by element too; Adam's g / sqrt(g^2) amplifies float32 noise in near-zero g
            np.testing.assert_allclose(weights2[name], weights4[name], rtol=1e-5, atol=1e-5 * np.abs(weights4[name]).max())


def test_nan_loss_stops_with_the_step_and_keeps_the_last_snapshot(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)
    args = train_args(tmp_path, list_path, **{"--learning_rate": "1e30", "--num_steps": "20",
                                               "--save_pred_every": "100"})
    code, out, err = run_cli("train.py", args, capsys)
    assert_one_line_error(code, err)
    match = re.search(r"loss is (nan|inf) at step (\d+): training stopped[^;]*; the last good snapshot is (\S+)", err)
    assert match, err
    assert match.group(3).endswith("model.ckpt-0")
    assert tf.train.latest_checkpoint(str(tmp_path / "snap")).endswith("model.ckpt-0")


def test_the_same_run_twice_gives_the_same_snapshot_dropout_included(tmp_path, capsys):
    """--random_seed seeds the initialisation, the augmentation and dropout's masks (drop6, drop7): two runs of
    the same command write the same weights."""
    list_path = make_dataset(str(tmp_path), 2)
    weights = []
    for run in ("a", "b"):
        code, _, err = run_cli("train.py", train_args(tmp_path, list_path, **{"--snapshot_dir": tmp_path / run,
                                                                             "--save_pred_every": "2"}), capsys)
        assert code == 0, err
        reader = tf.train.load_checkpoint(str(tmp_path / run))
        weights.append({name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
                        if "fc" in name and "OPTIMIZER" not in name})
    assert weights[0] and weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
