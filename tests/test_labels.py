"""Any labels: classes files, colour masks, binary masks, pseudo labels (--label_dir), bare-ID lists,
scoring existing masks (--pred_dir), class weights and per-class statistics."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.data.classes import read_classes
from deeplab_lfov.data.convert import convert_label
from deeplab_lfov.data.reader import read_list
from deeplab_lfov.data.statistics import LabelStats, median_frequency_weights
from deeplab_lfov.training.trainer import segmentation_loss_terms
from helpers import make_dataset, run_cli

PALETTE = {"background": (10, 10, 10), "road": (200, 100, 50), "tree": (20, 180, 20)}


def _custom_dataset(root, count=6, seed=0):
    """Images with a road (bottom band) and a tree (disc), RGB colour masks in a custom palette."""
    rng = np.random.RandomState(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[0:64, 0:80]
    lines = []
    for i in range(count):
        label = np.zeros((64, 80), np.uint8)
        label[40 + rng.randint(0, 8):] = 1
        cy, cx = rng.randint(10, 30), rng.randint(15, 65)
        label[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = 2
        colours = np.array([(60, 120, 200), (90, 90, 90), (30, 140, 30)])
        image = colours[label] + rng.normal(0, 8, (64, 80, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"p{i}.jpg", quality=95)
        rgb_mask = np.array(list(PALETTE.values()), np.uint8)[label]
        Image.fromarray(rgb_mask).save(root / "masks" / f"p{i}.png")
        lines.append(f"/images/p{i}.jpg /labels/p{i}.png\n")
    (root / "list.txt").write_text("".join(lines))
    (root / "classes.txt").write_text("".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in PALETTE.items()))
    return root


def test_own_dataset_from_colour_masks_to_overlays(tmp_path, capsys):
    root = _custom_dataset(tmp_path / "data")
    classes = str(root / "classes.txt")
    # Without --classes the colours are listed so that a classes file can be written.
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels"], capsys)
    assert code == 0 and "need --classes" in out
    assert re.search(r"200 100\s+50\s+[\d,]+\s+[\d.]+%\s+6\b", out)  # road: in all 6 images
    # every colour listing writes the colour table, complete on screen or not; nothing is converted
    assert os.listdir(root / "labels") == ["colours.txt"] and str(root / "labels" / "colours.txt") in out
    assert "200 100 50 " in (root / "labels" / "colours.txt").read_text()
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels", "--classes",
                                                        classes], capsys)
    assert code == 0, err
    assert "colours.txt" not in out  # a conversion's palette is the classes file
    assert "Wrote 6 index PNGs" in out and re.search(r"road\s+[\d,]+\s+[\d.]+%\s+6", out) and "Ignored pixels" in out
    label = Image.open(root / "labels" / "p0.png")
    assert label.mode == "P" and set(np.unique(np.asarray(label))) <= {0, 1, 2}
    assert label.getpalette()[3:6] == [200, 100, 50]  # the custom colours are the palette

    snap = tmp_path / "snap"
    code, out, err = run_cli("train.py", ["--data_dir", root, "--data_list", root / "list.txt", "--classes", classes,
                                          "--snapshot_dir", snap, "--save_dir", tmp_path / "fig", "--input_size",
                                          "64,80", "--batch_size", "3", "--num_steps", "30", "--learning_rate",
                                          "3e-3", "--width_multiplier", "0.125", "--save_pred_every", "30",
                                          "--restore_from", "", "--no-random_scale"], capsys)
    assert code == 0, err
    assert tf.train.load_checkpoint(str(snap)).get_tensor(
        "model/fc8_voc12/b/.ATTRIBUTES/VARIABLE_VALUE").shape == (3,)  # --classes set --num_classes
    figure = np.asarray(Image.open(tmp_path / "fig" / "train_30.png"))
    assert (figure.reshape(-1, 3) == [200, 100, 50]).all(-1).any()  # figures use the custom colours
    code, out, err = run_cli("evaluate.py", ["--data_dir", root, "--data_list", root / "list.txt", "--classes", classes,
                                             "--restore_from", snap, "--save_dir", tmp_path / "val"], capsys)
    assert code == 0, err
    assert all(re.search(rf"^  {name}\s+[\d.]+$", out, re.M) for name in PALETTE)
    assert Image.open(tmp_path / "val" / "p0.png").getpalette()[3:6] == [200, 100, 50]
    code, out, err = run_cli("inference.py", [root / "images", snap, "--classes", classes, "--save_dir",
                                              tmp_path / "inf", "--outputs", "mask,overlay"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "inf" / "p1.png").getpalette()[6:9] == [20, 180, 20]
    width, height = Image.open(tmp_path / "inf" / "overlay" / "p1.png").size
    assert width == 80 and height > 64  # the image, and its legend in a strip below it


def test_unknown_colours_are_reported_per_file_and_get_no_output(tmp_path, capsys):
    root = _custom_dataset(tmp_path / "data", count=3)
    mask = np.asarray(Image.open(root / "masks" / "p1.png")).copy()
    mask[:2, :3] = (255, 0, 255)
    Image.fromarray(mask).save(root / "masks" / "p1.png")
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels", "--classes",
                                                        root / "classes.txt"], capsys)
    assert code == 2
    assert "p1.png: colours not in the --classes palette: colour (255, 0, 255): 6 pixels" in err
    assert "1 of 3 label images were not converted" in err
    assert sorted(os.listdir(root / "labels")) == ["p0.png", "p2.png"]


def test_binary_masks_convert(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    values = np.zeros((8, 9), np.uint8)
    values[2:5, 3:7] = 255
    Image.fromarray(values, mode="L").save(tmp_path / "m" / "a.png")
    Image.fromarray(np.stack([values // 255] * 3, -1) * 255).save(tmp_path / "m" / "rgb.png")
    Image.fromarray((values // 255).astype(np.uint8), mode="L").save(tmp_path / "m" / "ones.png")
    Image.fromarray(np.full((8, 9), 7, np.uint8), mode="L").save(tmp_path / "m" / "bad.png")
    code, out, err = run_cli("util/convert_labels.py", [tmp_path / "m", "--output_dir", tmp_path / "o", "--binary"],
                             capsys)
    assert code == 2 and "bad.png: --binary masks hold 0/1 or 0/255; this one has 7" in err
    for name in ("a", "rgb", "ones"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / f"{name}.png")), values // 255)


def test_classes_files_are_checked_line_by_line(tmp_path):
    (tmp_path / "c.txt").write_text("background\nroad 1 2\n")
    with pytest.raises(DeepLabError, match=r"c.txt:2: expected 'name' or 'name R G B'"):
        read_classes(str(tmp_path / "c.txt"))
    (tmp_path / "c.txt").write_text("background 0 0 0\nroad 0 0 0\n")
    with pytest.raises(DeepLabError, match=r"c.txt:2: colour \(0, 0, 0\) is also class 'background'"):
        read_classes(str(tmp_path / "c.txt"))
    (tmp_path / "many.txt").write_text("".join(f"c{i}\n" for i in range(40)))
    many = read_classes(str(tmp_path / "many.txt"))
    assert len(many) == 40 and tuple(many.colors[33]) == (128, 0, 64)  # VOC's bit-interleaved colours go on


def test_label_dir_and_bare_ids_choose_the_labels(tmp_path):
    (tmp_path / "ids.txt").write_text("2007_000032\n2007_000039\n")
    entries = read_list(str(tmp_path), str(tmp_path / "ids.txt"), label_dir=str(tmp_path / "pseudo"))
    assert entries[0].image == str(tmp_path / "JPEGImages" / "2007_000032.jpg")
    assert entries[1].label == str(tmp_path / "pseudo" / "2007_000039.png")
    assert read_list(str(tmp_path), str(tmp_path / "ids.txt"))[0].label.endswith("SegmentationClassAug/2007_000032.png")
    (tmp_path / "mixed.txt").write_text("2007_000032\n/JPEGImages/a.jpg /SegmentationClassAug/a.png\n")
    with pytest.raises(DeepLabError, match=r"mixed.txt:2: a 'IMAGE LABEL' line in a list of 'ID' lines"):
        read_list(str(tmp_path), str(tmp_path / "mixed.txt"))
    (tmp_path / "bad.txt").write_text("JPEGImages/a.jpg\n")
    with pytest.raises(DeepLabError, match=r"bad.txt:1: expected 'IMAGE LABEL' or a bare image ID"):
        read_list(str(tmp_path), str(tmp_path / "bad.txt"))


def _pseudo_labels(root, value):
    """Pseudo labels for the dataset under ``root``: every pixel ``value``."""
    (root / "pseudo").mkdir(exist_ok=True)
    for name in os.listdir(root / "SegmentationClassAug"):
        Image.fromarray(np.full((120, 160), value, np.uint8), mode="L").save(root / "pseudo" / name)


def test_label_dir_is_what_the_loss_and_the_validation_use(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 4)
    _pseudo_labels(tmp_path, 255)  # every pixel unsure: the loss is exactly 0
    common = ["--data_dir", tmp_path, "--data_list", list_path, "--input_size", "48,48", "--batch_size", "2",
              "--width_multiplier", "0.125", "--restore_from", "", "--save_num_images", "0"]
    code, out, err = run_cli("train.py", common + ["--snapshot_dir", tmp_path / "s1", "--num_steps", "2",
                                                   "--label_dir", tmp_path / "pseudo"], capsys)
    assert code == 0, err
    assert re.findall(r"loss = ([0-9.]+)", out) == ["0.000", "0.000"]

    _pseudo_labels(tmp_path, 0)  # every pixel background: quickly learnt, and validated against
    code, out, err = run_cli("train.py", common + ["--snapshot_dir", tmp_path / "s2", "--num_steps", "40",
                                                   "--learning_rate", "1e-2", "--label_dir", tmp_path / "pseudo",
                                                   "--val_list", list_path, "--val_label_dir", tmp_path / "pseudo",
                                                   "--val_every", "40", "--print_every", "40"], capsys)
    assert code == 0, err
    assert "validation at step 40: mean IoU 1.0000" in out
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--restore_from",
                                             tmp_path / "s2", "--save_dir", ""], capsys)
    assert code == 0 and float(re.search(r"Mean IoU: ([0-9.]+)", out).group(1)) < 0.9  # the real labels differ


def test_evaluate_pred_dir_equals_numpy_and_names_missing_lines(tmp_path, capsys):
    list_path = make_dataset(str(tmp_path), 3)
    rng = np.random.RandomState(3)
    (tmp_path / "preds").mkdir()
    inter, union = np.zeros(21), np.zeros(21)
    for i in range(3):
        label = np.asarray(Image.open(tmp_path / "SegmentationClassAug" / f"img_{i}.png"))
        pred = np.where(rng.uniform(size=label.shape) < 0.7, label, rng.choice([0, 1, 8, 255], size=label.shape))
        pred = pred.astype(np.uint8)
        Image.fromarray(pred, mode="L").save(tmp_path / "preds" / f"img_{i}.png")
        valid = label != 255
        for c in range(21):
            p, g = (pred == c) & valid, (label == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    expected = np.mean(inter[union > 0] / union[union > 0])
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--pred_dir",
                                             tmp_path / "preds"], capsys)
    assert code == 0, err
    assert float(re.search(r"Mean IoU: ([0-9.]+)", out).group(1)) == pytest.approx(expected, abs=1e-4)
    assert "predicted as no class" in out
    os.remove(tmp_path / "preds" / "img_1.png")
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--pred_dir",
                                             tmp_path / "preds"], capsys)
    assert code == 2 and "train.txt:2: " in out and "img_1.png: prediction not found" in out


def test_median_frequency_weights_and_the_weighted_loss():
    stats = LabelStats(3)
    a = np.zeros((4, 5), np.uint8)
    a[0, :2] = 1                                  # image 1: 18 x class 0, 2 x class 1
    b = np.full((4, 5), 2, np.uint8)
    b[0, 0] = 0
    b[3, :] = 255                                 # image 2: 1 x class 0, 14 x class 2, 5 ignored
    stats.add(a)
    stats.add(b)
    freq = np.array([19 / (20 + 15), 2 / 20, 14 / 15])
    np.testing.assert_allclose(median_frequency_weights(stats), np.median(freq) / freq, rtol=1e-12)

    rng = np.random.RandomState(0)
    logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    labels = np.stack([a, b]).astype(np.int32)
    weights = np.array([0.5, 2.0, 1.5], np.float32)
    loss_sum, count = segmentation_loss_terms(tf.constant(logits), tf.constant(labels), 3, 255, tf.constant(weights))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    w = weights[np.where(valid, labels, 0)] * valid
    nll = -np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    assert float(loss_sum / count) == pytest.approx(float((w * nll).sum() / w.sum()), rel=1e-5)


def _jpeg_masks(root, count=3, quality=75):
    """The custom dataset's colour masks saved as JPEG (as datasets found online have them), and the true labels."""
    root = _custom_dataset(root, count=count)
    truth = {}
    palette = np.array(list(PALETTE.values()), np.uint8)
    for i in range(count):
        rgb = np.asarray(Image.open(root / "masks" / f"p{i}.png"))
        truth[f"p{i}"] = (rgb[..., None, :] == palette).all(-1).argmax(-1)
        Image.fromarray(rgb).save(root / "masks" / f"p{i}.jpg", quality=quality)
        os.remove(root / "masks" / f"p{i}.png")
    return root, truth


