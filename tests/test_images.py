"""Reading and writing image files: decompression bombs are refused, writes are atomic."""

import os

import numpy as np
import pytest


def test_image_bombs_are_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.data import images
    path = tmp_path / "bomb.png"
    PILImage.new("RGB", (400, 300)).save(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)  # the readers' limit, scaled down for the test
    with pytest.raises(DeepLabError, match="bomb.png: 400x300 = 120,000 pixels, more than the limit of 10,000"):
        images.read_image(str(path))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10_000)  # past Pillow's own hard limit too: the same error
    with pytest.raises(DeepLabError, match="bomb.png: 120,000 pixels, more than the limit of 10,000"):
        images.read_label(str(path))


def test_png_writes_leave_nothing_behind_when_the_disk_is_full(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from deeplab_lfov.data.colormap import save_mask

    def full_disk(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    with pytest.raises(OSError):
        save_mask(str(tmp_path / "mask.png"), np.zeros((4, 4), np.uint8))
    assert os.listdir(tmp_path) == []


# -- every mode Pillow opens, as RGB ---------------------------------------------------------------------------

MEAN_RGB = (123, 117, 104)  # the network's mean colour: what transparent pixels become


def _expect_modes():
    """(name, writer of the file, expected RGB or the refusal): one case per image mode Pillow opens."""
    import numpy as np
    from PIL import Image as PILImage
    grey = np.array([[0, 64, 128], [192, 255, 7]], np.uint8)
    rgb = np.stack([grey, grey[::-1], 255 - grey], -1)
    alpha = np.array([[0, 255, 128], [255, 0, 255]], np.uint8)

    def blend(colour):
        a = alpha[..., None].astype(np.float64) / 255
        return np.rint(colour * a + np.array(MEAN_RGB) * (1 - a)).astype(np.uint8)

    def save(image, fmt, **kw):
        return lambda path: image.save(path, format=fmt, **kw)

    p = PILImage.fromarray(np.array([[0, 1, 2], [2, 1, 0]], np.uint8), mode="P")
    p.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0])
    lut = np.array([[10, 20, 30], [200, 100, 50], [0, 255, 0]], np.uint8)
    sixteen = np.array([[0, 257, 65535], [32768, 1000, 65280]], np.uint16)
    sixteen_8 = ((sixteen.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    wide = np.array([[-70000, 0, 70000], [35000, -35000, 1]], np.int32)  # past 16 bits: by its range
    wide_8 = np.rint((wide - wide.min()) * (255 / (wide.max() - wide.min()))).astype(np.uint8)
    cmyk = PILImage.fromarray(rgb).convert("CMYK")
    lab = PILImage.fromarray(rgb).convert("LAB")
    return {
        "1": (save(PILImage.fromarray(grey > 100), "PNG"), np.stack([(grey > 100) * 255] * 3, -1)),
        "L": (save(PILImage.fromarray(grey, "L"), "PNG"), np.stack([grey] * 3, -1)),
        "P": (save(p, "PNG"), lut[np.asarray(p)]),
        "P+transparency": (save(p, "PNG", transparency=0), np.where(np.asarray(p)[..., None] == 0, MEAN_RGB,
                                                                    lut[np.asarray(p)]).astype(np.uint8)),
        "RGB": (save(PILImage.fromarray(rgb), "PNG"), rgb),
        "RGBA": (save(PILImage.fromarray(np.dstack([rgb, alpha])), "PNG"), blend(rgb)),
        "LA": (save(PILImage.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"), blend(np.stack([grey] * 3, -1))),
        "PA": (save(PILImage.merge("PA", [p, PILImage.fromarray(alpha)]), "TIFF"), blend(lut[np.asarray(p)])),
        "CMYK": (save(cmyk, "TIFF"), np.asarray(cmyk.convert("RGB"))),
        "LAB": (save(lab, "TIFF"), np.asarray(lab.convert("RGB"))),
        "YCbCr": (save(PILImage.fromarray(rgb).convert("YCbCr"), "TIFF"),
                  np.asarray(PILImage.fromarray(rgb).convert("YCbCr").convert("RGB"))),
        "I;16 PNG": (save(PILImage.fromarray(sixteen), "PNG"), np.stack([sixteen_8] * 3, -1)),
        "I;16 TIFF": (save(PILImage.fromarray(sixteen), "TIFF"), np.stack([sixteen_8] * 3, -1)),
        "I 16-bit values": (save(PILImage.fromarray(sixteen.astype(np.int32), "I"), "TIFF"),
                            np.stack([sixteen_8] * 3, -1)),
        "I 8-bit values": (save(PILImage.fromarray(grey.astype(np.int32), "I"), "PPM"), np.stack([grey] * 3, -1)),
        "I 32-bit values": (save(PILImage.fromarray(wide, "I"), "TIFF"), np.stack([wide_8] * 3, -1)),
        "F": (save(PILImage.fromarray(grey.astype(np.float32), "F"), "TIFF"), "mode F"),
    }


@pytest.mark.parametrize("case", list(_expect_modes()))
def test_every_image_mode_is_converted_or_refused_with_its_reason(tmp_path, case):
    """A 16-bit greyscale PNG was read as all white; hidden colours of transparent pixels leaked through."""
    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.data.images import read_image
    write, expected = _expect_modes()[case]
    path = str(tmp_path / "image.img")
    write(path)
    if isinstance(expected, str):
        with pytest.raises(DeepLabError, match=f"image.img: .*{expected}"):
            read_image(path)
        return
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_allclose(got.astype(int), expected.astype(int), atol=1)


# -- overlays --------------------------------------------------------------------------------------------------


def _scene(height, width):
    labels = np.zeros((height, width), np.uint8)
    labels[height // 4: height // 2, width // 5: width // 2] = 15  # person
    labels[height // 2:, width // 2:] = 12  # dog
    labels[: max(1, height // 40), : max(1, width // 40)] = 255  # ignored
    rgb = np.full((height, width, 3), 90, np.uint8)
    rgb[..., 0] = (np.arange(width) * 255 // max(width - 1, 1))[None, :]
    rgb[..., 1] = (np.arange(height) * 255 // max(height - 1, 1))[:, None]
    return rgb, labels


def test_legend_entries_are_the_classes_present_by_share():
    from deeplab_lfov.data.colormap import VOC_CLASSES, legend_entries
    _, labels = _scene(120, 160)
    entries = legend_entries(labels, VOC_CLASSES)
    assert [name for _, name, _ in entries] == ["background", "dog", "person"]  # largest share first, no ignore
    shares = {name: share for _, name, share in entries}
    assert shares["dog"] == pytest.approx(((labels == 12).sum()) / labels.size)


@pytest.mark.parametrize("height,width", [(120, 160), (375, 500), (3000, 4000)])
def test_the_overlay_legend_is_outside_the_image_and_grows_with_it(height, width):
    from deeplab_lfov.data.colormap import VOC_CLASSES, VOC_COLORS, overlay
    rgb, labels = _scene(height, width)
    out = overlay(rgb, labels, VOC_CLASSES)
    assert out.shape[1] == width and out.shape[0] > height
    if height < 1000:  # (the blend is the same at every size)
        plain = overlay(rgb, labels, VOC_CLASSES, legend=False)
        assert plain.shape == rgb.shape
        np.testing.assert_array_equal(out[:height], plain)  # the legend hides nothing of the image
        assert np.array_equal(plain[0, -1], rgb[0, -1])  # background keeps the photo
    strip = out[height:]
    for cls in (12, 15):  # a swatch in the class colour for each class present
        assert (strip.reshape(-1, 3) == VOC_COLORS[cls]).all(-1).sum() >= 25
    bright = (strip.max(-1) > 200).any(1)  # rows with text
    assert bright.sum() >= max(6, height // 100), "the legend's text grows with the image"
    assert strip.shape[0] <= max(60, height // 6)  # and stays a strip


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])  # counted by bincount (8-bit) and by np.unique (wider)
def test_out_of_range_label_values_are_counted_in_the_singular_and_the_plural(dtype):
    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.data.images import check_label_values
    label = np.zeros((4, 8), dtype)
    label[0, :3] = 40  # three pixels of one value, one pixel of another
    label[1, 0] = 30
    with pytest.raises(DeepLabError) as e:
        check_label_values(label, 21, 255, "a.png")
    assert str(e.value) == "a.png: label values outside 0..20 and ignore label 255: 40 (3 pixels), 30 (1 pixel)"
    label[2, :5] = [50, 51, 52, 53, 54]  # seven values out of range: five shown, two counted
    with pytest.raises(DeepLabError, match=r": 40 \(3 pixels\), 30 \(1 pixel\), 50 \(1 pixel\), 51 \(1 pixel\), "
                                            r"52 \(1 pixel\) and 2 more values$"):
        check_label_values(label, 21, 255, "a.png")
    label[2, 4] = 0  # six: one more value
    with pytest.raises(DeepLabError, match=r"52 \(1 pixel\) and 1 more value$"):
        check_label_values(label, 21, 255, "a.png")
