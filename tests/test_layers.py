"""The package's layers, enforced: the import-linter contracts of pyproject.toml hold, and they are not
vacuous: a planted upward import and a planted cycle each break them."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(root):
    """Run lint-imports on the package copy under ``root`` (its pyproject.toml); (exit code, output)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def copy_of_package(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(os.path.join(ROOT, "deeplab_lfov"), root / "deeplab_lfov",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root / "pyproject.toml")
    return root


def test_the_contracts_hold_on_the_package():
    code, out = _lint(ROOT)
    assert code == 0, out
    assert "Contracts: 2 kept, 0 broken." in out


def _lint_with(root, module: str, line: str):
    """lint-imports on the package copy with ``line`` appended to ``module`` (restored afterwards)."""
    path = root / (module.replace(".", "/") + ".py")
    original = path.read_text()
    path.write_text(original + "\n" + line + "\n")
    try:
        return _lint(root)
    finally:
        path.write_text(original)


def test_a_planted_upward_import_breaks_the_layers_contract(copy_of_package):
    # The model (a lower layer) reaching for the settings (the top): what a quick fix might do.
    code, out = _lint_with(copy_of_package, "deeplab_lfov.model.ops", "from ..settings import TrainConfig  # noqa")
    assert code != 0
    assert "deeplab_lfov.model is not allowed to import deeplab_lfov.settings" in out
    assert "deeplab_lfov.model.ops -> deeplab_lfov.settings" in out


def test_a_planted_cycle_breaks_the_acyclic_contract(copy_of_package):
    # crf.params is imported by crf.dense; an import back closes a cycle inside one layer.
    code, out = _lint_with(copy_of_package, "deeplab_lfov.crf.params", "from . import dense  # noqa")
    assert code != 0
    assert "no import cycles between the modules of a layer BROKEN" in out
