"""Every setting of every script, written once: name, default, help, parser and check.

A script's settings are a dataclass whose fields carry their flag's help text, parser and
validity check in ``dataclasses.field`` metadata.  ``add_arguments`` turns the fields into
``argparse`` flags (same names as the classic scripts), ``from_args`` builds the dataclass back
from parsed flags, and building it, from flags or from Python, validates every value before any
file is read: a bad value is a ``DeepLabError`` that names the flag.

Flag groups shared by several scripts are mixins defined once here: ``DataSettings``,
``WeightsSettings``, ``PrecisionSettings``, ``TestTimeSettings`` and ``CRFSettings``.

This module imports no TensorFlow, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .errors import DeepLabError

__all__ = [
    "NUM_CLASSES", "IGNORE_LABEL", "PRECISIONS", "setting", "Settings", "DataSettings", "WeightsSettings",
    "PrecisionSettings", "TestTimeSettings", "CRFSettings", "ClassesSettings", "TrainConfig", "EvalConfig", "InferConfig",
    "CheckDataConfig", "CRFSearchConfig", "ExtractParamsConfig", "PrepareVOCConfig", "parse_size", "parse_floats",
    "FIXED_BY_SNAPSHOT",
]

NUM_CLASSES = 21  # PASCAL VOC: background and 20 object classes
IGNORE_LABEL = 255  # VOC's 'void' label: excluded from the loss and the metrics
PRECISIONS = ("fp32", "bf16", "fp16")
VOC_HINT = "PASCAL VOC goes there: see the README, section Data"


# ----------------------------------------------------------------------------------- parsers
def parse_size(text: str) -> Tuple[int, int]:
    """``"321,321"`` -> (321, 321)."""
    try:
        h, w = (int(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH, got {text!r}") from None
    return h, w


def parse_floats(text: str) -> Tuple[float, ...]:
    """``"0.5,0.75,1.0"`` -> (0.5, 0.75, 1.0)."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


# ------------------------------------------------------------------------------------ checks
def positive(value) -> Optional[str]:
    values = value if isinstance(value, tuple) else (value,)
    return None if all(v > 0 for v in values) else "must be positive"


def non_negative(value) -> Optional[str]:
    return None if value >= 0 else "must not be negative"


def optional_positive(value) -> Optional[str]:
    return None if value is None or value > 0 else "must be positive"


def fraction(value) -> Optional[str]:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def required(value) -> Optional[str]:
    return None if value else "is required"


def label_value(value) -> Optional[str]:
    return None if 0 <= value <= 255 else "must be a label value 0..255"


def setting(default: Any, help: str, *, parse: Optional[Callable[[str], Any]] = None,
            choices: Optional[Sequence[str]] = None, check: Optional[Callable[[Any], Optional[str]]] = None,
            group: str = "", positional: bool = False, metavar: Optional[str] = None,
            show: Optional[str] = None, nargs: Optional[str] = None) -> Any:
    """A dataclass field that is also a command-line flag ``--NAME``.

    Args:
      default: the default value (the classic one for the classic flags).
      help: the flag's help text.
      parse: turns the flag's text into the value (default: the type of ``default``).
      choices: the allowed values.
      check: value -> None or what is wrong with it (e.g. "must be positive").
      group: the heading of the flag in ``--help``.
      positional: a positional argument instead of a flag.
      show: how the default is shown in ``--help`` (for tuples).
      nargs: argparse's ``nargs`` (the value is then a tuple).
    """
    metadata = {"help": help, "parse": parse, "choices": tuple(choices) if choices else None, "check": check,
                "group": group, "positional": positional, "metavar": metavar, "show": show, "nargs": nargs}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class Settings:
    """Base of every script's settings: validation at construction, argparse in and out."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices, check = f.metadata.get("choices"), f.metadata.get("check")
            if choices and value not in choices:
                raise DeepLabError(f"{self.flag(f.name)}: {value!r} is not one of {', '.join(choices)}")
            problem = check(value) if check else None
            if problem:
                raise DeepLabError(f"{self.flag(f.name)} {self._show(value)}: {problem}")
        self.validate()

    def validate(self) -> None:
        """Checks that involve several settings (subclasses extend it)."""

    @staticmethod
    def flag(name: str) -> str:
        return f"--{name}"

    @staticmethod
    def _show(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    # ------------------------------------------------------------------------------ argparse
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add one flag per field, under the headings of their groups."""
        groups: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if "help" not in meta:
                continue
            group = meta["group"]
            if group and group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups.get(group, parser)
            help_text = meta["help"]
            kwargs: Dict[str, Any] = {}
            if isinstance(f.default, bool):
                kwargs["action"] = "store_true" if not f.default else argparse.BooleanOptionalAction
                kwargs["default"] = f.default
                if f.default:
                    help_text += " (default: on)"
            else:
                kwargs["type"] = meta["parse"] or (type(f.default) if f.default is not None else str)
                kwargs["default"] = f.default
                if meta["choices"]:
                    kwargs["choices"] = meta["choices"]
                for key in ("metavar", "nargs"):
                    if meta[key]:
                        kwargs[key] = meta[key]
                shown = meta["show"] or (cls._show(f.default) if f.default is not None else None)
                if shown is not None and not meta["positional"]:
                    help_text += f" (default: {shown})"
            if meta["positional"]:
                kwargs.pop("default", None)
                target.add_argument(f.name, help=help_text, **kwargs)
            else:
                target.add_argument(f"--{f.name}", help=help_text, **kwargs)
        return parser

    @classmethod
    def parser(cls, description: str) -> argparse.ArgumentParser:
        return cls.add_arguments(argparse.ArgumentParser(description=description))

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        """The settings of parsed flags (validated)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})

    def as_record(self) -> Dict[str, Any]:
        """Every setting as JSON-friendly values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ---------------------------------------------------------------------------- shared groups
