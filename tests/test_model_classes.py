"""The weights carry their classes (issue 19, part 1): a model trained with --classes is evaluated,
segmented and exported without --classes, under its own names and colours; a --classes that disagrees
is one error line naming both counts, with advice the program has."""


import numpy as np
import pytest
from PIL import Image

from deeplab_lfov.model.weights import weights_record
from helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow  # a short training run with validation (~25 s); CI runs it

NAMES = ("background", "road", "tree", "car", "sky")


@pytest.fixture(scope="module")
def five_class_run(tmp_path_factory):
    """train.py --classes (five classes, own colours) for 2 steps with validation; returns (root, snapshot dir)."""
    root = tmp_path_factory.mktemp("five")
    rng = np.random.RandomState(0)
    (root / "img").mkdir()
    (root / "lbl").mkdir()
    lines = []
    for i in range(3):
        Image.fromarray(rng.randint(0, 255, (40, 48, 3)).astype(np.uint8)).save(root / "img" / f"{i}.jpg")
        label = np.kron(rng.randint(0, 5, (5, 6)), np.ones((8, 8))).astype(np.uint8)
        Image.fromarray(label, mode="L").save(root / "lbl" / f"{i}.png")
        lines.append(f"/img/{i}.jpg /lbl/{i}.png\n")
    (root / "list.txt").write_text("".join(lines))
    (root / "classes.txt").write_text("".join(f"{n} {10 * i} {20 * i} {30 * i}\n" for i, n in enumerate(NAMES)))
    code = _run_train(root)
    assert code == 0
    return root, root / "snap"


def _run_train(root):
    from deeplab_lfov.cli import run, train
    with pytest.raises(SystemExit) as exc:
        run(train.main, [str(a) for a in (
            "--data_dir", root, "--data_list", root / "list.txt", "--classes", root / "classes.txt",
            "--snapshot_dir", root / "snap", "--save_dir", root / "figs", "--input_size", "32,32", "--batch_size", "2",
            "--num_steps", "2", "--width_multiplier", "0.125", "--save_pred_every", "2", "--save_num_images", "0",
            "--restore_from", "", "--val_list", root / "list.txt", "--val_every", "2")])
    return exc.value.code


def test_snapshots_and_best_record_the_classes(five_class_run):
    _, snap = five_class_run
    for weights in (str(snap), str(snap / "best")):
        classes = weights_record(weights)["classes"]
        assert classes.names == NAMES and tuple(classes.colors[3]) == (30, 60, 90)


def test_evaluate_without_classes_uses_the_weights_classes(five_class_run, capsys):
    root, snap = five_class_run
    code, out, err = run_cli("evaluate.py", ["--data_dir", root, "--data_list", root / "list.txt", "--restore_from",
                                             snap, "--save_dir", root / "masks"], capsys)
    assert code == 0, err
    assert "tree" in out and "aeroplane" not in out  # the per-class table under the model's own names
    mask = Image.open(root / "masks" / "0.png")
    assert mask.getpalette()[3 * 3:3 * 4] == [30, 60, 90]  # and its colours


def test_inference_and_export_read_the_classes_and_refuse_a_disagreeing_file(five_class_run, capsys, tmp_path):
    root, snap = five_class_run
    code, out, err = run_cli("util/export_model.py", [snap, "--output_dir", tmp_path / "export", "--formats",
                                                      "tflite", "--tflite_size", "33"], capsys)
    assert code == 0, err
    assert (tmp_path / "export" / "classes.txt").read_text().splitlines()[2] == "tree 20 40 60"
    voc = tmp_path / "voc.txt"
    voc.write_text("".join(f"c{i}\n" for i in range(21)))
    code, _, err = run_cli("inference.py", [root / "img" / "0.jpg", snap, "--classes", voc, "--save_dir",
                                            tmp_path / "out"], capsys)
    assert_one_line_error(code, err, f"--classes {voc} lists 21 classes", "have 5", "background, road, tree, car")
    assert "--not_restore_last" not in err  # advice inference.py has
