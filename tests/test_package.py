"""The project installs as a package: pip install into a fresh venv, console entry points, no checkout needed."""

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from helpers import FIXTURES, ROOT


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_gives_working_entry_points(tmp_path):
    # A copy of the checkout (pip builds in the source tree; the checkout itself stays untouched).
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "demo_run", "__pycache__", "build",
                                                                "*.egg-info", "snapshots", "images_val", "output"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The fresh venv sees this environment's dependencies (TensorFlow ...) through a .pth file, so the test
    # needs no network; the package itself is installed for real, without dependencies.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "deps-of-the-test-environment.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--ignore-installed",
                              "--no-build-isolation", str(source)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*argv):
        proc = subprocess.run([str(a) for a in argv], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "IMG_PATH" in run(venv / "bin" / "deeplab-lfov-infer", "--help").replace("img_path", "IMG_PATH")
    assert "--snapshot_dir" in run(venv / "bin" / "deeplab-lfov-train", "--help")
    for name in ("deeplab-lfov-evaluate", "deeplab-lfov-check-data", "deeplab-lfov-extract-params",
                 "deeplab-lfov-crf-refine", "deeplab-lfov-crf-search", "deeplab-lfov-prepare-voc",
                 "deeplab-lfov-export", "deeplab-lfov-convert-labels"):
        assert "usage:" in run(venv / "bin" / name, "--help")
    where = run(python, "-c", "import deeplab_lfov; print(deeplab_lfov.__file__)").strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    out = run(venv / "bin" / "deeplab-lfov-extract-params", os.path.join(FIXTURES, "slim.caffemodel"),
              "--output_dir", elsewhere / "converted")
    # the LargeFOV deploy net ships inside the package (what --pycaffe_path reads by default)
    assert os.path.isfile(run(python, "-c", "from deeplab_lfov.model.caffe_import import DEPLOY_PROTOTXT as p; "
                                            "print(p)").strip())
    assert "Converted 16 layers" in out and os.path.exists(elsewhere / "converted" / "deeplab_lfov.ckpt.index")


CLI_MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "deeplab_lfov", "cli")) if not f.startswith("_"))


def test_every_program_has_a_console_command_and_runs_with_python_m():
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert sorted(v.split(":")[0].rsplit(".", 1)[1] for v in scripts.values()) == CLI_MODULES
    for name in CLI_MODULES:  # python -m deeplab_lfov.cli.NAME --help prints its usage (it printed nothing)
        proc = subprocess.run([sys.executable, "-m", f"deeplab_lfov.cli.{name}", "--help"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (name, proc.stdout, proc.stderr)


def test_help_and_settings_errors_do_not_import_tensorflow():
    """TensorFlow is imported once the settings are valid, so --help and settings errors answer at once
    (bench/bench.py measures the time: its start-up row)."""
    code = ("import runpy, sys\n"
            "sys.argv = ['train.py'] + sys.argv[1:]\n"
            "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
            "except SystemExit as e:\n    print('exit', e.code, 'tensorflow' in sys.modules)\n")
    for argv, code_expected in ((["--help"], 0), (["--batch_size", "0"], 2), (["--output", "x"], 2)):
        proc = subprocess.run([sys.executable, "-c", code] + argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip().splitlines()[-1] == f"exit {code_expected} False", (argv, proc.stdout, proc.stderr)


def test_flags_are_never_abbreviated(capsys):
    from helpers import run_cli
    code, _, err = run_cli("inference.py", ["x.jpg", "w.ckpt", "--output", "mask"], capsys)
    assert code == 2 and "unrecognized arguments: --output" in err  # argparse's error: --output is not --outputs


def test_crf_refine_offers_no_crf_flag_and_export_refuses_the_pydensecrf_backend(capsys):
    from helpers import assert_one_line_error, run_cli
    assert "--crf " not in subprocess.run([sys.executable, "util/crf_refine.py", "--help"], cwd=ROOT,
                                          capture_output=True, text=True).stdout
    code, _, err = run_cli("util/export_model.py", ["w.ckpt", "--crf", "--crf_backend", "pydensecrf"], capsys)
    assert_one_line_error(code, err, "--crf_backend pydensecrf", "TensorFlow CRF")


def test_a_default_list_missing_from_the_working_directory_says_so(tmp_path, monkeypatch, capsys):
    from helpers import assert_one_line_error, run_cli
    monkeypatch.chdir(tmp_path)  # a console command run away from the checkout
    code, _, err = run_cli("train.py", [], capsys)
    assert_one_line_error(code, err, "no --data_list given", "./dataset/train.txt", str(tmp_path))


def test_a_checkpoint_file_name_is_taken_as_its_prefix(tmp_path):
    from deeplab_lfov.model.weights import load_weights, resolve_checkpoint, save_weights
    prefix = save_weights(str(tmp_path / "model.ckpt-500"), {"conv1_1/w": np.ones((3, 3, 3, 2), np.float32)})
    for given in (prefix + ".index", prefix + ".data-00000-of-00001", prefix):
        assert resolve_checkpoint(given) == prefix
    assert load_weights(prefix + ".index")["conv1_1/w"].shape == (3, 3, 3, 2)
