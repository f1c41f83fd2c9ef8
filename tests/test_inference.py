"""inference.py end to end: real image files in, a VOC palette PNG of the input size out."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deeplab_lfov.data.colormap import VOC_COLORS, palette
from helpers import FIXTURES, ROOT, assert_one_line_error, run_cli

CAFFEMODEL = f"{FIXTURES}/slim.caffemodel"


@pytest.mark.parametrize("mode,suffix", [("RGB", ".jpg"), ("L", ".png"), ("RGBA", ".png"), ("CMYK", ".jpg")])
def test_inference_writes_palette_png_of_input_size(tmp_path, capsys, mode, suffix):
    rgb = np.random.RandomState(0).randint(0, 255, size=(45, 61, 3), dtype=np.uint8)
    image = tmp_path / f"input{suffix}"
    Image.fromarray(rgb).convert(mode).save(image)
    code, out, err = run_cli("inference.py", [image, CAFFEMODEL, "--save_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    mask = Image.open(tmp_path / "out" / "mask.png")
    assert mask.mode == "P" and mask.size == (61, 45)
    assert mask.getpalette()[:63] == palette()[:63]
    from deeplab_lfov.data.images import read_image
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model.weights import build_model, load_weights
    expected = Predictor(build_model(load_weights(CAFFEMODEL))).labels(read_image(str(image)))
    np.testing.assert_array_equal(np.asarray(mask), expected)  # the mask holds the model's labels


def test_inference_as_a_subprocess_prints_nothing_but_its_result(tmp_path):
    image = tmp_path / "gray.png"
    Image.fromarray(np.full((30, 20), 128, np.uint8)).save(image)
    proc = subprocess.run([sys.executable, "inference.py", str(image), CAFFEMODEL, "--save_dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert Image.open(tmp_path / "mask.png").size == (20, 30)

    proc = subprocess.run([sys.executable, "inference.py", str(tmp_path / "nope.jpg"), CAFFEMODEL],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, "nope.jpg")


def test_an_inference_process_keeps_its_filters_and_the_same_labels(tmp_path):
    """inference.py declares its process inference-only (oneDNN reorders each filter once and keeps it):
    over images of several sizes, odd and even (each compiles other convolutions, the kept filters are
    reused or reordered again), the masks are the labels of a process that reads the filters every call."""
    from deeplab_lfov.data.images import read_image
    from deeplab_lfov.evaluation.predict import Predictor
    from deeplab_lfov.model.weights import build_model, load_weights
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.RandomState(3)
    for i, (h, w) in enumerate([(45, 61), (64, 64), (33, 50), (45, 61)]):
        Image.fromarray(rng.randint(0, 255, size=(h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    proc = subprocess.run([sys.executable, "-c", "import os; from deeplab_lfov.core.runtime import frozen_weights_process"
                           " as f; f(); print(os.environ.get('TF_ONEDNN_ASSUME_FROZEN_WEIGHTS'))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "1", proc.stderr  # what inference.py's entry point sets before TensorFlow
    proc = subprocess.run([sys.executable, "inference.py", str(folder), CAFFEMODEL, "--save_dir", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    predictor = Predictor(build_model(load_weights(CAFFEMODEL)))
    for i in range(4):
        expected = predictor.labels(read_image(str(folder / f"{i}.png")))
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")), expected)


def test_frozen_weights_process_only_before_tensorflow(monkeypatch):
    from deeplab_lfov.core.runtime import FROZEN_WEIGHTS_ENV, frozen_weights_process
    monkeypatch.delenv(FROZEN_WEIGHTS_ENV, raising=False)
    assert frozen_weights_process() is False  # TensorFlow is imported here: too late, nothing is set
    assert FROZEN_WEIGHTS_ENV not in os.environ
    monkeypatch.setenv(FROZEN_WEIGHTS_ENV, "0")  # the user's choice wins
    assert frozen_weights_process() is False


def test_inference_errors(tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    code, _, err = run_cli("inference.py", [broken, CAFFEMODEL], capsys)
    assert_one_line_error(code, err, "broken.jpg", "cannot decode image")

    image = tmp_path / "ok.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(image)
    code, _, err = run_cli("inference.py", [image, tmp_path / "no.ckpt"], capsys)
    assert_one_line_error(code, err, "no.ckpt")


def test_colour_map_matches_voc():
    expect = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 8: (64, 0, 0), 15: (192, 128, 128),
              20: (0, 64, 128), 255: (224, 224, 192)}
    for index, rgb in expect.items():
        assert tuple(VOC_COLORS[index]) == rgb