def test_jpeg_compressed_masks_are_told_apart_from_missing_classes(tmp_path, capsys):
    root, _ = _jpeg_masks(tmp_path / "data")
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels", "--classes",
                                                        root / "classes.txt"], capsys)
    assert code == 2
    per_file = [line for line in err.splitlines() if ": looks JPEG-compressed: " in line]
    assert len(per_file) == 3 and all(re.search(r"p\d.jpg: looks JPEG-compressed: [\d,]+ colours not in the "
                                                r"--classes palette, but [\d.]+% of its pixels are within 32 of a "
                                                r"palette colour; save the masks as PNG, or pass --tolerance \d+",
                                                line) for line in per_file), err
    assert "3 of 3 masks look JPEG-compressed: save them as PNG, or pass --tolerance T" in err
    assert len(err.strip().splitlines()) <= 6  # one line per file, the summary, the final error (and progress)


def test_tolerance_maps_jpeg_masks_to_the_nearest_class_and_counts_the_rest(tmp_path):
    from deeplab_lfov.data.convert import convert_all, convert_mask
    root, truth = _jpeg_masks(tmp_path / "data", quality=75)
    classes = read_classes(str(root / "classes.txt"))
    converted = convert_mask(str(root / "masks" / "p0.jpg"), classes, 3, tolerance=32)
    labels = converted.labels
    assert set(np.unique(labels)) <= {0, 1, 2, 255}
    assert converted.unmatched == int((labels == 255).sum())
    right = labels == truth["p0"]
    assert right.mean() > 0.95 and (right | (labels == 255)).mean() > 0.98  # tiny masks: edges are a large share
    done = convert_all([(str(root / "masks" / f"p{i}.jpg"), f"p{i}") for i in range(3)], str(root / "labels"),
                       classes, 3, tolerance=0.5)  # too tight for JPEG noise: many pixels become 255, counted
    assert len(done.written) == 3 and not done.problems
    assert {os.path.basename(p) for p, _, _ in done.unmatched} == {"p0.jpg", "p1.jpg", "p2.jpg"}
    for path, unmatched, total in done.unmatched:
        name = os.path.splitext(os.path.basename(path))[0]
        assert (np.asarray(Image.open(root / "labels" / f"{name}.png")) == 255).sum() == unmatched and total == 64 * 80