@dataclasses.dataclass
class ClassesSettings(Settings):
    classes: Optional[str] = setting(None, "classes file: one class per line, 'name' or 'name R G B', background "
                                           "first (default: the 21 PASCAL VOC classes and colours)", parse=str,
                                     group="data")

    @property
    def class_list(self):
        """The ``classes.ClassList`` of ``--classes`` (VOC's without it)."""
        from .classes import read_classes
        return read_classes(self.classes)


@dataclasses.dataclass
class DataSettings(ClassesSettings):
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

    def __post_init__(self):
        if self.classes:
            count = len(self.class_list)
            if self.num_classes is None:
                self.num_classes = count
            elif self.num_classes != count:
                raise DeepLabError(f"--num_classes {self.num_classes}, but --classes {self.classes} lists {count}")
        elif self.num_classes is None:
            self.num_classes = NUM_CLASSES
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.num_classes > 255:
            raise DeepLabError(f"--num_classes {self.num_classes}: labels are 8-bit PNGs, at most 255 classes")
        if self.ignore_label < self.num_classes:
            raise DeepLabError(f"--ignore_label {self.ignore_label} is one of the {self.num_classes} classes; "
                               f"it must be {self.num_classes} or more (VOC: {IGNORE_LABEL})")


@dataclasses.dataclass
class WeightsSettings(Settings):
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
class PrecisionSettings(Settings):
    precision: str = setting(
        "fp32", "compute precision; variables stay fp32. fp32 matches Caffe; bf16/fp16 are faster on GPUs "
        "and on CPUs with bf16 instructions (bench/bench.py); fp16 needs a GPU",
        choices=PRECISIONS, group="precision")


@dataclasses.dataclass
class TestTimeSettings(PrecisionSettings):
    scales: Tuple[float, ...] = setting((1.0,), "test scales whose probabilities are averaged, e.g. 0.5,0.75,1.0",
                                        parse=parse_floats, check=positive, group="test time", show="1.0")
    flip: bool = setting(False, "average with the mirrored image's prediction", group="test time")
    pad_to: Optional[int] = setting(None, "pad inputs with the mean colour to this size (DeepLab: 513)",
                                    parse=int, check=optional_positive, group="test time")

    def __post_init__(self):
        self.scales = tuple(float(s) for s in self.scales)
        super().__post_init__()


@dataclasses.dataclass
class CRFSettings(Settings):
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

    def make_crf(self):
        """The CRF the flags ask for (``crf.make_crf``), or None without ``--crf``; fails at once if the
        backend's package is missing."""
        params = self.crf_params()
        if params is None:
            return None
        from .crf import make_crf
        return make_crf(params, self.crf_backend)

    def crf_params(self):
        """The ``crf.CRFParams`` of these flags, or None without ``--crf``."""
        if not self.crf:
            return None
        from .crf import CRFParams
        return CRFParams(bi_w=self.bi_w, bi_xy_std=self.bi_xy_std, bi_rgb_std=self.bi_rgb_std, pos_w=self.pos_w,
                         pos_xy_std=self.pos_xy_std, iterations=self.crf_iterations)


