"""The first minute of a new user: a missing data folder is one line; thousands of broken entries
are summarised (first 20, counts by kind, the full list in a file)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_lfov.core.files import check_writable
from deeplab_lfov.data.checks import MAX_SHOWN
from helpers import ROOT, SUBPROCESS_ENV, assert_one_line_error, make_dataset, run_cli, train_args


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
    assert str(report) in err  # the problem lines and where the full list is: on stderr, as every error
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
    _check_summary(out + err, 300, re.search(r"all 300 in (\S+)", err).group(1))


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(str(tmp_path / "new" / "dir"), "--save_dir")
    assert os.listdir(tmp_path / "new" / "dir") == []


@pytest.fixture
def broken_list(tmp_path):
    """Six good entries, then five defects of different kinds (list lines 7-11)."""
    list_path = make_dataset(str(tmp_path), 6)
    seg = tmp_path / "SegmentationClassAug"
    jpg = tmp_path / "JPEGImages"
    (jpg / "corrupt.jpg").write_bytes(open(jpg / "img_0.jpg", "rb").read()[:300])
    Image.fromarray((np.zeros((120, 160, 3)) + [128, 0, 0]).astype(np.uint8)).save(seg / "rgb.png")
    Image.fromarray(np.full((120, 160), 40, np.uint8), mode="L").save(seg / "range.png")
    Image.fromarray(np.zeros((100, 100), np.uint8), mode="L").save(seg / "small.png")
    with open(list_path, "a") as f:
        f.write("/JPEGImages/missing.jpg /SegmentationClassAug/img_0.png\n")
        f.write("/JPEGImages/corrupt.jpg /SegmentationClassAug/img_0.png\n")
        f.write("/JPEGImages/img_1.jpg /SegmentationClassAug/rgb.png\n")
        f.write("/JPEGImages/img_2.jpg /SegmentationClassAug/range.png\n")
        f.write("/JPEGImages/img_3.jpg /SegmentationClassAug/small.png\n")
    return tmp_path, list_path


def test_five_defects_give_five_lines_and_exit_2(broken_list, capsys):
    root, list_path = broken_list
    code, out, err = run_cli("train.py", train_args(root, list_path), capsys)
    reported = [line for line in err.splitlines() if line.startswith("error: ") and ":" in line[7:]]
    assert code == 2 and len(reported) == 5, out
    expect = {7: "missing.jpg: image not found", 8: "corrupt.jpg: cannot decode image",
              9: "rgb.png: label is an RGB colour image",
              10: "range.png: label values outside 0..20 and ignore label 255: 40 (19,200 pixels)",
              11: "small.png: label size 100x100 differs from image size 160x120"}
    for line, (number, text) in zip(reported, expect.items()):
        assert f"train.txt:{number}: " in line and text in line, line
    assert "util/convert_labels.py" in reported[2] and "--classes" in reported[2]  # RGB masks: the tool for them
    assert "prepare_voc" not in reported[2]  # (which is for VOC's own palette)
    assert "--skip_bad" in err and "Traceback" not in err
    assert not os.path.exists(root / "snap" / "checkpoint")  # training never started

    code, out, err = run_cli("util/check_data.py", ["--data_dir", root, "--data_list", list_path], capsys)
    assert code == 2 and len([l for l in err.splitlines() if re.match(r"error: .*train.txt:\d+: ", l)]) == 5


def test_skip_bad_trains_on_the_rest(broken_list, capsys):
    root, list_path = broken_list
    code, out, err = run_cli("train.py", train_args(root, list_path) + ["--skip_bad"], capsys)
    assert code == 0, err
    assert "Skipping 5 unusable entries; training on 6." in out
    assert len([l for l in out.splitlines() if l.startswith("skipped: ")]) == 5
    assert tf.train.latest_checkpoint(str(root / "snap")).endswith("model.ckpt-2")


def test_empty_list_and_unwritable_snapshot_dir(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run_cli("train.py", train_args(tmp_path, tmp_path / "empty.txt"), capsys)
    assert_one_line_error(code, err, "empty.txt", "empty")

    list_path = make_dataset(str(tmp_path), 1)
    (tmp_path / "a_file").write_text("x")
    code, _, err = run_cli("train.py", train_args(tmp_path, list_path, **{"--snapshot_dir": tmp_path / "a_file" / "s"}),
                           capsys)
    assert_one_line_error(code, err, "a_file/s", "--snapshot_dir is not writable")
