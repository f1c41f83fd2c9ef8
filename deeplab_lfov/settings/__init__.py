"""Every setting of every program, written once; the top of the package beside the CLIs that parse them.

* ``flags``: the machinery (a dataclass field is a flag), parsers and checks;
* ``groups``: flag groups shared by several programs (data, weights, precision, test time, CRF, classes);
* ``programs``: one ``Config`` per program (``TrainConfig`` ... ``PrepareVOCConfig``).
"""

from .flags import Config, parse_floats, parse_names, parse_shard, parse_size, setting
from .groups import ClassesConfig, CRFConfig, DataConfig, ModelConfig, PrecisionConfig, TestTimeConfig, WeightsConfig
from .programs import (
                       CheckDataConfig,
                       ConvertLabelsConfig,
                       CRFRefineConfig,
                       CRFSearchConfig,
                       EvalConfig,
                       ExportConfig,
                       ExtractParamsConfig,
                       InferConfig,
                       PrepareVOCConfig,
                       TrainConfig,
)

__all__ = ["Config", "setting", "parse_size", "parse_floats", "parse_names", "parse_shard", "ClassesConfig",
           "ModelConfig", "DataConfig", "WeightsConfig", "PrecisionConfig", "TestTimeConfig", "CRFConfig", "TrainConfig",
           "EvalConfig", "InferConfig", "ExportConfig", "ConvertLabelsConfig", "CRFRefineConfig", "CheckDataConfig",
           "CRFSearchConfig", "ExtractParamsConfig", "PrepareVOCConfig"]
