"""Flag groups shared by several programs, each defined once as a mixin ``Config``.

``ClassesConfig`` (``--classes``), ``DataConfig`` (where images and labels are, and what they mean),
``WeightsConfig`` (the weights to start from), ``PrecisionConfig``, ``TestTimeConfig`` (scales, flip,
padding) and ``CRFConfig`` (DeepLab's CRF parameters).  A program's config inherits the groups it has.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from ..core.constants import IGNORE_LABEL, MODELS, NUM_CLASSES, PRECISIONS
from ..core.errors import DeepLabError
from .flags import Config, label_value, non_negative, optional_positive, parse_floats, positive, setting

__all__ = ["ModelConfig", "ClassesConfig", "DataConfig", "WeightsConfig", "PrecisionConfig", "TestTimeConfig", "CRFConfig",
           "check_ignore_label"]


@dataclasses.dataclass
class ModelConfig(Config):
    """Which of the paper's nets (``--model``) and whether it runs on multi-scale inputs (``--msc``)."""

    model: Optional[str] = setting(
        None, "the net: largefov (DeepLab-LargeFOV, VGG-16), aspp-s / aspp-l (DeepLab-ASPP on VGG-16, rates "
        "2,4,8,12 / 6,12,18,24), resnet101 (DeepLab-v2 ResNet-101 with ASPP-L). Default: the model the weights "
        "record or hold, else largefov", parse=str, choices=MODELS, group="model")
    msc: Optional[bool] = setting(
        None, "multi-scale inputs (MSC): the net on the image at 1, 0.75 and 0.5, logits fused by their maximum, "
        "a loss on each in training. Default: the weights' record, else on for resnet101 and off for the others "
        "(the paper's recipes)", parse=bool, group="model")


@dataclasses.dataclass
class ClassesConfig(Config):
    classes: Optional[str] = setting(None, "classes file: one class per line, 'name' or 'name R G B', background "
                                           "first (default: the 21 PASCAL VOC classes and colours)", parse=str,
                                     group="data")

    @property
    def class_list(self):
        """The ``classes.ClassList`` of ``--classes`` (VOC's without it)."""
        from ..data.classes import read_classes
        return read_classes(self.classes)

    def classes_for(self, num_classes: int, recorded=None, weights: str = "the weights"):
        """The classes of a model of ``num_classes`` classes: ``--classes`` if given (it must list as many),
        else the ones its weights record (``recorded``, a ``ClassList``), else VOC's for 21 classes, else
        numbered classes."""
        import numpy as np

        from ..data.classes import VOC, ClassList
        if self.classes:
            given = self.class_list
            if len(given) != num_classes:
                known = f" ({', '.join(recorded.names[:4])}{' ...' if len(recorded) > 4 else ''})" if (
                    recorded is not None and len(recorded) == num_classes) else ""
                raise DeepLabError(f"--classes {self.classes} lists {len(given)} classes; {weights} have "
                                   f"{num_classes}{known}: pass the classes file they were trained with, or no "
                                   f"--classes (weights trained here record their classes)")
            return given
        if recorded is not None and len(recorded) == num_classes:
            return recorded
        if num_classes == NUM_CLASSES:
            return VOC
        return ClassList(tuple(f"class {i}" for i in range(num_classes)), np.array(VOC.colors), source="numbered")


def check_ignore_label(ignore_label: int, num_classes: int) -> None:
    """An unsure pixel needs a value of its own: ``--ignore_label`` may not be one of the classes."""
    if ignore_label < num_classes:
        raise DeepLabError(f"--ignore_label {ignore_label} is one of the {num_classes} classes; "
                           f"it must be {num_classes} or more (VOC: {IGNORE_LABEL})")


@dataclasses.dataclass
class DataConfig(ClassesConfig):
    """Where the images and labels are, and what the labels mean."""

    data_dir: str = setting("/home/VOCdevkit", "prefix of the paths in --data_list", group="data")
    data_list: str = setting("./dataset/train.txt", "list of 'IMAGE LABEL' lines, or of bare image IDs "
                                                    "(JPEGImages/ID.jpg, SegmentationClassAug/ID.png)", group="data")
    label_dir: Optional[str] = setting(None, "take every label from this folder instead, by its file name "
                                             "(pseudo labels: one list, many label sets)", parse=str, group="data")
    num_classes: Optional[int] = setting(None, f"classes, background included (default: the --classes file's "
                                               f"count, else {NUM_CLASSES})", parse=int, check=optional_positive,
                                         group="data")
    ignore_label: int = setting(IGNORE_LABEL, "label value excluded from the loss and the metrics",
                                check=label_value, group="data")

    # Programs that read a model's weights take its number of classes from them (None until then).
    CLASSES_FROM_WEIGHTS = False

    def __post_init__(self):
        if self.classes:
            count = len(self.class_list)
            if self.num_classes is None:
                self.num_classes = count
            elif self.num_classes != count:
                raise DeepLabError(f"--num_classes {self.num_classes}, but --classes {self.classes} lists {count}")
        elif self.num_classes is None and not self.CLASSES_FROM_WEIGHTS:
            self.num_classes = NUM_CLASSES
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.num_classes is None:  # to be read from the weights; checked again then
            return
        if self.num_classes > 255:
            raise DeepLabError(f"--num_classes {self.num_classes}: labels are 8-bit PNGs, at most 255 classes")
        check_ignore_label(self.ignore_label, self.num_classes)


