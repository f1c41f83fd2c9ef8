"""inference.py over collections: folders, globs, lists; overlays and probabilities; sharding; resuming;
EXIF orientation; bad files reported and counted; large images downscaled; outputs that never overwrite
each other."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from deeplab_lfov.data.inputs import gather
from deeplab_lfov.deploy.collection import float16_keeping_argmax, upsample_rows
from deeplab_lfov.model.ops import interp_bilinear
from helpers import FIXTURES, assert_one_line_error, run_cli

CAFFEMODEL = f"{FIXTURES}/slim.caffemodel"


def _photo(seed, h=45, w=61):
    rng = np.random.RandomState(seed)
    base = rng.randint(0, 255, size=(h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.BILINEAR))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(_photo(0)).save(root / "a.jpg", quality=95)
    Image.fromarray(_photo(1)).save(root / "b.png")  # same size as a.jpg: they share a batch
    Image.fromarray(_photo(2, 50, 40)).convert("L").save(root / "gray.png")
    Image.fromarray(_photo(3, 33, 70)).convert("RGBA").save(root / "sub" / "rgba.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    (root / "notes.txt").write_text("not an image: ignored")
    return root


GOOD = ["a", "b", "gray", "sub/rgba"]


def _mask(path):
    return np.asarray(Image.open(path))


def test_a_folder_gets_a_mask_per_image_at_the_mirrored_path(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli("inference.py", [folder, CAFFEMODEL, "--save_dir", out, "--outputs",
                                                 "mask,overlay,probs"], capsys)
    assert code == 2
    assert "corrupt.jpg" in err and "cannot decode image" in err and "1 of 5 images failed" in err
    assert "Segmented 4 images" in stdout and "1 failed" in stdout
    assert "skipped 1 file that is not an image: notes.txt" in stdout
    for name in GOOD:
        mask = _mask(out / f"{name}.png")
        single = tmp_path / "single" / name
        code, _, err = run_cli("inference.py", [next(folder.glob(name + ".*")), CAFFEMODEL, "--save_dir", single],
                               capsys)
        assert code == 0, err
        np.testing.assert_array_equal(mask, _mask(single / "mask.png"))  # same as inference.py on that image
        probs = np.load(out / "probs" / f"{name}.npy")
        assert probs.dtype == np.float16 and probs.shape == mask.shape + (21,)
        np.testing.assert_array_equal(probs.argmax(-1), mask)
        width, height = Image.open(next(folder.glob(name + ".*"))).size
        shown = Image.open(out / "overlay" / f"{name}.png").size  # the image, and its legend in a strip below
        assert shown[0] >= width and shown[1] > height
    assert not os.path.exists(out / "corrupt.png")
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "gray.png", "overlay", "probs", "sub"]

    # A re-run with --skip_existing has nothing to do (the corrupt file is still tried, and fails again).
    code, stdout, err = run_cli("inference.py", [folder, CAFFEMODEL, "--save_dir", out, "--outputs",
                                                 "mask,overlay,probs", "--skip_existing"], capsys)
    assert code == 2 and "Segmented 0 images" in stdout and "4 skipped" in stdout


def test_shards_cover_the_collection_exactly_once(folder, tmp_path, capsys):
    os.remove(folder / "corrupt.jpg")
    seen = []
    for k in (0, 1):
        out = tmp_path / f"shard{k}"
        code, stdout, err = run_cli("inference.py", [folder, CAFFEMODEL, "--save_dir", out, "--shard", f"{k}/2"],
                                    capsys)
        assert code == 0, err
        seen += sorted(os.path.relpath(os.path.join(d, f), out)[:-4] for d, _, fs in os.walk(out) for f in fs)
    assert sorted(seen) == sorted(GOOD)
    code, stdout, _ = run_cli("inference.py", [folder, CAFFEMODEL, "--save_dir", tmp_path / "shard0", "--shard",
                                               "0/2", "--skip_existing"], capsys)
    assert code == 0 and "Nothing to do" in stdout


def test_globs_and_lists_mirror_the_deepest_common_folder(folder, tmp_path):
    items, single = gather(str(folder / "**" / "*.png"))
    assert not single and [i.name for i in items] == ["b", "gray", "sub/rgba"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"photos/sub/rgba.png\n{folder / 'a.jpg'}\n")
    assert [i.name for i in gather(str(listing))[0]] == ["sub/rgba", "a"]
    Image.fromarray(_photo(0)).save(folder / "a.png")
    with pytest.raises(Exception, match="would write the same outputs"):
        gather(str(folder))


def test_an_exif_rotated_photo_gets_the_mask_of_its_displayed_size(tmp_path, capsys):
    upright = _photo(5, 61, 45)  # displayed: 45 wide, 61 high
    Image.fromarray(upright).save(tmp_path / "upright.png")
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored.save(tmp_path / "rotated.png", exif=exif)
    masks = {}
    for name in ("upright", "rotated"):
        code, _, err = run_cli("inference.py", [tmp_path / f"{name}.png", CAFFEMODEL, "--save_dir", tmp_path / name],
                               capsys)
        assert code == 0, err
        masks[name] = _mask(tmp_path / name / "mask.png")
    assert masks["rotated"].shape == (61, 45)
    np.testing.assert_array_equal(masks["rotated"], masks["upright"])


def test_max_size_runs_large_images_downscaled_and_gives_full_size_masks(tmp_path, capsys):
    Image.fromarray(_photo(6, 300, 400)).save(tmp_path / "big.png")
    code, _, err = run_cli("inference.py", [tmp_path / "big.png", CAFFEMODEL, "--save_dir", tmp_path / "o",
                                            "--max_size", "100", "--outputs", "mask,probs"], capsys)
    assert code == 0, err
    mask = _mask(tmp_path / "o" / "mask.png")
    assert mask.shape == (300, 400)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "probs.npy").argmax(-1), mask)


def test_upsampling_in_row_blocks_equals_caffe_interp():
    probs = np.random.RandomState(0).uniform(size=(7, 9, 3)).astype(np.float32)
    whole = np.concatenate([block for _, block in upsample_rows(probs, 50, 61, rows=16)])
    expected = interp_bilinear(probs[None], [50, 61]).numpy()[0]
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6)


def test_float16_probabilities_keep_the_argmax():
    probs = np.array([[[0.5000001, 0.4999999, 0.0]]], np.float32)  # a tie once rounded to float16
    labels = probs.argmax(-1)
    assert float16_keeping_argmax(probs, labels).argmax(-1).tolist() == labels.tolist()


def test_collection_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("inference.py", [tmp_path / "empty", CAFFEMODEL], capsys)
    assert_one_line_error(code, err, "empty", "no images")
    Image.fromarray(_photo(0)).save(tmp_path / "x.png")
    (tmp_path / "file").write_text("")
    code, _, err = run_cli("inference.py", [tmp_path / "x.png", CAFFEMODEL, "--save_dir", tmp_path / "file" / "o"],
                           capsys)
    assert_one_line_error(code, err, "--save_dir is not writable")
    code, _, err = run_cli("inference.py", [tmp_path / "x.png", CAFFEMODEL, "--shard", "2/2"], capsys)
    assert_one_line_error(code, err, "--shard 2/2", "K must be 0..N-1")
    code, _, err = run_cli("evaluate.py", ["--restore_from", CAFFEMODEL, "--num_steps", "0"], capsys)
    assert_one_line_error(code, err, "--num_steps 0")


def _segmented(stdout):
    return int(re.search(r"Segmented (\d+) images?\b", stdout).group(1))


def test_large_images_run_downscaled_above_max_pixels_and_the_summary_says_so(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        Image.fromarray(_photo(i)).save(root / f"small{i}.png")
    Image.fromarray(_photo(9, 300, 400)).save(root / "large.png")  # 120,000 pixels
    code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", tmp_path / "o", "--max_pixels",
                                                 "50000", "--outputs", "mask,probs"], capsys)
    assert code == 0, err
    assert _segmented(stdout) == 4 and "1 image above 0.05 MP ran downscaled (--max_pixels)" in stdout
    mask = _mask(tmp_path / "o" / "large.png")
    assert mask.shape == (300, 400)  # at the image's own size
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "probs" / "large.npy").argmax(-1), mask)
    code, stdout, err = run_cli("inference.py", [root / "large.png", CAFFEMODEL, "--save_dir", tmp_path / "one",
                                                 "--max_pixels", "50000"], capsys)
    assert code == 0 and "above 0.05 MP: ran downscaled" in stdout
    np.testing.assert_array_equal(_mask(tmp_path / "one" / "mask.png"), mask)


def test_an_image_the_net_runs_out_of_memory_on_fails_alone(tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    from deeplab_lfov.evaluation.predict import Predictor
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        Image.fromarray(_photo(i, 60, 80)).save(root / f"{i}.png")
    Image.fromarray(_photo(9, 60, 80)).save(root / "3_huge.png")  # same size: batched with the others

    def exhausted_on_huge(real):
        def run(self, rgbs):
            if any(rgb[0, 0].tolist() == huge_corner for rgb in rgbs):
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[1,64,60,80]")
            return real(self, rgbs)
        return run

    huge_corner = np.asarray(Image.open(root / "3_huge.png"))[0, 0].tolist()
    for method in ("probabilities_batch", "labels_batch"):  # masks alone come from labels_batch
        monkeypatch.setattr(Predictor, method, exhausted_on_huge(getattr(Predictor, method)))
    code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", tmp_path / "o", "--batch_size", "4"],
                                capsys)
    assert code == 2 and _segmented(stdout) == 3
    assert "3_huge.png: out of memory running the net on 80x60 pixels" in err and "--max_pixels" in err
    assert "1 of 4 images failed (1 x out of memory)" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path / "o")) == ["0.png", "1.png", "2.png"]


def test_an_input_folder_named_like_an_output_kind_never_gets_a_file_written_twice(tmp_path, capsys):
    root = tmp_path / "in"
    (root / "overlay").mkdir(parents=True)
    Image.fromarray(_photo(0)).save(root / "a.jpg")
    Image.fromarray(_photo(1)).save(root / "overlay" / "a.jpg")
    Image.fromarray(_photo(2)).save(root / "b.jpg")
    out = tmp_path / "out"
    code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", out, "--outputs", "mask,overlay"],
                                capsys)
    assert code == 2 and _segmented(stdout) == 1
    assert "2 of 3 images failed (2 x outputs would clash)" in err
    assert f"its mask and the overlay of {root / 'a.jpg'} would both be written to {out / 'overlay' / 'a.png'}" in err
    assert sorted(os.listdir(out)) == ["b.png", "overlay"] and os.listdir(out / "overlay") == ["b.png"]
    # The classic layout is as it was: masks at SAVE_DIR/<relative path>.png, an overlay/ input folder included.
    code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", tmp_path / "masks"], capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "masks" / "overlay")) == ["a.png"] and _segmented(stdout) == 3


def test_sharded_runs_into_one_save_dir_keep_each_failure_report(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(44):
        (root / f"bad{i:02d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    Image.fromarray(_photo(0)).save(root / "good.png")
    for k in (0, 1):
        code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", tmp_path / "o", "--shard",
                                                     f"{k}/2"], capsys)
        assert code == 2 and "images failed" in err
    reports = {name: (tmp_path / "o" / name).read_text().splitlines() for name in ("failed-0-of-2.txt",
                                                                                  "failed-1-of-2.txt")}
    assert not (tmp_path / "o" / "failed.txt").exists()
    assert sorted(len(lines) for lines in reports.values()) == [22, 22]
    assert len({line.split(":")[0] for lines in reports.values() for line in lines}) == 44


def test_name_clashes_and_files_that_are_not_images_do_not_stop_a_collection(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(_photo(0)).save(root / "coffee.gif")
    Image.fromarray(_photo(0)).save(root / "coffee.bmp")
    Image.fromarray(_photo(1)).save(root / "tea.png")
    (root / "notes.txt").write_text("not an image")
    (root / "readme.md").write_text("not an image")
    code, stdout, err = run_cli("inference.py", [root, CAFFEMODEL, "--save_dir", tmp_path / "o"], capsys)
    assert code == 2 and _segmented(stdout) == 1
    assert "skipped 2 files that are not images: notes.txt, readme.md" in stdout
    assert "2 of 3 images failed (2 x outputs would clash)" in err
    assert os.listdir(tmp_path / "o") == ["tea.png"]
