"""Optimisers with Caffe's per-parameter learning-rate multipliers and L2 weight decay.

DeepLab's Caffe recipe gives every bias twice the base learning rate and the new classifier
(fc8) ten times for its filters and twenty times for its bias; weight decay applies to filters
only.  Keras optimisers have no per-variable multipliers, so the two update rules used here
(Caffe's SGD with momentum and Adam) are written out.  Updates run in cross-replica context on
already all-reduced gradients, so the same code serves one device and a ``tf.distribute`` strategy.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Sequence

from ..core._tf import tf

__all__ = ["Optimizer", "caffe_lr_multipliers", "learning_rate_schedule"]


def caffe_lr_multipliers(names: Sequence[str], classifier: Sequence[str] = ()) -> Dict[str, float]:
    """DeepLab's lr_mult: filters 1, biases 2, the classifier's filters 10 and biases 20.

    The classifier is ``classifier`` (a net's ``classifier_layers``: LargeFOV's fc8, each ASPP branch's
    fc8, ResNet's ``fc1_voc12_c*``); without it, layers named ``fc8*``.
    """
    out = {}
    for name in names:
        layer, kind = name.split("/")
        base = 10.0 if (layer in classifier if classifier else layer.startswith("fc8")) else 1.0
        out[name] = base * (2.0 if kind == "b" else 1.0)
    return out


def learning_rate_schedule(policy: str, base_lr: float, num_steps: int, *, step_size: int = 2000,
                           gamma: float = 0.1, power: float = 0.9) -> Callable[[tf.Tensor], tf.Tensor]:
    """Caffe's lr_policy: 'fixed', 'step' (x gamma every step_size) or 'poly' ((1 - t/T)^power)."""
    if policy == "fixed":
        return lambda step: tf.constant(base_lr, tf.float32)
    if policy == "step":
        return lambda step: base_lr * tf.pow(gamma, tf.floor(tf.cast(step, tf.float32) / step_size))
    if policy == "poly":
        return lambda step: base_lr * tf.pow(
            tf.maximum(1.0 - tf.cast(step, tf.float32) / float(num_steps), 0.0), power)
    raise ValueError(f"unknown learning-rate policy {policy!r} (fixed, step or poly)")


class Optimizer(tf.Module):
    """SGD with momentum (Caffe's rule) or Adam over a dict of named variables.

    Args:
      variables: ``{name: tf.Variable}`` (classic names; ``*/w`` get weight decay).
      kind: 'sgd' or 'adam'.
      schedule: step -> learning rate.
      lr_mult: per-name learning-rate multiplier (default 1).
      weight_decay: L2 coefficient on filters: the gradient gains ``weight_decay * w``.
    """

    def __init__(self, variables: Mapping[str, tf.Variable], kind: str, schedule, *, momentum: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, weight_decay: float = 0.0,
                 lr_mult: Mapping[str, float] = None):
        super().__init__(name="optimizer")
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {kind!r} (sgd or adam)")
        self.kind = kind
        self.schedule = schedule
        self.momentum = momentum
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        # Frozen variables (DeepLab-v2's batch norms) take no update and no slots.
        variables = {name: var for name, var in variables.items() if var.trainable}
        self.names = list(variables)
        self.lr_mult = {n: float((lr_mult or {}).get(n, 1.0)) for n in self.names}
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        # Dynamic loss scale for float16 training (as Keras' LossScaleOptimizer): halved when
        # gradients overflow (the step is skipped), doubled after 2000 good steps.
        self.loss_scale = tf.Variable(2.0 ** 15, trainable=False, name="loss_scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        # Slots keyed by the variable's name, so a snapshot's optimizer state belongs to named
        # variables, not to positions in a list.
        self.m = {n: tf.Variable(tf.zeros_like(v), trainable=False, name="m") for n, v in variables.items()}
        self.v = ({n: tf.Variable(tf.zeros_like(v), trainable=False, name="v") for n, v in variables.items()}
                  if kind == "adam" else {})

    def learning_rate(self) -> tf.Tensor:
        return self.schedule(self.iterations)

    def apply_if_finite(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> None:
        """``apply`` when every gradient is finite; otherwise skip the step and halve the loss scale."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

        def good():
            self.apply(grads, variables)
            grow = self.good_steps + 1 >= 2000
            self.loss_scale.assign(tf.where(grow, self.loss_scale * 2.0, self.loss_scale))
            self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), self.good_steps + 1))
            return tf.constant(True)

        def bad():
            self.loss_scale.assign(tf.maximum(self.loss_scale / 2.0, 1.0))
            self.good_steps.assign(0)
            return tf.constant(False)

        tf.cond(finite, good, bad)

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> None:
        """One update of ``variables`` (in the order given at construction) with ``grads``."""
        lr = tf.cast(self.learning_rate(), tf.float32)
        t = tf.cast(self.iterations + 1, tf.float32)
        for name, g, var in zip(self.names, grads, variables):
            if self.weight_decay and name.endswith("/w"):
                g = g + self.weight_decay * var
            rate = lr * self.lr_mult[name]
            if self.kind == "sgd":
                velocity = self.m[name].assign(self.momentum * self.m[name] + rate * g)
                var.assign_sub(velocity)
            else:
                m = self.m[name].assign(self.momentum * self.m[name] + (1.0 - self.momentum) * g)
                v = self.v[name].assign(self.beta_2 * self.v[name] + (1.0 - self.beta_2) * tf.square(g))
                m_hat = m / (1.0 - tf.pow(self.momentum, t))
                v_hat = v / (1.0 - tf.pow(self.beta_2, t))
                var.assign_sub(rate * m_hat / (tf.sqrt(v_hat) + self.epsilon))
        self.iterations.assign_add(1)