@dataclasses.dataclass
class WeightsConfig(Config):
    """The weights to start from (``--weights_path`` is the classic port's second name for it)."""

    restore_from: Optional[str] = setting(
        None, "weights: TensorFlow checkpoint, snapshot directory (its latest), .caffemodel or classic pickle",
        parse=str, group="weights")
    weights_path: Optional[str] = setting(None, "the classic pickle of weights (same as --restore_from)",
                                          parse=str, group="weights")

    @property
    def weights(self) -> Optional[str]:
        """The one weights source the flags name: ``--weights_path`` wins, as in the classic scripts."""
        return self.weights_path or self.restore_from


@dataclasses.dataclass
class PrecisionConfig(Config):
    precision: str = setting(
        "fp32", "compute precision; variables stay fp32. fp32 matches Caffe; bf16/fp16 are faster on GPUs "
        "and on CPUs with bf16 instructions (bench/bench.py); fp16 needs a GPU",
        choices=PRECISIONS, group="precision")


@dataclasses.dataclass
class TestTimeConfig(PrecisionConfig):
    scales: Tuple[float, ...] = setting((1.0,), "test scales whose probabilities are averaged, e.g. 0.5,0.75,1.0",
                                        parse=parse_floats, check=positive, group="test time", show="1.0")
    flip: bool = setting(False, "average with the mirrored image's prediction", group="test time")
    pad_to: Optional[int] = setting(None, "pad inputs with the mean colour to this size (DeepLab: 513)",
                                    parse=int, check=optional_positive, group="test time")

    def __post_init__(self):
        self.scales = tuple(float(s) for s in self.scales)
        super().__post_init__()


@dataclasses.dataclass
class CRFConfig(Config):
    """``--crf`` and DeepLab's CRF parameters (the LargeFOV values of the paper by default)."""

    crf: bool = setting(False, "refine predictions with the dense CRF", group="dense CRF")
    bi_w: float = setting(4.0, "bilateral kernel weight", check=non_negative, group="dense CRF")
    bi_xy_std: float = setting(121.0, "bilateral position std (pixels)", check=positive, group="dense CRF")
    bi_rgb_std: float = setting(5.0, "bilateral colour std", check=positive, group="dense CRF")
    pos_w: float = setting(3.0, "Gaussian kernel weight", check=non_negative, group="dense CRF")
    pos_xy_std: float = setting(3.0, "Gaussian position std (pixels)", check=positive, group="dense CRF")
    crf_iterations: int = setting(10, "mean-field iterations", check=positive, group="dense CRF")
    crf_backend: str = setting("tf", "tf (TensorFlow operations: any device, no extra package, inside exported "
                                     "models) or pydensecrf (the optional compiled reference, pip install "
                                     "pydensecrf2)", choices=("tf", "pydensecrf"), group="dense CRF")

    def validate(self) -> None:
        super().validate()
        if self.crf:
            from ..crf.dense import check_backend
            check_backend(self.crf_backend)  # a missing CRF package fails here, before any work

    def make_crf(self):
        """The CRF the flags ask for (``crf.make_crf``), or None without ``--crf``; fails at once if the
        backend's package is missing."""
        params = self.crf_params()
        if params is None:
            return None
        from ..crf.dense import make_crf
        return make_crf(params, self.crf_backend)

    def crf_params(self):
        """The ``crf.CRFParams`` of these flags, or None without ``--crf``."""
        if not self.crf:
            return None
        from ..crf.params import CRFParams
        return CRFParams(bi_w=self.bi_w, bi_xy_std=self.bi_xy_std, bi_rgb_std=self.bi_rgb_std, pos_w=self.pos_w,
                         pos_xy_std=self.pos_xy_std, iterations=self.crf_iterations)


