"""The DeepLab-v2 nets through the programs, as a weakly-supervised researcher runs them: a ResNet-101
caffemodel with the released layer names and shapes (reduced width) converts, evaluates, segments,
exports a SavedModel that gives the in-process answers, and trains and resumes; DrSleep's TF1 names
load; ASPP-S and ASPP-L (same shapes) are told apart by --model and by the record a checkpoint keeps."""

import os

import numpy as np
import pytest
import tensorflow as tf

import caffe_v2 as cv
from deeplab_lfov.model.weights import load_model, load_weights, save_weights, weights_record
from helpers import SAMPLE, assert_one_line_error, run_cli

WIDTH = 1 / 16  # conv1 4 filters ... res5 128: the real topology, 101 layers, at a test's cost


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory):
    """util/extract_params.py on a reduced-width DeepLabv2_ResNet101 caffemodel (MSC copies included,
    as the released file has them); returns (checkpoint prefix, caffemodel path)."""
    root = tmp_path_factory.mktemp("resnet")
    caffemodel = root / "DeepLabv2_ResNet101.caffemodel"
    caffemodel.write_bytes(cv.caffemodel_bytes(cv.resnet101_blobs(WIDTH, 21, seed=3, msc_copies=True)))
    from deeplab_lfov.cli import extract_params, run
    with pytest.raises(SystemExit) as exc:
        run(extract_params.main, [str(caffemodel), "--output_dir", str(root / "converted")])
    assert exc.value.code == 0
    return str(root / "converted" / "deeplab_lfov.ckpt"), str(caffemodel)


def test_resnet_caffemodel_converts_with_its_model_recorded(resnet_ckpt):
    prefix, caffemodel = resnet_ckpt
    record = weights_record(prefix)
    assert record["model"] == "resnet101" and record["msc"] is True
    assert record["classes"].names[:3] == ("background", "aeroplane", "bicycle")  # the release is VOC's
    net = load_model(prefix)
    assert net.model_name == "resnet101" and net.msc and net.num_classes == 21
    direct = load_model(caffemodel)  # the caffemodel itself is weights too; same net, same answers
    x = tf.random.stateless_uniform([1, 49, 57, 3], (1, 2), -120, 140)
    np.testing.assert_allclose(net(x).numpy(), direct(x).numpy(), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_resnet_evaluates_and_segments(resnet_ckpt, tmp_path, capsys):
    prefix, _ = resnet_ckpt
    code, out, err = run_cli("evaluate.py", ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "val.txt"),
                                             "--restore_from", prefix, "--num_steps", "2", "--save_dir", ""], capsys)
    assert code == 0, err
    assert "Mean IoU: " in out
    image = os.path.join(SAMPLE, "JPEGImages", sorted(os.listdir(os.path.join(SAMPLE, "JPEGImages")))[0])
    code, out, err = run_cli("inference.py", [image, prefix, "--save_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    assert os.path.isfile(tmp_path / "out" / "mask.png")


@pytest.mark.slow
def test_resnet_exports_a_saved_model_with_the_in_process_answers(resnet_ckpt, tmp_path, capsys):
    prefix, _ = resnet_ckpt
    code, out, err = run_cli("util/export_model.py", [prefix, "--output_dir", tmp_path / "export", "--formats",
                                                      "saved_model"], capsys)
    assert code == 0, err
    assert "saved_model: serving_default 100.000%" in out  # verified against the in-process net before publishing
    serve = tf.saved_model.load(str(tmp_path / "export" / "saved_model")).signatures["serving_default"]
    rgb = np.random.RandomState(0).randint(0, 255, (1, 45, 61, 3)).astype(np.uint8)
    from deeplab_lfov.evaluation.predict import Predictor
    expected = Predictor(load_model(prefix)).labels(rgb[0])
    np.testing.assert_array_equal(serve(images=tf.constant(rgb))["labels"].numpy()[0], expected)


@pytest.mark.slow
def test_resnet_trains_resumes_and_keeps_its_model(resnet_ckpt, tmp_path, capsys):
    prefix, _ = resnet_ckpt
    args = ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "train.txt"), "--restore_from", prefix,
            "--snapshot_dir", tmp_path / "snap", "--save_dir", tmp_path / "img", "--input_size", "41,41",
            "--batch_size", "2", "--save_pred_every", "1", "--save_num_images", "0", "--optimizer", "sgd",
            "--lr_policy", "poly", "--learning_rate", "2.5e-4"]
    code, out, err = run_cli("train.py", args + ["--num_steps", "2"], capsys)
    assert code == 0, err
    assert "Restoring weights from" in out and "Training finished at step 2" in out
    snapshot = tf.train.latest_checkpoint(str(tmp_path / "snap"))
    record = weights_record(snapshot)  # from the run record and classes.json beside it
    assert record["model"] == "resnet101" and record["msc"] is True and len(record["classes"]) == 21
    frozen = load_weights(snapshot)
    original = load_weights(prefix)
    np.testing.assert_array_equal(frozen["bn2a_branch2a/moving_mean"], original["bn2a_branch2a/moving_mean"])
    assert not np.array_equal(frozen["fc1_voc12_c0/w"], original["fc1_voc12_c0/w"])  # the classifier trained
    # The resumed run rebuilds the recorded net (ResNet-101, MSC) and restores weights and SGD slots into it
    # (every object matched); it is already at its last step, so no second compile of the MSC step is paid.
    code, out, err = run_cli("train.py", args + ["--num_steps", "2"], capsys)
    assert code == 0, err
    assert f"Resuming from {tf.train.latest_checkpoint(str(tmp_path / 'snap'))}" in out and "from step 2 to 2" in out
    code, _, err = run_cli("train.py", args + ["--num_steps", "3", "--model", "largefov"], capsys)
    assert_one_line_error(code, err, "--model")


