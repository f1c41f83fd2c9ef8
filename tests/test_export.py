"""util/export_model.py: a SavedModel that loads without this project and gives the evaluated labels
through both signatures; TFLite files within their agreement thresholds; bad input is one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deeplab_lfov.data.images import read_image
from deeplab_lfov.data.inputs import gather
from deeplab_lfov.evaluation.predict import Predictor
from deeplab_lfov.model.weights import build_model, load_weights
from helpers import FIXTURES, SAMPLE, assert_one_line_error, run_cli

CAFFEMODEL = os.path.join(FIXTURES, "slim.caffemodel")
IMAGES = os.path.join(SAMPLE, "JPEGImages")

# Runs in a fresh process in which importing deeplab_lfov fails: TensorFlow alone serves the model.
SERVE = r"""
import io, json, sys
sys.modules["deeplab_lfov"] = None
import numpy as np, tensorflow as tf
from PIL import Image
model_dir, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    import deeplab_lfov
    raise SystemExit("deeplab_lfov should not be importable here")
except ImportError:
    pass
loaded = tf.saved_model.load(model_dir)
serve, encoded = loaded.signatures["serving_default"], loaded.signatures["segment_encoded"]
result = {}
for path in paths:
    rgb = np.asarray(Image.open(path).convert("RGB"))
    direct = serve(images=tf.constant(rgb[None]))
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    png = encoded(image_bytes=tf.constant([buffer.getvalue()]))["labels_png_bytes"][0].numpy()
    result[path] = {"labels": direct["labels"].numpy()[0].tolist(),
                    "probs_shape": list(direct["probabilities"].shape),
                    "png_labels": np.asarray(Image.open(io.BytesIO(png))).tolist()}
json.dump(result, open(out, "w"))
"""


@pytest.mark.parametrize("extra", [[], ["--pad_to", "513"]])
def test_saved_model_serves_the_evaluated_labels_without_this_project(tmp_path, capsys, extra):
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path / "export", "--formats",
                                                      "saved_model"] + extra, capsys)
    assert code == 0, err
    assert "saved_model: serving_default 100.000%, segment_encoded 100.000%" in out
    paths = [item.path for item in gather(IMAGES)[0][:4]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export" / "saved_model"),
                           str(tmp_path / "served.json"), *paths], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    served = json.loads((tmp_path / "served.json").read_text())
    predictor = Predictor(build_model(load_weights(CAFFEMODEL)), pad_to=513 if extra else None)
    for path in paths:
        expected = predictor.labels(read_image(path))
        np.testing.assert_array_equal(np.array(served[path]["labels"]), expected)
        np.testing.assert_array_equal(np.array(served[path]["png_labels"]), expected)
        assert served[path]["probs_shape"] == [1, *expected.shape, 21]


def test_tflite_files_meet_their_agreement_thresholds(tmp_path, capsys, trained_slim):
    from deeplab_lfov.deploy.export import TFLiteSegmenter
    code, out, err = run_cli("util/export_model.py", [trained_slim, "--output_dir", tmp_path, "--formats", "tflite",
                                                      "--tflite_size", "161", "--tflite_quantize",
                                                      "none,float16,dynamic"], capsys)
    assert code == 0, err
    for quantization, need in (("none", 99.9), ("float16", 99.5), ("dynamic", 98.0)):
        name = f"deeplab_lfov_161x161_{quantization}.tflite"
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert float(line.split(": ")[1].split("%")[0]) >= need, line
    # The helper runs it on an image of any size: a larger one is downscaled and comes back at its size.
    segmenter = TFLiteSegmenter(str(tmp_path / "deeplab_lfov_161x161_none.tflite"))
    big = np.tile(read_image(os.path.join(IMAGES, "sample_000.jpg")), (2, 2, 1))
    assert segmenter.labels(big).shape == big.shape[:2]
    small = read_image(os.path.join(IMAGES, "sample_001.jpg"))
    reference = Predictor(build_model(load_weights(trained_slim)), pad_to=161).labels(small)
    assert np.mean(segmenter.labels(small) == reference) >= 0.999


def test_export_refusals_are_one_line_and_leave_nothing(tmp_path, capsys):
    code, _, err = run_cli("util/export_model.py", [tmp_path / "missing.ckpt", "--output_dir", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "missing.ckpt")
    (tmp_path / "file").write_text("")
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path / "file" / "o"], capsys)
    assert_one_line_error(code, err, "--output_dir is not writable")
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--formats", "onnx"], capsys)
    assert_one_line_error(code, err, "--formats", "onnx")
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--tflite_quantize", "int4"], capsys)
    assert_one_line_error(code, err, "--tflite_quantize", "int4")


def test_a_failed_verification_removes_every_artifact(tmp_path, capsys, monkeypatch):
    from deeplab_lfov.deploy import export
    monkeypatch.setitem(export.MIN_AGREEMENT, "none", 1.01)  # no file can pass
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--tflite_size", "97"],
                           capsys)
    assert_one_line_error(code, err, "deeplab_lfov_97x97_none.tflite", "nothing exported")
    assert os.listdir(tmp_path) == []  # the SavedModel, verified first, is not left behind either
