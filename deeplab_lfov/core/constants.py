"""The constants of DeepLab and PASCAL VOC that every layer shares: the bottom of the package.

Defined once here and imported everywhere else; this module imports nothing of the package (and
nothing heavy), so the settings and ``--help`` stay instant.
"""

from __future__ import annotations

__all__ = ["NUM_CLASSES", "IGNORE_LABEL", "PRECISIONS", "IMG_MEAN_BGR", "VOC_HINT", "VOC_CLASSES", "IGNORE_COLOR",
           "OUTPUT_KINDS", "DEFAULT_RESTORE_FROM", "MODELS", "DEFAULT_MODEL", "EXPORT_FORMATS", "TFLITE_QUANTIZATIONS"]

NUM_CLASSES = 21  # PASCAL VOC: background and 20 object classes
IGNORE_LABEL = 255  # VOC's 'void' label: excluded from the loss and the metrics
PRECISIONS = ("fp32", "bf16", "fp16")  # --precision: compute dtypes (variables stay float32)

# Mean of the ImageNet images VGG-16 (and DeepLab's ResNet-101) were trained on, in the networks'
# (B, G, R) channel order, as Caffe subtracts it.
IMG_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)

# The nets of the paper (--model): DeepLab-LargeFOV (VGG-16), DeepLab-ASPP-S / ASPP-L (VGG-16) and
# DeepLab-v2 ResNet-101 (ASPP-L, multi-scale inputs).  The layer tables are in deeplab_lfov.model.
MODELS = ("largefov", "aspp-s", "aspp-l", "resnet101")
DEFAULT_MODEL = "largefov"  # the classic scripts' net

# What util/extract_params.py writes and the classic train.py restores by default.
DEFAULT_RESTORE_FROM = "./deeplab_lfov.ckpt"

VOC_HINT = "PASCAL VOC goes there: see the README, section Data"

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
IGNORE_COLOR = (224, 224, 192)  # VOC's colour of the void label (255)

OUTPUT_KINDS = ("mask", "overlay", "probs")  # what inference.py can write per image
EXPORT_FORMATS = ("saved_model", "tflite")
TFLITE_QUANTIZATIONS = ("none", "float16", "dynamic")
