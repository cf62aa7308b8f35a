"""The training loop: ``tf.distribute`` steps, per-epoch metrics and TensorBoard summaries."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from otbtf_qgis.core.models.base import ModelBase
from otbtf_qgis.core.models.export import TARGET_KEY
from otbtf_qgis.core.progress import Reporter


def distribution_strategy() -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a cluster, else ``MirroredStrategy``."""
    if os.environ.get("TF_CONFIG", "").strip():
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy()

#: Per-batch sums accumulated over an epoch, reduced over replicas and workers.
_STATISTICS = ("loss", "weight", "correct", "true_positives", "false_positives", "false_negatives")


def batch_statistics(targets: tf.Tensor, predictions: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted sums of one batch: cross-entropy, weight, correct pixels, TP/FP/FN (threshold 0.5).

    Precision and recall are micro-averaged over the one-hot channels, as Keras'
    ``Precision``/``Recall`` on one-hot targets; pixels of weight 0 (ignored) count nowhere.
    """
    weights = tf.cast(weights, tf.float32)
    entropy = keras.losses.categorical_crossentropy(targets, predictions)
    hit = tf.cast(tf.equal(tf.argmax(targets, -1), tf.argmax(predictions, -1)), tf.float32)
    positive = tf.cast(predictions > 0.5, tf.float32)
    channel_weights = weights[..., None]
    return tf.stack([
        tf.reduce_sum(entropy * weights),
        tf.reduce_sum(weights),
        tf.reduce_sum(hit * weights),
        tf.reduce_sum(channel_weights * positive * targets),
        tf.reduce_sum(channel_weights * positive * (1.0 - targets)),
        tf.reduce_sum(channel_weights * (1.0 - positive) * targets),
    ])


def metrics_from_statistics(sums: npt.NDArray[np.float64]) -> dict[str, float]:
    """Loss (mean over labelled pixels), accuracy, precision and recall from :func:`batch_statistics` sums."""
    loss, weight, correct, tp, fp, fn = (float(v) for v in sums)
    return {"loss": loss / weight if weight else 0.0, "accuracy": correct / weight if weight else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}


class DistributedSteps:
    """Training and evaluation steps run with a ``tf.distribute`` strategy, one batch per call.

    A custom loop rather than ``model.fit``: Keras 3's ``fit`` fails with
    ``MultiWorkerMirroredStrategy`` (keras-team/keras#20329), and the loop gives exact
    control over progress, cancel and the ignored pixels. The loss of a batch is the
    cross-entropy summed over labelled pixels divided by their number over all replicas,
    so the gradients the optimizer sums over replicas are those of the global mean.
    """

    def __init__(self, model: ModelBase, optimizer: Any, strategy: tf.distribute.Strategy) -> None:
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.train_step = tf.function(self._train_step)
        self.eval_step = tf.function(self._eval_step)

    def _replica_train(self, inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> tf.Tensor:
        y, w = targets[TARGET_KEY], tf.cast(weights[TARGET_KEY], tf.float32)
        context = tf.distribute.get_replica_context()
        total_weight = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(w))
        with tf.GradientTape() as tape:
            predictions = self.model(inputs, training=True)[TARGET_KEY]
            entropy = keras.losses.categorical_crossentropy(y, predictions)
            loss = tf.reduce_sum(entropy * w) / tf.maximum(total_weight, 1e-12)
            if self.model.losses:
                loss += tf.add_n(self.model.losses) / float(self.strategy.num_replicas_in_sync)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables, strict=True))
        return batch_statistics(y, predictions, w)

    def _replica_eval(self, inputs: dict[str, Any], targets: dict[str, Any], weights: dict[str, Any]) -> tf.Tensor:
        predictions = self.model(inputs, training=False)[TARGET_KEY]
        return batch_statistics(targets[TARGET_KEY], predictions, weights[TARGET_KEY])

    def _train_step(self, batch: Any) -> tf.Tensor:
        sums = self.strategy.run(self._replica_train, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def _eval_step(self, batch: Any) -> tf.Tensor:
        sums = self.strategy.run(self._replica_eval, args=tuple(batch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

    def run_epoch(self, dataset: Any, train: bool, on_batch: Callable[[int], None]) -> dict[str, float]:
        """One pass over a distributed dataset; ``on_batch(index)`` after each batch (progress, cancel)."""
        step = self.train_step if train else self.eval_step
        sums = np.zeros(len(_STATISTICS))
        for index, batch in enumerate(dataset):
            sums += step(batch).numpy()
            on_batch(index)
        return metrics_from_statistics(sums)


class SummaryWriters:
    """TensorBoard scalars per epoch (``logs/train``, ``logs/validation``), as Keras' callback names them."""

    def __init__(self, log_dir: Path, reporter: Reporter) -> None:
        self.writers: dict[str, Any] = {}
        if importlib.util.find_spec("tensorboard") is None:
            reporter.warning("TensorBoard is not installed in the worker Python: no training logs "
                             "(pip install tensorboard).")
            return
        for name in ("train", "validation"):
            self.writers[name] = tf.summary.create_file_writer(str(log_dir / name))

    def write(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Write ``epoch_<metric>`` scalars; ``val_*`` go to the validation log."""
        for key, value in metrics.items():
            writer = self.writers.get("validation" if key.startswith("val_") else "train")
            if writer is not None:
                with writer.as_default():
                    tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", value, step=epoch)
        for writer in self.writers.values():
            writer.flush()


def format_metrics(values: Mapping[str, float]) -> str:
    """``loss 0.412, accuracy 0.871, …`` with training metrics before validation ones."""
    ordered = sorted(values, key=lambda k: (k.startswith("val_"), k != "loss" and k != "val_loss", k))
    return ", ".join(f"{k} {values[k]:.4g}" for k in ordered)

def make_optimizer(model: ModelBase, learning_rate: float) -> Any:
    """Adam, with its variables created (call inside the strategy scope; checkpoints need them)."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(model.trainable_variables)
    return optimizer
