"""The rough edges a new user met walking through the README's first sections: the real problem reported
first and once, no empty folders left by a failed run, the colour list always written, counted nouns."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from helpers import FIXTURES, assert_one_line_error, make_dataset, run_cli

CAFFEMODEL = os.path.join(FIXTURES, "slim.caffemodel")  # 21 classes


def _photos(folder, count):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(count):
        Image.fromarray(rng.randint(0, 255, size=(33, 41, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_evaluate_reports_a_class_count_the_weights_do_not_have_before_reading_any_image(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)  # VOC labels (values up to 20): out of range for 3 classes
    os.remove(tmp_path / "JPEGImages" / "img_1.jpg")  # a data problem too: the classes are the one reported
    classes = tmp_path / "classes.txt"
    classes.write_text("background\nroad\ntree\n")
    common = ["--data_dir", tmp_path, "--data_list", list_path, "--restore_from", CAFFEMODEL, "--save_dir", ""]
    code, out, err = run_cli("evaluate.py", common + ["--classes", classes], capsys)
    assert_one_line_error(code, err, f"--classes {classes} lists 3 classes", "have 21")
    assert "Checking" not in out + err  # no image was read
    code, out, err = run_cli("evaluate.py", common + ["--num_classes", "3"], capsys)
    assert_one_line_error(code, err, CAFFEMODEL, "have 21 classes, not 3")
    assert "Checking" not in out + err


def test_a_missing_label_or_image_folder_is_one_line_up_front(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 2)
    missing = tmp_path / "no_such_labels"
    data = ["--data_dir", tmp_path, "--data_list", list_path]
    code, out, err = run_cli("evaluate.py", data + ["--label_dir", missing, "--restore_from", CAFFEMODEL,
                                                    "--save_dir", ""], capsys)
    assert_one_line_error(code, err, "--label_dir", str(missing))
    code, out, err = run_cli("util/check_data.py", data + ["--label_dir", missing], capsys)
    assert_one_line_error(code, err, "--label_dir", str(missing))
    for flags in (["--label_dir", missing], ["--val_list", list_path, "--val_label_dir", missing]):
        code, out, err = run_cli("train.py", data + flags + ["--snapshot_dir", tmp_path / "snap", "--num_steps", "1",
                                                             "--restore_from", ""], capsys)
        assert_one_line_error(code, err, flags[-2], str(missing))
        assert not os.path.exists(tmp_path / "snap")  # nothing written
    (tmp_path / "a_file").write_text("")
    code, out, err = run_cli("evaluate.py", data + ["--label_dir", tmp_path / "a_file", "--restore_from", CAFFEMODEL],
                             capsys)
    assert_one_line_error(code, err, "--label_dir", "not a directory")

    refine = [tmp_path / "SegmentationClassAug", "--image_dir", tmp_path / "no_such_images", "--output_dir",
              tmp_path / "refined"]
    code, out, err = run_cli("util/crf_refine.py", refine, capsys)
    assert_one_line_error(code, err, "--image_dir", str(tmp_path / "no_such_images"))
    assert not os.path.exists(tmp_path / "refined")
    code, out, err = run_cli("util/crf_refine.py", [missing] + refine[1:], capsys)
    assert_one_line_error(code, err, str(missing), "no such directory")


def test_a_failed_run_removes_the_output_folder_it_created_and_left_empty(tmp_path, capsys):
    code, _, err = run_cli("util/export_model.py", [tmp_path / "missing.ckpt", "--output_dir",
                                                    tmp_path / "new" / "export"], capsys)
    assert_one_line_error(code, err, "missing.ckpt")
    assert os.listdir(tmp_path) == []  # neither export/ nor new/ stays
    (tmp_path / "existing").mkdir()
    code, _, err = run_cli("util/export_model.py", [tmp_path / "missing.ckpt", "--output_dir", tmp_path / "existing"],
                           capsys)
    assert code == 2 and os.path.isdir(tmp_path / "existing")  # it was there before: kept

    photos = _photos(tmp_path / "photos", 1)
    code, _, err = run_cli("inference.py", [photos, tmp_path / "missing.ckpt", "--save_dir", tmp_path / "out"], capsys)
    assert code == 2 and not os.path.exists(tmp_path / "out"), err
    (tmp_path / "bad").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "bad" / name).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    code, _, err = run_cli("inference.py", [tmp_path / "bad", CAFFEMODEL, "--save_dir", tmp_path / "out"], capsys)
    assert code == 2 and "2 of 2 images failed" in err and not os.path.exists(tmp_path / "out")
    code, _, err = run_cli("inference.py", [tmp_path / "bad" / "a.jpg", CAFFEMODEL, "--save_dir", tmp_path / "out"],
                           capsys)
    assert code == 2 and not os.path.exists(tmp_path / "out")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    code, _, err = run_cli("inference.py", [tmp_path / "bad", CAFFEMODEL, "--save_dir", tmp_path / "kept" / "sub"],
                           capsys)
    assert code == 2 and os.listdir(tmp_path / "kept") == ["notes.txt"]  # only what this run created went


def test_summary_lines_count_one_in_the_singular(tmp_path, capsys):
    photos = _photos(tmp_path / "photos", 1)
    code, out, err = run_cli("inference.py", [photos, CAFFEMODEL, "--save_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    assert re.search(r"Segmented 1 image in", out), out
    code, out, err = run_cli("inference.py", [photos, CAFFEMODEL, "--save_dir", tmp_path / "out", "--skip_existing"],
                             capsys)
    assert code == 0 and "1 images" not in out, out

    list_path = make_dataset(str(tmp_path / "data"), 1)
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path / "data", "--data_list", list_path, "--restore_from",
                                             CAFFEMODEL, "--save_dir", ""], capsys)
    assert code == 0 and "on 1 image:" in out, err
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path / "data", "--data_list", list_path, "--pred_dir",
                                             tmp_path / "data" / "SegmentationClassAug"], capsys)
    assert code == 0 and "on 1 image:" in out, err
    code, out, err = run_cli("util/check_data.py", ["--data_dir", tmp_path / "data", "--data_list", list_path], capsys)
    assert code == 0 and "1 entries" not in out and "is usable" in out, out

    labels = tmp_path / "data" / "SegmentationClassAug"
    refine = [labels, "--image_dir", tmp_path / "data" / "JPEGImages", "--output_dir", tmp_path / "refined",
              "--workers", "1"]
    code, out, err = run_cli("util/crf_refine.py", refine, capsys)
    assert code == 0 and "Refined 1 of 1 in" in out, out + err
    code, out, err = run_cli("util/crf_refine.py", refine + ["--skip_existing"], capsys)
    assert code == 0 and "1 outputs" not in out and "the 1 output exists" in out, out


def test_what_the_readme_says_of_check_datas_report_and_the_ignore_line(tmp_path, capsys, monkeypatch):
    import tempfile

    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.data.classes import read_classes
    from deeplab_lfov.data.convert import convert_mask
    list_path = make_dataset(str(tmp_path), 1, name="train.txt")
    with open(list_path, "a") as f:
        f.writelines(f"/JPEGImages/gone_{i}.jpg /SegmentationClassAug/img_0.png\n" for i in range(21))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, out, err = run_cli("util/check_data.py", ["--data_dir", tmp_path, "--data_list", list_path], capsys)
    report = tmp_path / "tmp" / "deeplab-lfov-problems-train.txt"  # $TMPDIR/deeplab-lfov-problems-LIST.txt
    assert code == 2 and str(report) in err and len(report.read_text().splitlines()) == 21
    assert len([line for line in err.splitlines() if "gone_" in line]) == 20  # the first 20 on stderr

    (tmp_path / "c.txt").write_text("__ignore__ 255 255 255\nbackground 10 10 10\n")
    classes = read_classes(str(tmp_path / "c.txt"))
    assert tuple(classes.colors[255]) == (255, 255, 255)  # masks draw 255 in it
    Image.fromarray(np.array([[(10, 10, 10), (255, 255, 255)]], np.uint8)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(convert_mask(str(tmp_path / "m.png"), classes, 1).labels, [[0, 255]])
    Image.fromarray(np.array([[(10, 10, 10), (224, 224, 192)]], np.uint8)).save(tmp_path / "cream.png")
    with pytest.raises(DeepLabError, match=r"colour \(224, 224, 192\): 1 pixel$"):  # VOC's cream is replaced
        convert_mask(str(tmp_path / "cream.png"), classes, 1)