# --------------------------------------------------------------------------- the scripts
@dataclasses.dataclass
class TrainConfig(DataSettings, WeightsSettings, PrecisionSettings):
    """Every setting of a training run: the flags of ``train.py``."""

    restore_from: Optional[str] = setting(
        "./deeplab_lfov.ckpt", "initial weights: checkpoint, directory, .caffemodel or classic pickle. The "
        "default is what util/extract_params.py writes; if it does not exist, training starts from a random "
        "initialisation (with a note)", parse=str, group="weights")
    not_restore_last: bool = setting(False, "do not restore fc8 (a new number of classes)", group="weights")
    batch_size: int = setting(16, "global batch (all replicas together)", check=positive)
    input_size: Tuple[int, int] = setting((321, 321), "crop size HEIGHT,WIDTH", parse=parse_size, check=positive,
                                          metavar="H,W")
    learning_rate: float = setting(1e-4, "base learning rate", check=positive)
    num_steps: int = setting(20000, "number of training steps", check=non_negative)
    save_dir: str = setting("./images/", "where training figures are saved")
    save_num_images: int = setting(2, "images in each figure", check=non_negative)
    save_pred_every: int = setting(500, "snapshot and figure every N steps", check=positive)
    snapshot_dir: str = setting("./snapshots/", "where model.ckpt-STEP snapshots go")
    log_dir: Optional[str] = setting(None, "TensorBoard directory (default: SNAPSHOT_DIR/logs)", parse=str)
    optimizer: str = setting("adam", "adam (classic port) or sgd (DeepLab: momentum, lr x10/x20 for fc8, x2 biases)",
                             choices=("adam", "sgd"), group="optimisation")
    momentum: float = setting(0.9, "SGD momentum / Adam beta_1", check=fraction, group="optimisation")
    weight_decay: float = setting(0.0, "L2 on filters (DeepLab: 5e-4)", check=non_negative, group="optimisation")
    lr_policy: str = setting("fixed", "learning-rate schedule", choices=("fixed", "step", "poly"),
                             group="optimisation")
    lr_step: int = setting(2000, "'step' policy: steps between decays", check=positive, group="optimisation")
    lr_gamma: float = setting(0.1, "'step' policy: decay factor", check=positive, group="optimisation")
    lr_power: float = setting(0.9, "'poly' policy: power", check=non_negative, group="optimisation")
    random_scale: bool = setting(True, "random scaling by a factor in --scale_range", group="augmentation")
    scale_range: Tuple[float, float] = setting((0.75, 1.25), "LOW,HIGH of the random scale (weakly-supervised "
                                               "recipes: 0.5,1.5)", parse=parse_floats, check=positive,
                                               group="augmentation", show="0.75,1.25", metavar="LOW,HIGH")
    random_mirror: bool = setting(True, "random left-right mirroring", group="augmentation")
    random_seed: int = setting(1234, "seed of the initialisation and the augmentation")
    width_multiplier: float = setting(1.0, "widths of a freshly initialised net (0.125 = the small test net)",
                                      check=positive)
    max_to_keep: int = setting(5, "snapshots kept", check=positive)
    print_every: int = setting(1, "progress line every N steps", check=positive)
    skip_check: bool = setting(False, "skip the pre-flight check of the list")
    skip_bad: bool = setting(False, "train without the entries the check rejects")
    strategy: str = setting("default", "tf.distribute strategy (multi_worker reads TF_CONFIG)",
                            choices=("default", "mirrored", "multi_worker"))
    iter_size: int = setting(1, "accumulate gradients over N batches per update (Caffe's iter_size): "
                                "--batch_size 10 --iter_size 3 is DeepLab's batch of 30 on a small GPU",
                             check=positive, group="optimisation")
    class_weights: Optional[str] = setting(None, "per-class loss weights: 'balanced' (median frequency over the "
                                                 "training labels) or a file with one weight per class",
                                           parse=str, group="optimisation")
    val_list: Optional[str] = setting(None, "validation list: mean IoU while training, best snapshot kept in "
                                            "SNAPSHOT_DIR/best/", parse=str, group="validation")
    val_label_dir: Optional[str] = setting(None, "labels of --val_list from this folder (see --label_dir)",
                                           parse=str, group="validation")
    val_every: Optional[int] = setting(None, "validate every N steps (default: --save_pred_every)", parse=int,
                                       check=optional_positive, group="validation")
    val_num_images: Optional[int] = setting(None, "validate on the first N images of --val_list (default: all)",
                                            parse=int, check=optional_positive, group="validation")

    def __post_init__(self):
        self.input_size = tuple(int(v) for v in self.input_size)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.skip_bad and self.skip_check:
            raise DeepLabError("--skip_bad needs the pre-flight check; it cannot be used with --skip_check")
        if len(self.scale_range) != 2 or self.scale_range[0] > self.scale_range[1]:
            raise DeepLabError(f"--scale_range {self._show(self.scale_range)}: expected LOW,HIGH with LOW <= HIGH")
        if (self.val_every or self.val_num_images or self.val_label_dir) and not self.val_list:
            raise DeepLabError("--val_every, --val_num_images and --val_label_dir need --val_list")

    @property
    def logs(self) -> str:
        """The TensorBoard directory."""
        import os
        return self.log_dir or os.path.join(self.snapshot_dir, "logs")


