"""The benchmark cannot rot, and low precision stays faithful."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_lfov.model import DeepLabLargeFOV, build_net, conv_flops
from deeplab_lfov.model.weights import build_model
from deeplab_lfov.training.optim import Optimizer, learning_rate_schedule
from helpers import MANIFEST, ROOT, SUBPROCESS_ENV, case_input, recipe_weights_tf


@pytest.mark.slow  # ~30-60 s on 2 cores; still run in CI
def test_benchmark_runs_in_a_tiny_configuration():
    # The family rows of one net (the rows are the same code for every preset; ResNet-101's compile alone
    # would double this test: its training step is exercised by tests/test_model_programs.py).
    proc = subprocess.run([sys.executable, os.path.join("bench", "bench.py"), "--tiny", "--json", "--models",
                           "aspp-s"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=SUBPROCESS_ENV)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    names = [r["name"] for r in result["rows"]]
    assert any(n.startswith("inference") and "[fp32]" in n for n in names)
    assert any(n.startswith("train step") and "[fp32 xla]" in n for n in names)
    assert any("[bf16]" in n for n in names)
    slim = DeepLabLargeFOV(width_multiplier=0.125, seed=0)
    for r in result["rows"]:  # each figure is what its definition says, from the row's own timing
        assert r["min_s"] <= r["median_s"] <= r["max_s"]
        size = int(re.search(r"(\d+)x\d+", r["name"]).group(1))
        images = 2 if r["name"].startswith("train") else 1
        flops = conv_flops(slim, size, size) * (3 * images if r["name"].startswith("train") else 1)
        assert r["gflops"] == pytest.approx(flops / r["median_s"] / 1e9, rel=1e-6)
        assert r["ratio_to_matmul"] == pytest.approx(r["gflops"] / result["matmul_gflops"], rel=1e-6)
        assert r["images_per_s"] == pytest.approx(images / r["median_s"], rel=1e-6)
    consumed = max(r["images_per_s"] for r in result["rows"] if r["name"].startswith("train") and "fp32" in r["name"])
    assert result["pipeline_to_training_ratio"] == pytest.approx(result["pipeline_images_per_s"] / consumed, rel=1e-6)
    assert 100 < result["peak_rss_mb_inference_513"] < 4000
    assert result["collection_to_bare_ratio"] == pytest.approx(
        result["collection_images_per_s"] / result["bare_forward_images_per_s"], rel=1e-6)
    assert result["large_photo"] == "800x600 --max_size 256" and 100 < result["peak_rss_mb_large_photo"] < 4000
    assert {"saved_model_s", "tflite_none_s", "tflite_dynamic_s"} <= set(result)
    assert result["crf_tf_to_pydensecrf_ratio"] == pytest.approx(result["crf_tf_s"] / result["crf_pydensecrf_s"])
    assert isinstance(result["crf_target_met"], bool) and result["crf_labels_agree"] >= 0.9
    # evaluation with the CRF overlapped with the net gives the sequential scores; crf_refine per backend
    assert result["eval_crf_confusion_equals_sequential"] is True
    assert result["eval_crf_to_slower_ratio"] == pytest.approx(result["eval_crf_images_per_s"] / min(
        result["eval_images_per_s"], result["crf_alone_images_per_s"]))
    assert result["refine_tf_images_per_s"] > 0 and result["refine_pydensecrf_images_per_s"] > 0
    assert result["refine_voc_tf_images_per_s"] > 0 and result["refine_voc_tf_to_pydensecrf_ratio"] == pytest.approx(
        result["refine_voc_tf_images_per_s"] / result["refine_voc_pydensecrf_images_per_s"])
    assert isinstance(result["refine_target_met"], bool)
    assert all(result[f"refine{voc}_{backend}_cpu_s_per_image"] > 0
               for voc in ("", "_voc") for backend in ("tf", "pydensecrf"))
    assert 100 < result["crf_tf_peak_rss_mb"] < 4000
    # the PyTorch rows (bench/torch_peer.py): numbers with PyTorch installed, else a one-line note
    peer = result["torch_peer"]
    if importlib.util.find_spec("torch") is None:
        assert peer["skipped"].startswith("torch not installed") and peer["target_met"] is None
    else:
        assert sorted(peer["inference"]["sizes"]) == ["33", "65"] and peer["train"]["train"]["ratio"] > 0
        assert peer["target_met"] is None  # the slim net: no target is judged
    # the command start-up row (its target, < 1.5 s, is judged by bench at full size, not here)
    assert 0 < result["startup_help_s"] < 60 and isinstance(result["startup_target_met"], bool)
    # the model family: each of the paper's nets forward at two sizes and a training step, its FLOPs
    family = {r["name"]: r for r in result["family_rows"]}
    assert sorted(result["family"]) == ["aspp-s"]
    for name in ("aspp-s",):
        net = build_net(name, 21, width_multiplier=1 / 16)
        info = result["family"][name]
        assert info["params"] == net.count_params() and info["msc"] is False
        for size in (33, 41):
            r = family[f"{name} forward {size}x{size} b1"]
            assert info[f"gflops_forward_{size}"] == pytest.approx(conv_flops(net, size, size) / 1e9)
            assert r["gflops"] == pytest.approx(conv_flops(net, size, size) / r["median_s"] / 1e9, rel=1e-6)
        assert f"{name} train step 33x33 b2" in family


def test_conv_flops_match_the_published_count():
    model = DeepLabLargeFOV(seed=0)
    assert abs(conv_flops(model, 321, 321) / 1e9 - 101.9) < 0.1
    assert abs(conv_flops(model, 513, 513) / 1e9 - 257.2) < 0.2


def test_bf16_predictions_agree_with_fp32_on_the_fixture_inputs():
    for net in ("slim", "full"):
        weights = recipe_weights_tf(net)
        fp32, bf16 = build_model(weights), build_model(weights, compute_dtype=tf.bfloat16)
        for case in (c for c in MANIFEST["cases"] if c["net"] == net):
            x = tf.constant(case_input(case))
            agree = np.mean(fp32.predict_labels(x).numpy() == bf16.predict_labels(x).numpy())
            # >= 99.1% where the CPU has bf16 instructions (oneDNN); 98.9% with Eigen's emulated bf16.
            assert agree >= 0.985, (case["file"], agree)


def test_fp16_loss_scaling_skips_overflowing_steps():
    w = tf.Variable([1.0, 2.0])
    opt = Optimizer({"conv1_1/w": w}, "sgd", learning_rate_schedule("fixed", 0.1, 10))
    opt.apply_if_finite([tf.constant([np.inf, 1.0])], [w])
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    assert float(opt.loss_scale) == 2.0 ** 14 and int(opt.iterations) == 0
    opt.apply_if_finite([tf.constant([1.0, 1.0])], [w])
    np.testing.assert_allclose(w.numpy(), [0.9, 1.9])
    assert int(opt.iterations) == 1


def test_mixed_precision_training_step_keeps_fp32_variables():
    from deeplab_lfov.training.trainer import TrainStep
    gpu = bool(tf.config.list_physical_devices("GPU"))
    for dtype in (tf.bfloat16, tf.float16) if gpu else (tf.bfloat16,):  # no fp16 dilated convs on CPUs
        model = DeepLabLargeFOV(width_multiplier=0.125, seed=0, compute_dtype=dtype)
        opt = Optimizer(model.named_variables(), "adam", learning_rate_schedule("fixed", 1e-3, 10))
        step = TrainStep(tf.distribute.get_strategy(), model, opt, 21, 255)
        x = tf.random.stateless_uniform([2, 48, 48, 3], (0, 1), -100, 100)
        y = tf.random.stateless_uniform([2, 48, 48], (0, 2), 0, 21, dtype=tf.int32)
        before = model.conv1_1.w.numpy().copy()
        assert np.isfinite(float(step((x, y))))
        assert model.conv1_1.w.dtype == tf.float32 and not np.array_equal(before, model.conv1_1.w.numpy())


def test_train_py_precision_flags(tmp_path, capsys):
    from helpers import assert_one_line_error, make_dataset, run_cli
    list_path = make_dataset(str(tmp_path), 2)
    args = ["--data_dir", tmp_path, "--data_list", list_path, "--snapshot_dir", tmp_path / "snap", "--save_dir",
            tmp_path / "img", "--input_size", "48,48", "--batch_size", "2", "--num_steps", "1",
            "--width_multiplier", "0.125"]
    code, out, err = run_cli("train.py", args + ["--precision", "bf16"], capsys)
    assert code == 0, err
    if not tf.config.list_physical_devices("GPU"):
        code, out, err = run_cli("train.py", args + ["--precision", "fp16"], capsys)
        assert_one_line_error(code, err, "--precision fp16 needs a GPU")


def test_the_refine_rows_cpu_seconds_count_worker_processes_once_they_are_joined_and_tensorflow_stays_out_of_them():
    """The pydensecrf rows' CPU time is this process's and its ended workers' (RUSAGE_CHILDREN); the workers
    are spawned processes, which run bench.py's top level again: it must not import TensorFlow there."""
    spec = importlib.util.spec_from_file_location("crf_rows_under_test", os.path.join(ROOT, "bench", "crf_rows.py"))
    crf_rows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crf_rows)
    before = crf_rows._cpu_seconds()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"],
                   check=True)
    assert crf_rows._cpu_seconds() - before >= 0.35
    check = ("import runpy, sys; sys.path.insert(0, 'bench'); runpy.run_path('bench/bench.py', run_name='__mp_main__'); "
             "print('tensorflow' in sys.modules)")
    worker = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert worker.returncode == 0 and worker.stdout.strip() == "False", worker.stderr
