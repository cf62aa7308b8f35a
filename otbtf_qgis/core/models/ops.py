"""TensorFlow operators for training, as OTBTF's ``otbtf.ops``."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def one_hot(labels: Any, nb_classes: int) -> tf.Tensor:
    """One-hot encode a label patch: ``(..., rows, cols, 1)`` integers → ``(..., rows, cols, nb_classes)`` floats.

    Labels outside ``[0, nb_classes)`` (such as an ignore label of 255) give all-zero vectors.

    Args:
        labels: Integer (or integral) label values with a last dimension of size 1.
        nb_classes: Number of classes.
    """
    labels_xy = tf.squeeze(tf.cast(labels, tf.int32), axis=-1)
    return tf.one_hot(labels_xy, nb_classes)