def test_drsleep_checkpoint_names_load(resnet_ckpt, tmp_path):
    """tensorflow-deeplab-resnet's deeplab_resnet.ckpt: conv1/weights, bn_conv1/gamma ..., fc1_voc12_c0/biases."""
    _, caffemodel = resnet_ckpt
    blobs = cv.resnet101_blobs(WIDTH, 21, seed=3)
    tf1 = save_weights(str(tmp_path / "deeplab_resnet.ckpt"), cv.drsleep_tf1_weights(blobs))
    net, reference = load_model(tf1), load_model(caffemodel)
    assert net.model_name == "resnet101" and net.msc  # the paper's recipe: MSC on
    x = tf.random.stateless_uniform([1, 41, 41, 3], (3, 4), -120, 140)
    np.testing.assert_allclose(net(x).numpy(), reference(x).numpy(), rtol=0, atol=1e-5)


def test_aspp_s_and_l_are_told_apart_by_model_and_record(tmp_path, capsys):
    caffemodel = tmp_path / "DeepLabv2_VGG16.caffemodel"
    caffemodel.write_bytes(cv.caffemodel_bytes(cv.aspp_vgg16_blobs("aspp-s", 1 / 16, 21, seed=1)))
    code, out, err = run_cli("util/extract_params.py", [caffemodel, "--output_dir", tmp_path / "s", "--model",
                                                        "aspp-s"], capsys)
    assert code == 0, err
    assert "aspp-s" in out
    prefix = str(tmp_path / "s" / "deeplab_lfov.ckpt")
    assert load_model(prefix).model_name == "aspp-s"  # the record, not the shapes' default (aspp-l)
    assert load_model(str(caffemodel)).model_name == "aspp-l"  # nothing recorded: the paper's released ASPP-L
    code, _, err = run_cli("evaluate.py", ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "val.txt"),
                                           "--restore_from", prefix, "--model", "aspp-l", "--num_steps", "1"], capsys)
    assert_one_line_error(code, err, "aspp-s", "--model aspp-l")
    code, _, err = run_cli("evaluate.py", ["--data_dir", SAMPLE, "--data_list", os.path.join(SAMPLE, "val.txt"),
                                           "--restore_from", prefix, "--model", "resnet101", "--num_steps", "1"],
                           capsys)
    assert_one_line_error(code, err, "--model resnet101")
