"""The settings of each program, one ``Config`` each: the flags of ``train.py``, ``evaluate.py``, ...

Every flag is written once, here or in the groups it inherits (``groups``); classic flags keep
their classic names and defaults.  Nothing here imports TensorFlow, so ``--help`` is instant.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from ..core.constants import (
    DEFAULT_RESTORE_FROM,
    EXPORT_FORMATS,
    IGNORE_LABEL,
    NUM_CLASSES,
    OUTPUT_KINDS,
    TFLITE_QUANTIZATIONS,
)
from ..core.errors import DeepLabError
from .flags import (
    Config,
    fraction,
    label_value,
    non_negative,
    optional_positive,
    parse_floats,
    parse_names,
    parse_size,
    positive,
    required,
    setting,
    shard_spec,
    subset,
)
from .groups import (
    ClassesConfig,
    CRFConfig,
    DataConfig,
    ModelConfig,
    PrecisionConfig,
    TestTimeConfig,
    WeightsConfig,
    check_ignore_label,
)

__all__ = ["TrainConfig", "EvalConfig", "InferConfig", "ExportConfig", "ConvertLabelsConfig", "CRFRefineConfig",
           "CheckDataConfig", "CRFSearchConfig", "ExtractParamsConfig", "PrepareVOCConfig"]


@dataclasses.dataclass
class TrainConfig(ModelConfig, DataConfig, WeightsConfig, PrecisionConfig):
    """Every setting of a training run: the flags of ``train.py``."""

    restore_from: Optional[str] = setting(
        DEFAULT_RESTORE_FROM, "initial weights: checkpoint, directory, .caffemodel or classic pickle. The "
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
    random_seed: int = setting(1234, "seed of the initialisation, the augmentation and dropout (the same run twice "
                                      "on the same machine gives the same snapshots)")
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




@dataclasses.dataclass
class EvalConfig(ModelConfig, DataConfig, WeightsConfig, TestTimeConfig, CRFConfig):
    """The flags of ``evaluate.py``."""

    CLASSES_FROM_WEIGHTS = True
    num_classes: Optional[int] = setting(None, "classes, background included (default: the --classes file's count, "
                                               f"else the weights', with --pred_dir {NUM_CLASSES})", parse=int,
                                         check=optional_positive, group="data")

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



@dataclasses.dataclass
class InferConfig(ModelConfig, TestTimeConfig, CRFConfig, ClassesConfig):
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
                                       check=lambda v: subset(v, OUTPUT_KINDS), show="mask", group="collections")
    batch_size: int = setting(4, "images of equal size run through the net together", check=positive,
                              group="collections")
    skip_existing: bool = setting(False, "skip images whose outputs all exist (resume after a crash)",
                                  group="collections")
    shard: Optional[str] = setting(None, "K/N: take the images whose sorted index is K mod N (job arrays)",
                                   parse=str, check=shard_spec, group="collections", metavar="K/N")
    max_size: Optional[int] = setting(None, "run images whose longer side exceeds this many pixels downscaled, "
                                            "and upsample their probabilities back", parse=int,
                                      check=optional_positive, group="collections")
    max_pixels: int = setting(4_000_000, "run images of more pixels than this downscaled to this many (aspect ratio "
                                         "kept), and upsample their probabilities back: a 9000x9000 scan never "
                                         "exhausts memory (the full-width LargeFOV needs about 0.65 GB per million "
                                         "pixels); the summary counts them; 0 = never", check=non_negative,
                              group="collections")

    def __post_init__(self):
        self.outputs = tuple(self.outputs)
        super().__post_init__()


@dataclasses.dataclass
class ExportConfig(ModelConfig, TestTimeConfig, CRFConfig, ClassesConfig):
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
    check_images: Optional[str] = setting(None, "folder of images the written files are verified on (default: 8 "
                                                "synthetic images made like the bundled sample data)", parse=str)
    num_classes: Optional[int] = setting(None, "classes of the model (default: read from the weights)", parse=int,
                                         check=optional_positive)

    def _parse_min_agreement(text: str) -> Tuple[Tuple[str, float], ...]:  # the flag's parser (made static below)
        """``"dynamic=0.95,float16=0.99"`` -> (("dynamic", 0.95), ("float16", 0.99))."""
        import argparse
        pairs = []
        for part in (p.strip() for p in str(text).split(",") if p.strip()):
            name, _, value = part.partition("=")
            try:
                pairs.append((name.strip(), float(value)))
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected ARTIFACT=FRACTION[,...], e.g. dynamic=0.95, got "
                                                 f"{part!r}") from None
        return tuple(pairs)

    def _check_min_agreement(value) -> Optional[str]:  # the flag's check (made static below)
        kinds = ("saved_model",) + TFLITE_QUANTIZATIONS
        for name, fraction_ in value:
            if name not in kinds:
                return f"unknown artifact {name!r}; choose from {', '.join(kinds)}"
            if not 0 < fraction_ <= 1:
                return "the least share of pixels that agree must be a fraction in (0, 1] (0.95 = 95%)"
        return None

    min_agreement: Tuple[Tuple[str, float], ...] = setting(
        (), "least share of pixels whose label must equal the in-process model's, per artifact, e.g. "
        "dynamic=0.95,float16=0.99 (defaults: saved_model 1 at fp32 and 0.995 otherwise, none 0.999, float16 0.995, "
        "dynamic 0.98); an artifact below it is not published", parse=_parse_min_agreement,
        check=_check_min_agreement, show="the defaults", metavar="ARTIFACT=FRACTION,...")
    max_pixels: int = setting(25_000_000, "the SavedModel refuses a request of more pixels (N x H x W for "
                                          "serving_default; each image's header for segment_encoded) with "
                                          "InvalidArgument, before decoding or allocating anything; the full-width "
                                          "LargeFOV needs about 0.65 GB per million pixels", check=positive,
                              group="saved_model")

    _parse_min_agreement = staticmethod(_parse_min_agreement)
    _check_min_agreement = staticmethod(_check_min_agreement)

    def __post_init__(self):
        self.formats, self.tflite_quantize = tuple(self.formats), tuple(self.tflite_quantize)
        self.min_agreement = tuple((str(n), float(v)) for n, v in self.min_agreement)
        super().__post_init__()

    @staticmethod
    def _show(value) -> str:
        if value and isinstance(value, tuple) and isinstance(value[0], tuple):  # --min_agreement
            return ",".join(f"{n}={v:g}" for n, v in value)
        return Config._show(value)

    def validate(self) -> None:
        super().validate()
        if self.crf and self.crf_backend == "pydensecrf":
            raise DeepLabError("--crf_backend pydensecrf: an exported model carries the TensorFlow CRF (the "
                               "pydensecrf package cannot be exported); drop --crf_backend")


@dataclasses.dataclass
class ConvertLabelsConfig(ClassesConfig):
    """The arguments of ``util/convert_labels.py INPUT``."""

    input: str = setting("", "a folder of label images (recursively), or a list file whose label column is read "
                             "(paths appended to --data_dir)", positional=True)
    output_dir: str = setting("", "where the index PNGs go (required)", check=required)
    data_dir: str = setting("", "prefix of the paths of a list file")
    binary: bool = setting(False, "0/255 or 0/1 masks -> background (0) / foreground (1)")
    tolerance: float = setting(0.0, "for JPEG-compressed masks: each pixel takes the class of the nearest --classes "
                                    "colour within this distance (Euclidean, RGB 0..255; with --binary: of 0 or 255), "
                                    "the others --ignore_label, counted per file (0: exact colours only)",
                               check=non_negative)
    num_classes: Optional[int] = setting(None, "classes (default: the --classes file's count; 2 with --binary; "
                                               "else 21)", parse=int, check=optional_positive)
    ignore_label: int = setting(IGNORE_LABEL, "label value of unlabelled pixels", check=label_value)
    workers: Optional[int] = setting(None, "parallel decoders (default: 2 x CPUs)", parse=int, check=optional_positive)

    def __post_init__(self):
        if self.num_classes is None:
            self.num_classes = len(self.class_list) if self.classes else 2 if self.binary else NUM_CLASSES
        super().__post_init__()


@dataclasses.dataclass
class CRFRefineConfig(CRFConfig, ClassesConfig):
    """The arguments of ``util/crf_refine.py INPUT_DIR``."""

    crf: bool = dataclasses.field(default=True)  # refining is the CRF: not a flag here

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

    def validate(self) -> None:
        super().validate()
        # Up to 255 classes an unsure pixel needs a value of its own; more classes are 16-bit masks,
        # whose values 0..num_classes-1 are all classes (no value is left for the unsure pixels).
        if self.num_classes <= 255:
            check_ignore_label(self.ignore_label, self.num_classes)
        # The labelled class gets gt_prob and every other class (1 - gt_prob) / (C - 1): only above 1/C is
        # the label the likeliest class.
        if self.num_classes > 1 and self.gt_prob <= 1.0 / self.num_classes:
            raise DeepLabError(f"--gt_prob {self.gt_prob:g} gives a pseudo label no more probability than each other "
                               f"class among {self.num_classes} classes; it must be above 1/{self.num_classes} = "
                               f"{1.0 / self.num_classes:.4g} (DeepLab uses 0.7)")


@dataclasses.dataclass
class CheckDataConfig(DataConfig):
    """The flags of ``util/check_data.py``."""

    workers: Optional[int] = setting(None, "parallel decoders (default: 2 x CPUs)", parse=int,
                                     check=optional_positive)


@dataclasses.dataclass
class CRFSearchConfig(ModelConfig, DataConfig):
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

    def validate(self) -> None:
        super().validate()
        from ..crf.dense import check_backend
        check_backend(self.crf_backend)


@dataclasses.dataclass
class ExtractParamsConfig(ModelConfig):
    """The arguments of ``util/extract_params.py CAFFEMODEL``."""

    caffemodel: str = setting("", "the .caffemodel to convert", positional=True)
    output_dir: str = setting("./", "where the checkpoint and skeleton go")
    pycaffe_path: str = setting("", "read the weights with PyCaffe found at this path instead (optional)")
    prototxt: str = setting("", "net definition, used only with --pycaffe_path (default: the LargeFOV "
                                "deploy net shipped with the package, util/deploy.prototxt in a checkout)")


@dataclasses.dataclass
class PrepareVOCConfig(Config):
    """The flags of ``util/prepare_voc.py``."""

    voc_dir: str = setting("", "VOC2012 folder (JPEGImages, SegmentationClass); required", check=required)
    sbd_dir: Optional[str] = setting(None, "SBD 'dataset' folder (cls/*.mat); optional", parse=str)
    output_dir: Optional[str] = setting(None, "default: VOC_DIR/SegmentationClassAug", parse=str)
    data_lists: Tuple[str, ...] = setting(("./dataset/train.txt", "./dataset/val.txt"),
                                          "lists to check the result against", nargs="+", parse=str,
                                          show="./dataset/train.txt ./dataset/val.txt")
    overwrite: bool = setting(False, "rewrite labels that already exist")
