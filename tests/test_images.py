"""Reading and writing image files: decompression bombs are refused, writes are atomic."""

import os

import numpy as np
import pytest


def test_image_bombs_are_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from deeplab_lfov.core.errors import DeepLabError
    from deeplab_lfov.data.images import read_image
    path = tmp_path / "bomb.png"
    PILImage.new("RGB", (400, 300)).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10_000)  # Pillow's limit, scaled down for the test
    with pytest.raises(DeepLabError, match="bomb.png: refused, too many pixels"):
        read_image(str(path))


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
