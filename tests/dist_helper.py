"""Run in a subprocess by test_distribute.py: one training step under a strategy vs one device.

    python tests/dist_helper.py mirrored OUT.json      # two logical CPU devices, one process
    python tests/dist_helper.py multi_worker OUT.json  # one of two workers (TF_CONFIG set by the test)
    python tests/dist_helper.py mirrored_iter_size OUT.json  # two logical CPUs, --iter_size 2

Both compare against the default strategy on the same global batch of 4 images whose ignore
pixels are spread unevenly (the first replica's images are mostly 255).
"""

import json
import sys

import numpy as np

from deeplab_lfov.core._tf import tf

mode, out_path = sys.argv[1], sys.argv[2]
iter_size = 2 if mode == "mirrored_iter_size" else 1  # two batches of 2 accumulated into one update
if mode.startswith("mirrored"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

from deeplab_lfov.model import DeepLabLargeFOV  # noqa: E402
from deeplab_lfov.training.optim import Optimizer, learning_rate_schedule  # noqa: E402
from deeplab_lfov.training.trainer import TrainStep, is_chief  # noqa: E402

rng = np.random.RandomState(0)
images = rng.uniform(-100, 100, size=(4, 41, 41, 3)).astype(np.float32)
labels = rng.randint(0, 21, size=(4, 41, 41)).astype(np.int32)
labels[0:2, 3:] = 255  # replica 0: almost only ignore pixels; replica 1: none


def one_step(strat, iter_size=1):
    with strat.scope():
        model = DeepLabLargeFOV(21, width_multiplier=0.125, seed=11, dropout_rate=0.0)  # same masks everywhere
        variables = model.named_variables()
        opt = Optimizer(variables, "sgd", learning_rate_schedule("fixed", 1e-3, 10), weight_decay=5e-4)
    step = TrainStep(strat, model, opt, 21, 255, iter_size=iter_size)

    def dataset_fn(ctx):
        per_replica = 4 // (strat.num_replicas_in_sync * iter_size)  # the default strategy takes all 4 at once
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(per_replica)
        return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)

    loss = float(step.run(iter(strat.distribute_datasets_from_function(dataset_fn))))
    return loss, {k: v.numpy() for k, v in variables.items()}


loss, weights = one_step(strategy, iter_size)
ref_loss, ref_weights = one_step(tf.distribute.get_strategy())
# The reference runs on the whole batch of 4 at once.
rel = max(float(np.abs(weights[k] - ref_weights[k]).max() / (np.abs(ref_weights[k]).max() + 1e-12))
          for k in weights)
moved = max(float(np.abs(weights[k] - DeepLabLargeFOV(21, width_multiplier=0.125, seed=11)
                         .named_variables()[k].numpy()).max()) for k in ("fc8_voc12/w", "conv1_1/w"))
if is_chief(strategy):
    with open(out_path, "w") as f:
        json.dump({"loss": loss, "ref_loss": ref_loss, "max_rel_diff": rel, "moved": moved,
                   "replicas": strategy.num_replicas_in_sync}, f)
