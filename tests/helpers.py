"""Shared test helpers: golden fixtures, the weight recipe, small datasets, and running the programs in-process.

Imported by the tests as ``from helpers import ...``; the pytest fixtures are in ``conftest.py``.
"""

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from deeplab_lfov.core import _tf  # noqa: F401  (imports TensorFlow quietly)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# A subprocess finds the checkout's package whether or not it is installed.
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
                      PYTHONUNBUFFERED="1")

with open(os.path.join(FIXTURES, "MANIFEST.json")) as f:
    MANIFEST = json.load(f)

LAYER_ORDER = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
               "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "fc8_voc12"]


def recipe_weights_caffe(net: str):
    """The manifest's weight recipe: {layer: (w [out,in,kh,kw], b)} exactly as fed to Caffe."""
    spec = MANIFEST["nets"][net]
    rng = np.random.RandomState(spec["weight_seed"])
    out = {}
    for name in LAYER_ORDER:
        o, i, kh, kw = spec["param_shapes_caffe_layout"][name]["weight"]
        w = rng.normal(0.0, np.sqrt(2.0 / (i * kh * kw)), size=(o, i, kh, kw)).astype(np.float32)
        b = rng.uniform(-0.1, 0.1, size=(o,)).astype(np.float32)
        out[name] = (w, b)
    return out


def recipe_weights_tf(net: str):
    """The recipe weights under classic TF names and layouts (HWIO)."""
    out = {}
    for name, (w, b) in recipe_weights_caffe(net).items():
        out[f"{name}/w"] = w.transpose(2, 3, 1, 0).copy()
        out[f"{name}/b"] = b
    return out


def case_input(case) -> np.ndarray:
    """The case's input (NHWC), from the npz or, where it was left out, from the input recipe."""
    data = np.load(os.path.join(FIXTURES, case["file"]))
    if "input_nchw" in data.files:
        x = data["input_nchw"]
    else:
        h, w = case["input_hw"]
        x = np.random.RandomState(case["seed"]).uniform(-120, 140, size=(1, 3, h, w)).astype(np.float32)
    return x.transpose(0, 2, 3, 1)


# The classic scripts and the package modules whose ``main`` they call.
SCRIPTS = {"train.py": "train", "evaluate.py": "evaluate", "inference.py": "infer",
           "util/extract_params.py": "extract_params", "util/check_data.py": "check_data",
           "util/crf_search.py": "crf_search", "util/prepare_voc.py": "prepare_voc",
           "util/export_model.py": "export_model", "util/convert_labels.py": "convert_labels",
           "util/crf_refine.py": "crf_refine"}


def run_cli(relpath: str, argv, capsys):
    """Run a script's main through ``cli.run`` as the shell would; returns (exit code, out, err)."""
    from deeplab_lfov import cli
    module = importlib.import_module(f"deeplab_lfov.cli.{SCRIPTS[relpath]}")
    with pytest.raises(SystemExit) as exc:
        cli.run(module.main, [str(a) for a in argv])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    """Exit code 2, a single ``error:`` line, no traceback, mentioning every needle."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def make_dataset(root, num: int, seed: int = 0, name: str = "train.txt"):
    """A small VOC-layout dataset (JPEG images, palette PNG labels) made by the sample generator."""
    from deeplab_lfov.data.sample_data import write_pairs
    lines = write_pairs(str(root), [f"img_{i}" for i in range(num)], np.random.RandomState(seed), quality=95)
    list_path = os.path.join(root, name)
    with open(list_path, "w") as f:
        f.writelines(lines)
    return str(list_path)


SAMPLE = os.path.join(ROOT, "dataset", "sample")


def train_args(root, list_path, **extra):
    """train.py flags for a tiny run on ``list_path`` (slim net, 48x48, 2 steps); ``extra`` overrides."""
    args = {"--data_dir": root, "--data_list": list_path, "--snapshot_dir": root / "snap",
            "--save_dir": root / "img", "--input_size": "48,48", "--batch_size": "2", "--num_steps": "2",
            "--width_multiplier": "0.125", "--save_pred_every": "1"}
    args.update(extra)
    return [str(x) for kv in args.items() for x in kv]


def spawn_training(args):
    """``train.py`` in a subprocess, its output on a pipe."""
    return subprocess.Popen([sys.executable, "train.py"] + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=SUBPROCESS_ENV)


def wait_for(predicate, proc, timeout=120):
    """Poll ``predicate`` until it holds; fail if ``proc`` ends first or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("timed out")
