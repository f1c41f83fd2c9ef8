"""The pytest fixtures shared by the tests (helper functions are in ``helpers.py``)."""

import collections
import os

import pytest

from helpers import SAMPLE


def pytest_collection_modifyitems(config, items):
    """Files with the most slow tests run first: with ``-n 2 --dist loadfile`` the long files start at
    once and the short ones fill the gaps at the end (the suite takes as long as its busier worker)."""
    slow = collections.Counter(str(item.fspath) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[str(item.fspath)])  # stable: each file's tests stay together, in order


@pytest.fixture(scope="session")
def trained_slim(tmp_path_factory):
    """A slim net trained briefly on the bundled sample data: confident enough that its predictions are
    not a sea of near-ties (what quantisation and CRF comparisons need). Returns the snapshot folder."""
    from deeplab_lfov.settings import TrainConfig
    from deeplab_lfov.training.trainer import train
    root = tmp_path_factory.mktemp("trained_slim")
    config = TrainConfig(data_dir=SAMPLE, data_list=os.path.join(SAMPLE, "train.txt"), snapshot_dir=str(root / "snap"),
                         save_dir=str(root / "img"), restore_from=None, input_size=(96, 96), batch_size=8,
                         num_steps=120, learning_rate=3e-3, width_multiplier=0.125, save_pred_every=120,
                         print_every=120, save_num_images=0, random_seed=3)
    train(config, log=lambda line: None)
    return str(root / "snap")