def test_convert_labels_tolerance_flag(tmp_path, capsys):
    root, truth = _jpeg_masks(tmp_path / "data")
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels", "--classes",
                                                        root / "classes.txt", "--tolerance", "32"], capsys)
    assert code == 0, err
    assert "Wrote 3 index PNGs" in out and re.search(r"--tolerance 32: [\d,]+ pixels of \d masks were farther", out)


def test_the_colour_survey_groups_jpeg_noise_and_keeps_the_full_list(tmp_path, capsys):
    root, _ = _jpeg_masks(tmp_path / "data", count=4, quality=50)
    code, out, err = run_cli("util/convert_labels.py", [root / "masks", "--output_dir", root / "labels"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) <= 37, len(lines)
    rows = [line for line in lines if re.match(r"^\s+\d+\s+\d+\s+\d+\s+[\d,]+\s+[\d.]+%", line)]
    top = np.array([[int(v) for v in row.split()[:3]] for row in rows[:3]])
    distance = np.sqrt(((top[:, None] - np.array(list(PALETTE.values()))[None]) ** 2).sum(-1))
    assert sorted(distance.argmin(1)) == [0, 1, 2] and distance.min(1).max() <= 24  # the mask colours lead
    assert "The masks look JPEG-compressed" in out and "--tolerance" in out
    listed = (root / "labels" / "colours.txt").read_text().splitlines()[1:]
    assert len(listed) > 100 and str(root / "labels" / "colours.txt") in out
    assert not [f for f in os.listdir(root / "labels") if f.endswith(".png")]  # nothing converted


def _measure_conversion(tmp_path, width, height):
    """Peak RSS growth (bytes per pixel) of converting one RGB mask of width x height, in a fresh process."""
    import subprocess
    import sys

    from helpers import ROOT, SUBPROCESS_ENV
    label = np.zeros((height, width), np.uint8)
    label[height // 3:, : width // 2] = 1
    label[: height // 2, width // 3:] = 2
    Image.fromarray(np.array(list(PALETTE.values()), np.uint8)[label]).save(tmp_path / "big.png", compress_level=1)
    (tmp_path / "classes.txt").write_text("".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in PALETTE.items()))
    code = ("import sys\n"
            "from deeplab_lfov.data.classes import read_classes\n"
            "from deeplab_lfov.data.convert import convert_all\n"
            "def status(key):\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ':'))\n"
            "classes = read_classes(sys.argv[1])\n"
            "with open('/proc/self/clear_refs', 'w') as f:\n"
            "    f.write('5')  # resets the peak (VmHWM) to the current RSS\n"
            "before = status('VmRSS')\n"
            "done = convert_all([(sys.argv[2], 'big')], sys.argv[3], classes, 3, workers=1)\n"
            "assert done.written and not done.problems, done.problems\n"
            "print(status('VmHWM') - before)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "classes.txt"), str(tmp_path / "big.png"),
                           str(tmp_path / "out")], cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "big.png")), label)
    return int(proc.stdout.split()[-1]) / (width * height)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures the peak RSS through Linux's /proc")
