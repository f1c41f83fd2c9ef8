"""util/export_model.py: a SavedModel that loads without this project and gives the evaluated labels
through both signatures and its class names; TFLite files within their agreement thresholds, with named
signatures, labels files and model.json; each artifact published on its own; bad input is one line."""

import json
import os
import re
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
result = {"class_names": [n.decode() for n in loaded.class_names.numpy()],
          "class_colors": loaded.class_colors.numpy().tolist(),
          "classes_file": open(loaded.classes_file.asset_path.numpy().decode()).read()}
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
@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
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
    from deeplab_lfov.data.classes import VOC
    assert served["class_names"] == list(VOC.names) and served["class_colors"][1] == [128, 0, 0]
    assert served["classes_file"] == VOC.to_text()  # the asset: the classes file format, names and colours
    for path in paths:
        expected = predictor.labels(read_image(path))
        np.testing.assert_array_equal(np.array(served[path]["labels"]), expected)
        np.testing.assert_array_equal(np.array(served[path]["png_labels"]), expected)
        assert served[path]["probs_shape"] == [1, *expected.shape, 21]


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
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


def test_tflite_files_have_named_signatures_labels_files_and_their_preprocessing_in_model_json(tmp_path, capsys,
                                                                                            monkeypatch):
    from deeplab_lfov.deploy import export
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--formats", "tflite",
                                                      "--tflite_size", "65"], capsys)
    assert code == 0, err
    name = "deeplab_lfov_65x65_none.tflite"
    interpreter = export.tflite_interpreter(str(tmp_path / name))  # LiteRT's (make's set-up installs it)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"],
                                                                    "outputs": ["labels", "probabilities"]}}
    assert [d["name"] for d in interpreter.get_input_details()] == ["images"]
    assert sorted(d["name"] for d in interpreter.get_output_details()) == ["labels", "probabilities"]
    rgb = read_image(os.path.join(IMAGES, "sample_002.jpg"))[:65, :65]
    canvas = np.empty((1, 65, 65, 3), np.float32)
    canvas[:] = [122.679, 116.669, 104.007]
    canvas[0, :rgb.shape[0], :rgb.shape[1]] = rgb
    out_ = interpreter.get_signature_runner("serving_default")(images=canvas)
    assert out_["labels"].dtype == np.uint8 and out_["labels"].shape == (1, 65, 65)
    np.testing.assert_array_equal(out_["labels"], out_["probabilities"].argmax(-1))
    from deeplab_lfov.data.classes import VOC
    assert (tmp_path / "deeplab_lfov_65x65_none.labels.txt").read_text().splitlines() == list(VOC.names)
    described = json.loads((tmp_path / "model.json").read_text())
    entry = described["artifacts"][name]
    assert entry["input"]["name"] == "images" and entry["input"]["shape"] == [1, 65, 65, 3]
    assert entry["input"]["channel_order"] == "RGB" and entry["input"]["mean_rgb"] == [122.679, 116.669, 104.007]
    assert "mean_rgb" in entry["input"]["padding"] and entry["labels_file"] == "deeplab_lfov_65x65_none.labels.txt"
    assert entry["outputs"]["probabilities"]["shape"] == [1, 65, 65, 21] and entry["agreement"] >= 0.999
    assert entry["size_bytes"] == os.path.getsize(tmp_path / name) and entry["latency_seconds"] > 0
    assert described["classes"]["names"] == list(VOC.names) and described["classes"]["colors"][15] == [192, 128, 128]
    # the run ends with a table: artifact, agreement, size, latency, published or why not
    header = next(line for line in out.splitlines() if line.startswith("artifact"))
    assert header.split() == ["artifact", "agreement", "needs", "size", "latency", "result"]
    row = next(line for line in out.splitlines() if line.startswith(name) and line.endswith("published"))
    assert "MB" in row and " s " in row

    # the interpreter: LiteRT's, else TensorFlow's (the same answers), else one line saying what to install
    import importlib.util
    import types
    import warnings

    from deeplab_lfov.core.errors import DeepLabError
    litert = export.tflite_interpreter(str(tmp_path / name), 1)
    litert_installed = importlib.util.find_spec("ai_edge_litert") is not None  # requirements-tflite.txt
    assert type(litert).__module__.startswith("ai_edge_litert" if litert_installed else "tensorflow")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # not installed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        fallback = export.tflite_interpreter(str(tmp_path / name), 1)
    assert type(fallback).__module__.startswith("tensorflow")
    for interpreter in (litert, fallback):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], canvas)
        interpreter.invoke()
    probs = [next(i.get_tensor(d["index"]) for d in i.get_output_details() if d["name"] == "probabilities")
             for i in (litert, fallback)]
    np.testing.assert_array_equal(probs[0], probs[1])
    if litert_installed:  # a LiteRT older than the converter (an operation version it lacks): TF's runs the file
        class TooOld(type(litert)):
            def allocate_tensors(self):
                raise RuntimeError("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", types.SimpleNamespace(Interpreter=TooOld))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert type(export.tflite_interpreter(str(tmp_path / name), 1)).__module__.startswith("tensorflow")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setattr(export, "tf", types.SimpleNamespace(lite=types.SimpleNamespace()))  # a TF without it
    with pytest.raises(DeepLabError, match=r"\.tflite file needs the LiteRT interpreter.*pip install ai-edge-litert"):
        export.tflite_interpreter(str(tmp_path / name))


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
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--min_agreement", "int4=0.9"], capsys)
    assert_one_line_error(code, err, "--min_agreement", "int4", "saved_model, none, float16, dynamic")
    code, _, err = run_cli("util/export_model.py", [CAFFEMODEL, "--min_agreement", "dynamic=95"], capsys)
    assert_one_line_error(code, err, "--min_agreement dynamic=95", "fraction in (0, 1]")


