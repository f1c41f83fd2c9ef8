"""The first minute of a new user: a missing data folder is one line; thousands of broken entries
are summarised (first 20, counts by kind, the full list in a file)."""

import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT, SUBPROCESS_ENV, assert_one_line_error, make_dataset, run_cli
from deeplab_lfov.checks import MAX_SHOWN, check_writable


def test_train_py_with_a_data_dir_that_does_not_exist_says_so_in_one_line():
    had_snapshots = os.path.exists(os.path.join(ROOT, "snapshots"))
    proc = subprocess.run([sys.executable, "train.py", "--data_dir", "/nonexistent"], cwd=ROOT, env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) <= 3, lines
    assert "--data_dir /nonexistent: no such directory" in lines[-1] and "README" in lines[-1]
    assert os.path.exists(os.path.join(ROOT, "snapshots")) == had_snapshots  # nothing written


def test_a_data_dir_holding_none_of_the_images_is_one_line(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path / "data"), 2)
    (tmp_path / "elsewhere").mkdir()
    code, out, err = run_cli("util/check_data.py", ["--data_dir", tmp_path / "elsewhere", "--data_list", list_path],
                             capsys)
    assert_one_line_error(code, err, "none of the 2 images", "train.txt", "elsewhere/JPEGImages/img_0.jpg")


def _many_broken(tmp_path, count):
    """Two good entries and ``count`` whose label is missing."""
    list_path = make_dataset(str(tmp_path), 2)
    with open(list_path, "a") as f:
        f.writelines(f"/JPEGImages/img_0.jpg /SegmentationClassAug/gone_{i}.png\n" for i in range(count))
    Image.fromarray(np.zeros((120, 160), np.uint8), mode="L").save(tmp_path / "SegmentationClassAug" / "bad.png")
    return list_path


def _check_summary(text, count, report):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith(("error: ", "skipped: "))]) <= MAX_SHOWN + 1
    assert len(lines) <= 25, len(lines)
    assert f"{count:,} x label not found" in text
    with open(report) as f:
        listed = f.read().splitlines()
    assert len(listed) == count and all(re.match(r".*train\.txt:\d+: .*gone_\d+\.png: label not found", x)
                                        for x in listed)


def test_train_py_with_500_broken_entries_prints_a_summary_and_the_report_path(tmp_path, capsys):
    list_path = _many_broken(tmp_path, 500)
    snap = tmp_path / "snap"
    code, out, err = run_cli("train.py", ["--data_dir", tmp_path, "--data_list", list_path, "--snapshot_dir", snap,
                                          "--save_dir", tmp_path / "img", "--num_steps", "1"], capsys)
    assert code == 2
    report = snap / "data_problems.txt"
    assert str(report) in out
    _check_summary(out + err, 500, report)
    assert "500 of 502 entries" in err and "--skip_bad" in err


def test_check_data_and_evaluate_summarise_the_same_way(tmp_path, capsys):
    list_path = _many_broken(tmp_path, 300)
    code, out, err = run_cli("util/check_data.py", ["--data_dir", tmp_path, "--data_list", list_path], capsys)
    assert code == 2
    report = re.search(r"all 300 in (\S+)", err).group(1)
    _check_summary(err, 300, report)

    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--restore_from",
                                             tmp_path / "unused.ckpt", "--save_dir", ""], capsys)
    assert code == 2
    _check_summary(out + err, 300, re.search(r"all 300 in (\S+)", out).group(1))


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(str(tmp_path / "new" / "dir"), "--save_dir")
    assert os.listdir(tmp_path / "new" / "dir") == []