def test_convert_labels_converts_a_large_rgb_mask_in_bounded_memory(tmp_path):
    """618 MiB per allocation and 2.5 GB at peak for one 9000x9000 mask (about 30 bytes a pixel): now its decoded
    image (4 bytes a pixel in Pillow), its 1-byte labels and the PNG written, plus a few MB of row blocks."""
    per_pixel = _measure_conversion(tmp_path, 4000, 3000)
    assert per_pixel < 10, f"{per_pixel:.1f} bytes per pixel"


def test_binary_jpeg_masks_are_told_apart_and_tolerance_maps_them(tmp_path, capsys):
    from deeplab_lfov.data.convert import convert_mask
    (tmp_path / "m").mkdir()
    values = np.zeros((60, 80), np.uint8)
    values[10:40, 20:70] = 255
    Image.fromarray(values, mode="L").save(tmp_path / "m" / "a.jpg", quality=60)
    code, out, err = run_cli("util/convert_labels.py", [tmp_path / "m", "--output_dir", tmp_path / "o", "--binary"],
                             capsys)
    assert code == 2 and re.search(r"a.jpg: looks JPEG-compressed: \d+ grey levels where --binary masks hold 0 and "
                                   r"255, [\d.]+% of them within 32 of 0 or 255", err), err
    converted = convert_mask(str(tmp_path / "m" / "a.jpg"), read_classes(None), 2, binary=True, tolerance=32)
    right = converted.labels == values // 255
    assert right.mean() > 0.97 and (right | (converted.labels == 255)).all()
    assert converted.unmatched == int((converted.labels == 255).sum())


