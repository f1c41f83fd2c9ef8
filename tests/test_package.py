"""The project installs as a package: pip install into a fresh venv, console entry points, no checkout needed."""

import os
import shutil
import subprocess
import sys
import sysconfig

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
    for name in ("deeplab-lfov-evaluate", "deeplab-lfov-check-data", "deeplab-lfov-extract-params"):
        assert "usage:" in run(venv / "bin" / name, "--help")
    where = run(python, "-c", "import deeplab_lfov; print(deeplab_lfov.__file__)").strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    out = run(venv / "bin" / "deeplab-lfov-extract-params", os.path.join(FIXTURES, "slim.caffemodel"),
              "--output_dir", elsewhere / "converted")
    assert "Converted 16 layers" in out and os.path.exists(elsewhere / "converted" / "deeplab_lfov.ckpt.index")
