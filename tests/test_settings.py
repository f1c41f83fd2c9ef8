"""Settings: one dataclass per program generates its flags; classic names and defaults are pinned;
bad values fail when the settings are built, naming the flag."""

import pytest

from deeplab_lfov.cli import evaluate, extract_params, infer, train
from deeplab_lfov.core.errors import DeepLabError
from deeplab_lfov.settings import CRFConfig, EvalConfig, TrainConfig

# The classic scripts' flags and defaults (shared/CLASSIC.md), copied here: tests never read ../shared.
CLASSIC_TRAIN = {"batch_size": 16, "data_dir": "/home/VOCdevkit", "data_list": "./dataset/train.txt",
                 "input_size": (321, 321), "learning_rate": 1e-4, "num_steps": 20000,
                 "restore_from": "./deeplab_lfov.ckpt", "save_dir": "./images/", "save_num_images": 2,
                 "save_pred_every": 500, "snapshot_dir": "./snapshots/", "weights_path": None}
CLASSIC_EVALUATE = {"data_dir": "/home/VOCdevkit", "data_list": "./dataset/val.txt", "num_steps": 1449,
                    "restore_from": None, "save_dir": "./images_val/", "weights_path": None}
CLASSIC_INFERENCE = {"save_dir": "./output/"}
CLASSIC_EXTRACT = {"output_dir": "./", "pycaffe_path": ""}


@pytest.mark.parametrize("program,classic,positional", [
    (train, CLASSIC_TRAIN, []),
    (evaluate, CLASSIC_EVALUATE, []),
    (infer, CLASSIC_INFERENCE, ["image.jpg", "weights.ckpt"]),
    (extract_params, CLASSIC_EXTRACT, ["net.caffemodel"]),
])
def test_classic_flags_keep_their_names_and_defaults(program, classic, positional):
    parser = program.get_args_parser()
    defaults = vars(parser.parse_args(positional))
    for name, value in classic.items():
        assert name in defaults, name
        assert defaults[name] == value, (name, defaults[name], value)
        assert f"--{name}" in parser.format_help()


def test_classic_command_lines_parse_to_the_same_settings():
    args = train.get_args_parser().parse_args(["--batch_size", "10", "--input_size", "353,353", "--learning_rate",
                                               "2.5e-4", "--num_steps", "30", "--weights_path", "w.pkl"])
    config = TrainConfig.from_args(args)
    assert (config.batch_size, config.input_size, config.learning_rate, config.num_steps) == (10, (353, 353),
                                                                                            2.5e-4, 30)
    assert config.weights == "w.pkl"  # --weights_path wins over the default --restore_from, as in the classic port


@pytest.mark.parametrize("kwargs,flag", [
    ({"lr_policy": "sometimes"}, "--lr_policy"),
    ({"optimizer": "rmsprop"}, "--optimizer"),
    ({"batch_size": 0}, "--batch_size"),
    ({"input_size": (321, -1)}, "--input_size"),
    ({"num_steps": -5}, "--num_steps"),
    ({"learning_rate": 0.0}, "--learning_rate"),
    ({"momentum": 1.5}, "--momentum"),
    ({"ignore_label": 3}, "--ignore_label"),
    ({"num_classes": 300, "ignore_label": 255}, "--num_classes"),
    ({"skip_bad": True, "skip_check": True}, "--skip_bad"),
    ({"precision": "fp8"}, "--precision"),
    ({"strategy": "tpu"}, "--strategy"),
])
def test_bad_settings_fail_at_construction_naming_the_flag(kwargs, flag):
    with pytest.raises(DeepLabError, match=flag):
        TrainConfig(**kwargs)


def test_flags_of_shared_groups_are_the_same_everywhere():
    train_help = train.get_args_parser().format_help()
    eval_help = evaluate.get_args_parser().format_help()
    for name in ("--data_dir", "--data_list", "--num_classes", "--ignore_label", "--restore_from", "--weights_path",
                 "--precision"):
        assert name in train_help and name in eval_help
    for name in ("--scales", "--flip", "--pad_to", "--crf", "--bi_w", "--crf_iterations"):
        assert name in eval_help and name in infer.get_args_parser().format_help()
    with pytest.raises(DeepLabError, match="--scales"):
        EvalConfig(restore_from="x", scales=(1.0, -0.5))
    with pytest.raises(DeepLabError, match="--crf_iterations"):
        CRFConfig(crf_iterations=0)
    with pytest.raises(DeepLabError, match="--restore_from is required"):
        EvalConfig()


def test_settings_round_trip_through_their_record():
    config = TrainConfig(batch_size=4, input_size=(64, 80))
    record = config.as_record()
    assert record["input_size"] == [64, 80] and record["batch_size"] == 4
    assert TrainConfig(**{**record, "input_size": tuple(record["input_size"])}) == config


def test_a_required_flag_left_out_is_named_plainly(capsys):
    from helpers import assert_one_line_error, run_cli
    code, _, err = run_cli("util/crf_search.py", ["--data_dir", ".", "--data_list", "dataset/val.txt"], capsys)
    assert_one_line_error(code, err, "error: --restore_from is required")