# Settings a snapshot fixes: resuming with another value is an error, not a change.
FIXED_BY_SNAPSHOT = ("num_classes", "width_multiplier", "optimizer")


@dataclasses.dataclass
class EvalConfig(DataSettings, WeightsSettings, TestTimeSettings, CRFSettings):
    """The flags of ``evaluate.py``."""

    data_list: str = setting("./dataset/val.txt", "list of 'IMAGE LABEL' lines", group="data")
    num_steps: int = setting(1449, "evaluate the first N images of the list (VOC 2012 val has 1,449)",
                             check=positive)
    save_dir: Optional[str] = setting("./images_val/", "write each prediction as a palette PNG here, named after "
                                      "its image ('' = write none)", parse=str)
    workers: int = setting(0, "CRF worker processes (0 = one per CPU)", check=non_negative, group="dense CRF")
    skip_check: bool = setting(False, "skip the pre-flight check of the list")
    pred_dir: Optional[str] = setting(None, "score the masks in this folder instead of running a model: index or "
                                            "palette PNGs named after the images (pseudo labels, another program's "
                                            "output); 255 counts as a miss", parse=str)

    def validate(self) -> None:
        super().validate()
        if self.pred_dir and (self.weights or self.crf):
            raise DeepLabError("--pred_dir scores existing masks: it takes no --restore_from and no --crf "
                               "(refine masks with util/crf_refine.py)")
        if not self.weights and not self.pred_dir:
            raise DeepLabError("--restore_from is required: a checkpoint, a snapshot directory or a .caffemodel "
                               "(or --pred_dir to score existing masks)")


def parse_names(text: str) -> Tuple[str, ...]:
    """``"mask,overlay"`` -> ("mask", "overlay")."""
    return tuple(v.strip() for v in str(text).split(",") if v.strip())


OUTPUT_KINDS = ("mask", "overlay", "probs")
EXPORT_FORMATS = ("saved_model", "tflite")
TFLITE_QUANTIZATIONS = ("none", "float16", "dynamic")


def subset(value, allowed: Sequence[str]) -> Optional[str]:
    """None if ``value`` is a non-empty tuple of allowed names, else what is wrong."""
    unknown = [v for v in value if v not in allowed]
    if unknown or not value:
        return f"unknown {', '.join(unknown) or 'empty value'}; choose from {', '.join(allowed)}"
    return None


def output_kinds(value) -> Optional[str]:
    return subset(value, OUTPUT_KINDS)