@pytest.mark.slow  # > ~8 s on 2 cores; make test and CI run it
def test_each_artifact_is_published_on_its_own(tmp_path, capsys, monkeypatch):
    from deeplab_lfov.deploy import export
    earlier = tmp_path / "deeplab_lfov_97x97_none.tflite"
    earlier.write_bytes(b"an earlier export")
    monkeypatch.setitem(export.MIN_AGREEMENT, "none", 1.01)  # no fp32 file can pass
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--tflite_size", "97",
                                                      "--tflite_quantize", "none,float16"], capsys)
    assert_one_line_error(code, err, "1 of 3 artifacts not published", "deeplab_lfov_97x97_none.tflite",
                          "below its 101%", "--min_agreement none=", "2 published")
    assert earlier.read_bytes() == b"an earlier export"  # the one that failed leaves the earlier file as it was
    assert sorted(os.listdir(tmp_path)) == ["classes.txt", "deeplab_lfov_97x97_float16.labels.txt",
                                            "deeplab_lfov_97x97_float16.tflite", "deeplab_lfov_97x97_none.tflite",
                                            "model.json", "saved_model"]  # no staging folder left either
    assert sorted(json.loads((tmp_path / "model.json").read_text())["artifacts"]) == [
        "deeplab_lfov_97x97_float16.tflite", "saved_model"]
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("saved_model ", "deeplab_"))}
    assert rows["saved_model"].endswith("published") and rows["deeplab_lfov_97x97_float16.tflite"].endswith("published")
    assert "NOT published" in rows["deeplab_lfov_97x97_none.tflite"]
    # The threshold the message names accepts it.
    accept = re.search(r"--min_agreement (none=[0-9.]+)", err).group(1)
    monkeypatch.setitem(export.MIN_AGREEMENT, "none", 0.999)
    code, out, err = run_cli("util/export_model.py", [CAFFEMODEL, "--output_dir", tmp_path, "--tflite_size", "97",
                                                      "--formats", "tflite", "--min_agreement", accept], capsys)
    assert code == 0, err
    assert earlier.read_bytes() != b"an earlier export"