def test_the_ignore_colour_is_voc_void_or_the_classes_files_ignore_line(tmp_path):
    from deeplab_lfov.data.convert import convert_mask
    (tmp_path / "c.txt").write_text("__ignore__ 255 255 255\nbackground 10 10 10\nroad 200 100 50\n")
    classes = read_classes(str(tmp_path / "c.txt"))
    assert classes.names == ("background", "road") and classes.ignore_color == (255, 255, 255)
    mask = np.array([[(10, 10, 10), (200, 100, 50), (255, 255, 255)]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "m.png")
    np.testing.assert_array_equal(convert_mask(str(tmp_path / "m.png"), classes, 2).labels, [[0, 1, 255]])
    Image.fromarray(np.array([[(10, 10, 10), (224, 224, 192)]], np.uint8)).save(tmp_path / "void.png")
    (tmp_path / "plain.txt").write_text("bg 10 10 10\n")
    plain = read_classes(str(tmp_path / "plain.txt"))
    assert plain.ignore_color == read_classes(None).ignore_color == (224, 224, 192)  # VOC's void cream by default
    np.testing.assert_array_equal(convert_label(str(tmp_path / "void.png"), plain, 1), [[0, 255]])
    (tmp_path / "labelme.txt").write_text("__ignore__\n_background_\ncat\n")  # labelme's labels.txt as it is
    labelme = read_classes(str(tmp_path / "labelme.txt"))
    assert labelme.names == ("_background_", "cat") and labelme.ignore_color == (224, 224, 192)
    (tmp_path / "twice.txt").write_text("__ignore__ 1 2 3\nbg\n__ignore__ 4 5 6\n")
    with pytest.raises(DeepLabError, match=r"twice.txt:3: class '__ignore__' is listed twice"):
        read_classes(str(tmp_path / "twice.txt"))


def test_evaluate_pred_dir_refuses_out_of_range_and_rgb_predictions(tmp_path, capsys):
    """A prediction value outside the classes (other than the ignore label) is refused with its count,
    never counted as 'no class' silently; an RGB prediction points to util/convert_labels.py."""
    list_path = make_dataset(str(tmp_path), 2)
    (tmp_path / "preds").mkdir()
    label = np.asarray(Image.open(tmp_path / "SegmentationClassAug" / "img_0.png"))
    Image.fromarray(np.where(label == 255, 30, label).astype(np.uint8), mode="L").save(tmp_path / "preds" / "img_0.png")
    Image.new("RGB", label.shape[::-1], (128, 0, 0)).save(tmp_path / "preds" / "img_1.png")
    code, out, err = run_cli("evaluate.py", ["--data_dir", tmp_path, "--data_list", list_path, "--pred_dir",
                                             tmp_path / "preds"], capsys)
    assert code == 2 and "Mean IoU" not in out
    assert "img_0.png: prediction values outside 0..20 and ignore label 255: 30 (" in out
    assert "img_1.png: prediction is an RGB colour image" in out and "util/convert_labels.py" in out