def parse_shard(text: str) -> Tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N; raises ValueError otherwise."""
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError("expected K/N, e.g. 0/4") from None
    if not 0 <= k < n:
        raise ValueError("K must be 0..N-1")
    return k, n


def shard_spec(value) -> Optional[str]:
    try:
        value is None or parse_shard(value)
    except ValueError as e:
        return str(e)
    return None


@dataclasses.dataclass
class InferConfig(TestTimeSettings, CRFSettings, ClassesSettings):
    """The arguments of ``inference.py IMG_PATH MODEL_WEIGHTS``."""

    img_path: str = setting("", "an image, a folder of images (recursively), a quoted glob ('photos/*.jpg') or a "
                                ".txt list of image paths", positional=True)
    model_weights: str = setting("", "checkpoint, checkpoint directory, .caffemodel or classic pickle",
                                 positional=True)
    save_dir: str = setting("./output/", "where the outputs go: mask.png for one image; for a collection one "
                                         "mask per image at its path relative to the input folder")
    num_classes: Optional[int] = setting(None, f"classes of the model (default: read from the weights, else "
                                               f"{NUM_CLASSES})", parse=int, check=optional_positive)
    outputs: Tuple[str, ...] = setting(("mask",), "what to write, comma-separated: mask (palette PNG of class "
                                       "indices), overlay (the image with the class colours and a legend), probs "
                                       "(float16 .npy of the HxWxC probabilities)", parse=parse_names,
                                       check=output_kinds, show="mask", group="collections")
    batch_size: int = setting(4, "images of equal size run through the net together", check=positive,
                              group="collections")
    skip_existing: bool = setting(False, "skip images whose outputs all exist (resume after a crash)",
                                  group="collections")
    shard: Optional[str] = setting(None, "K/N: take the images whose sorted index is K mod N (job arrays)",
                                   parse=str, check=shard_spec, group="collections", metavar="K/N")
    max_size: Optional[int] = setting(None, "run images whose longer side exceeds this many pixels downscaled, "
                                            "and upsample their probabilities back", parse=int,
                                      check=optional_positive, group="collections")

    def __post_init__(self):
        self.outputs = tuple(self.outputs)
        super().__post_init__()


@dataclasses.dataclass
class ExportConfig(TestTimeSettings, CRFSettings, ClassesSettings):
    """The arguments of ``util/export_model.py MODEL_WEIGHTS``."""

    model_weights: str = setting("", "checkpoint, checkpoint directory, .caffemodel or classic pickle",
                                 positional=True)
    output_dir: str = setting("./export/", "where saved_model/ and the .tflite files go")
    formats: Tuple[str, ...] = setting(("saved_model", "tflite"), "what to export, comma-separated", parse=parse_names,
                                       check=lambda v: subset(v, EXPORT_FORMATS), show="saved_model,tflite")
    tflite_size: int = setting(513, "the fixed square input size of the TFLite files (DeepLab tests on 513)",
                               check=positive, group="tflite")
    tflite_quantize: Tuple[str, ...] = setting(("none",), "TFLite weights, comma-separated: none (fp32), float16, "
                                               "dynamic (int8 dynamic range)", parse=parse_names,
                                               check=lambda v: subset(v, TFLITE_QUANTIZATIONS), show="none",
                                               group="tflite")
    check_images: Optional[str] = setting(None, "folder of images the written files are verified on (default: the "
                                                "bundled sample images)", parse=str)
    num_classes: Optional[int] = setting(None, "classes of the model (default: read from the weights)", parse=int,
                                         check=optional_positive)

    def __post_init__(self):
        self.formats, self.tflite_quantize = tuple(self.formats), tuple(self.tflite_quantize)
        super().__post_init__()


@dataclasses.dataclass
class ConvertLabelsConfig(ClassesSettings):
    """The arguments of ``util/convert_labels.py INPUT``."""

    input: str = setting("", "a folder of label images (recursively), or a list file whose label column is read "
                             "(paths appended to --data_dir)", positional=True)
    output_dir: str = setting("", "where the index PNGs go (required)", check=required)
    data_dir: str = setting("", "prefix of the paths of a list file")
    binary: bool = setting(False, "0/255 or 0/1 masks -> background (0) / foreground (1)")
    num_classes: Optional[int] = setting(None, "classes (default: the --classes file's count; 2 with --binary; "
                                               "else 21)", parse=int, check=optional_positive)
    ignore_label: int = setting(IGNORE_LABEL, "label value of unlabelled pixels", check=label_value)
    workers: Optional[int] = setting(None, "parallel decoders (default: 2 x CPUs)", parse=int, check=optional_positive)

    def __post_init__(self):
        if self.num_classes is None:
            self.num_classes = len(self.class_list) if self.classes else 2 if self.binary else NUM_CLASSES
        super().__post_init__()


@dataclasses.dataclass
class CRFRefineConfig(CRFSettings, ClassesSettings):
    """The arguments of ``util/crf_refine.py INPUT_DIR``."""

    input_dir: str = setting("", "a folder of label PNGs (pseudo labels; 255 = unsure) or of probs/*.npy saved by "
                                 "inference.py --outputs probs", positional=True)
    image_dir: str = setting("", "the images, at the same relative paths (any image extension); required",
                             check=required)
    output_dir: str = setting("", "where the refined label PNGs go (required)", check=required)
    gt_prob: float = setting(0.7, "confidence of a hard label in the unary (the rest is spread over the other "
                                  "classes; 255 pixels are unconstrained)", check=lambda v: None if 0 < v < 1 else
                             "must be in (0, 1)")
    num_classes: Optional[int] = setting(None, f"classes (default: the --classes file's count, else {NUM_CLASSES})",
                                         parse=int, check=optional_positive)
    ignore_label: int = setting(IGNORE_LABEL, "label value of unsure pixels", check=label_value)
    workers: int = setting(0, "CRF worker processes (0 = one per CPU)", check=non_negative)
    skip_existing: bool = setting(False, "skip inputs whose output exists (resume)")

    def __post_init__(self):
        self.crf = True
        if self.num_classes is None:
            self.num_classes = len(self.class_list) if self.classes else NUM_CLASSES
        super().__post_init__()


@dataclasses.dataclass
class CheckDataConfig(DataSettings):
    """The flags of ``util/check_data.py``."""

    workers: Optional[int] = setting(None, "parallel decoders (default: 2 x CPUs)", parse=int,
                                     check=optional_positive)


@dataclasses.dataclass
class CRFSearchConfig(DataSettings):
    """The flags of ``util/crf_search.py``: the paper's grid by default."""

    data_list: str = setting("./dataset/val.txt", "list of 'IMAGE LABEL' lines", group="data")
    restore_from: str = setting("", "weights: checkpoint, snapshot directory or .caffemodel (required)",
                                check=required)
    num_images: int = setting(100, "first N images of the list", check=positive)
    bi_w: Tuple[float, ...] = setting((3.0, 4.0, 5.0, 6.0), "bilateral weights to try", parse=parse_floats,
                                      check=positive, group="grid", show="3,4,5,6")
    bi_xy_std: Tuple[float, ...] = setting((30.0, 50.0, 70.0, 90.0, 100.0), "bilateral xy stds to try",
                                           parse=parse_floats, check=positive, group="grid", show="30,50,70,90,100")
    bi_rgb_std: Tuple[float, ...] = setting((3.0, 4.0, 5.0, 6.0), "bilateral rgb stds to try", parse=parse_floats,
                                            check=positive, group="grid", show="3,4,5,6")
    pos_w: float = setting(3.0, "Gaussian kernel weight (fixed)", check=non_negative, group="grid")
    pos_xy_std: float = setting(3.0, "Gaussian xy std (fixed)", check=positive, group="grid")
    crf_iterations: int = setting(10, "mean-field iterations", check=positive, group="grid")
    crf_backend: str = setting("tf", "tf or pydensecrf (see evaluate.py --help)", choices=("tf", "pydensecrf"),
                               group="grid")


