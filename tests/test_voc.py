"""util/prepare_voc.py on a fake VOC devkit with SBD-style .mat files written by scipy."""

import numpy as np
import scipy.io
from PIL import Image

from deeplab_lfov.data.colormap import VOC_COLORS, palette
from helpers import assert_one_line_error, run_cli


def test_prepare_voc_builds_index_pngs_and_reports_missing(tmp_path, capsys):
    voc = tmp_path / "VOC2012"
    sbd = tmp_path / "SBD" / "dataset"
    for d in (voc / "JPEGImages", voc / "SegmentationClass", sbd / "cls"):
        d.mkdir(parents=True)
    labels = {}
    rng = np.random.RandomState(0)
    for name in ("a", "b", "c"):
        labels[name] = rng.choice([0, 3, 15, 255], size=(12, 16)).astype(np.uint8)
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
    png = Image.fromarray(labels["a"], mode="P")  # VOC's own: palette PNG
    png.putpalette(palette())
    png.save(voc / "SegmentationClass" / "a.png")
    Image.fromarray(VOC_COLORS[labels["b"]]).save(voc / "SegmentationClass" / "b.png")  # re-saved as RGB
    scipy.io.savemat(sbd / "cls" / "c.mat", {"GTcls": {"Segmentation": labels["c"], "Boundaries": []}})
    scipy.io.savemat(sbd / "cls" / "a.mat", {"GTcls": {"Segmentation": np.zeros((12, 16), np.uint8)}})
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png\n" for n in ("a", "b", "c", "d")))

    code, out, err = run_cli("util/prepare_voc.py", ["--voc_dir", voc, "--sbd_dir", sbd, "--data_lists", lst], capsys)
    assert_one_line_error(code, err, "2 list entries have a missing image or label")  # exit 2, as every program
    assert "Wrote 2 labels from SegmentationClass and 1 from SBD" in out
    for name in ("a", "b", "c"):  # VOC's label wins over SBD's for a
        out_png = Image.open(voc / "SegmentationClassAug" / f"{name}.png")
        assert out_png.mode == "L"
        np.testing.assert_array_equal(np.asarray(out_png), labels[name])
    missing = [l for l in out.splitlines() if l.startswith("missing: ")]
    assert len(missing) == 2 and all("train.txt:4: " in l and "d." in l for l in missing)
