"""Keras layers with OTBTF's names (``otbtf.layers``), handy as extra model outputs."""

from __future__ import annotations

from typing import Any

import keras


class Argmax(keras.layers.Layer):
    """Index of the largest value along the last axis, kept as a channel: a class map from a softmax.

    The output has the input's rank with a last dimension of 1 (int32).
    """

    def call(self, inputs: Any) -> Any:
        """Return ``argmax(inputs, axis=-1)[..., None]`` as int32."""
        return keras.ops.expand_dims(keras.ops.cast(keras.ops.argmax(inputs, axis=-1), "int32"), axis=-1)


class Max(keras.layers.Layer):
    """Largest value along the last axis, kept as a channel: a confidence map from a softmax."""

    def call(self, inputs: Any) -> Any:
        """Return ``max(inputs, axis=-1)[..., None]``."""
        return keras.ops.max(inputs, axis=-1, keepdims=True)