@dataclasses.dataclass
class ExtractParamsConfig(Settings):
    """The arguments of ``util/extract_params.py CAFFEMODEL``."""

    caffemodel: str = setting("", "the .caffemodel to convert", positional=True)
    output_dir: str = setting("./", "where the checkpoint and skeleton go")
    pycaffe_path: str = setting("", "read the weights with PyCaffe found at this path instead (optional)")
    prototxt: str = setting("", "net definition, used only with --pycaffe_path (default: util/deploy.prototxt "
                                "of the checkout)")


@dataclasses.dataclass
class PrepareVOCConfig(Settings):
    """The flags of ``util/prepare_voc.py``."""

    voc_dir: str = setting("", "VOC2012 folder (JPEGImages, SegmentationClass); required", check=required)
    sbd_dir: Optional[str] = setting(None, "SBD 'dataset' folder (cls/*.mat); optional", parse=str)
    output_dir: Optional[str] = setting(None, "default: VOC_DIR/SegmentationClassAug", parse=str)
    data_lists: Tuple[str, ...] = setting(("./dataset/train.txt", "./dataset/val.txt"),
                                          "lists to check the result against", nargs="+", parse=str,
                                          show="./dataset/train.txt ./dataset/val.txt")
    overwrite: bool = setting(False, "rewrite labels that already exist")
