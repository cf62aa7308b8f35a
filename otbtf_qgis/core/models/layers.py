"""Keras 3 layers under OTBTF's names and signatures, served as ``otbtf.layers``.

Model files written for OTBTF 4 build masks, scalar planes and post-processed outputs
with ``otbtf.layers``; this module offers the same five layers on Keras 3:

- :class:`DilatedMask` — a uint8 mask of the pixels equal to a nodata value, grown by a radius;
- :class:`ApplyMask` — an input with the masked pixels set to an output nodata value;
- :class:`ScalarsTile` — per-sample scalars repeated over every pixel of a reference image;
- :class:`Argmax` — the index of the largest channel (a class map from a softmax);
- :class:`Max` — the largest channel (a confidence map from a softmax).

They are ordinary Keras layers: they work on the symbolic tensors of
:meth:`~otbtf_qgis.core.models.base.ModelBase.get_outputs`, run inside an exported
SavedModel, and are registered for Keras serialisation (package ``otbtf``), so a
``.keras`` file holding them reloads without ``custom_objects``.

Dtypes are chosen for rasters: :class:`Argmax` gives int32 (OTBTF gives int64, which is
not among serving's OUTPUT_TYPE choices), :class:`DilatedMask` gives uint8 and
:class:`ApplyMask` keeps its input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

Tensor = Any

_PACKAGE = "otbtf"


def _equals_value(inputs: tf.Tensor, value: float) -> tf.Tensor:
    """Where ``inputs`` equal ``value`` (bool), with the value taken in the inputs' dtype.

    A NaN value matches NaN pixels. For an integer input, a value the dtype cannot hold
    (a fraction, or out of its range such as -9999 for uint16) matches nothing instead of
    wrapping onto a real pixel value.
    """
    dtype = tf.as_dtype(inputs.dtype)
    if dtype.is_floating:
        if math.isnan(value):
            return tf.math.is_nan(inputs)
        return tf.equal(inputs, tf.cast(tf.constant(value, tf.float64), dtype))
    if dtype == tf.bool:
        if value not in (0, 1):
            return tf.zeros_like(inputs, dtype=tf.bool)
        return tf.equal(inputs, tf.constant(bool(value)))
    if dtype.is_integer:
        if not float(value).is_integer() or not dtype.min <= value <= dtype.max:
            return tf.zeros_like(inputs, dtype=tf.bool)
        return tf.equal(inputs, tf.constant(int(value), dtype))
    raise TypeError(f"cannot compare a {dtype.name} tensor with the number {value}")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DilatedMask(keras.layers.Layer):
    """The nodata pixels of an image, dilated: 1 within ``radius`` pixels of a nodata pixel, else 0.

    A pixel is nodata when it equals ``nodata_value`` (NaN matches NaN; an integer input
    never matches a value its dtype cannot hold). The mask is then dilated by a square of
    side ``1 + 2·radius`` centred on each pixel, stride 1, "same" size: pixels beyond the
    image border count as valid. Each channel is masked and dilated on its own; OTBTF
    expects a single channel, ``[batch, rows, cols, 1]``.

    The dilation is a max pooling of the 0/1 mask, so the receptive-field analysis of
    the exported model sees an ordinary "same" pooling of kernel ``1 + 2·radius``.

    Args:
        nodata_value: The input value that marks nodata.
        radius: Dilation radius in pixels (0 keeps the nodata pixels only).
        name: Layer name.
        **kwargs: Other ``keras.layers.Layer`` arguments (as in a saved config).

    Raises:
        ValueError: ``radius`` is negative.
    """

    def __init__(self, nodata_value: float, radius: int, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(name=name, **kwargs)
        if int(radius) != radius or radius < 0:
            raise ValueError(f"the dilation radius must be a non-negative integer, got {radius}")
        self.nodata_value = float(nodata_value)
        self.radius = int(radius)

    def call(self, inputs: Tensor) -> Tensor:
        """Compute the dilated mask.

        Args:
            inputs: An image ``[batch, rows, cols, channels]`` (usually one channel).

        Returns:
            A uint8 tensor of the input's shape, 1 near nodata pixels, 0 elsewhere.
        """
        nodata = tf.cast(_equals_value(inputs, self.nodata_value), tf.float32)
        if self.radius:
            side = 1 + 2 * self.radius
            nodata = tf.nn.max_pool2d(nodata, ksize=side, strides=1, padding="SAME")
        return tf.cast(nodata, tf.uint8)

    def get_config(self) -> dict[str, Any]:
        """The layer's settings, for Keras serialisation."""
        return {**super().get_config(), "nodata_value": self.nodata_value, "radius": self.radius}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ApplyMask(keras.layers.Layer):
    """Set the masked pixels of an input to ``out_nodata``: called on ``(mask, input)``.

    Where the mask equals 1, every channel of the input becomes ``out_nodata``; elsewhere
    the input is unchanged. The mask broadcasts against the input (a ``[batch, rows,
    cols, 1]`` mask covers all channels). The output keeps the input's dtype: a float
    input takes ``float(out_nodata)`` rounded to its precision; an integer input (a class
    map from :class:`Argmax`, say) needs an ``out_nodata`` its dtype can hold.

    Args:
        out_nodata: The value written where the mask is 1.
        name: Layer name.
        **kwargs: Other ``keras.layers.Layer`` arguments (as in a saved config).
    """

    def __init__(self, out_nodata: float, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(name=name, **kwargs)
        self.out_nodata = float(out_nodata)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        """Mask the input.

        Args:
            inputs: ``(mask, input)``: the mask (1 where to write nodata, any numeric or
                bool dtype) and the tensor to mask.

        Returns:
            ``input`` with ``out_nodata`` where ``mask == 1``.

        Raises:
            ValueError: not two tensors, or an integer input whose dtype cannot hold
                ``out_nodata``.
        """
        if len(inputs) != 2:
            raise ValueError(f"ApplyMask takes (mask, input), got {len(inputs)} tensors")
        mask, values = inputs
        dtype = tf.as_dtype(values.dtype)
        if dtype.is_integer and (not self.out_nodata.is_integer()
                                 or not dtype.min <= self.out_nodata <= dtype.max):
            raise ValueError(f"the output nodata {self.out_nodata:g} does not fit the {dtype.name} input; "
                             "cast the input to float first or choose another value")
        fill = tf.cast(tf.constant(self.out_nodata, tf.float64), dtype)
        return tf.where(_equals_value(mask, 1), fill, values)

    def get_config(self) -> dict[str, Any]:
        """The layer's settings, for Keras serialisation."""
        return {**super().get_config(), "out_nodata": self.out_nodata}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScalarsTile(keras.layers.Layer):
    """Per-sample scalars as constant image channels: called on ``[reference, scalars]``.

    ``reference`` is an image ``[batch, rows, cols, n]`` whose rows and columns the output
    takes; ``scalars`` is a list of per-sample values, each ``[batch]`` (one channel) or
    ``[batch, k]`` (``k`` channels); a 0-d tensor is the same value for every sample.
    The output ``[batch, rows, cols, channels]`` repeats them at every pixel, in list
    order. Its dtype is the scalars' common dtype, float32 when they differ; a single
    tensor instead of a list is one scalar input.

    Args:
        name: Layer name.
        **kwargs: Other ``keras.layers.Layer`` arguments (as in a saved config).
    """

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(name=name, **kwargs)

    def call(self, inputs: Sequence[Any]) -> Tensor:
        """Tile the scalars over the reference's rows and columns.

        Args:
            inputs: ``[reference, scalars]`` as described in the class docstring.

        Returns:
            The tiled scalars, ``[batch, rows, cols, channels]``.

        Raises:
            ValueError: not two items, no scalar, or a scalar input of rank above 2.
        """
        if len(inputs) != 2:
            raise ValueError(f"ScalarsTile takes [reference, scalars], got {len(inputs)} items")
        reference, scalars = inputs
        items = list(scalars) if isinstance(scalars, (list, tuple)) else [scalars]
        if not items:
            raise ValueError("ScalarsTile needs at least one scalar input")
        dtypes = {tf.as_dtype(value.dtype) for value in items}
        dtype = dtypes.pop() if len(dtypes) == 1 else tf.float32
        shape = tf.shape(reference)
        batch = shape[0]
        columns = []
        for value in items:
            tensor = tf.cast(value, dtype)
            rank = tensor.shape.rank
            if rank == 0:
                tensor = tf.fill(tf.stack([batch, 1]), tensor)
            elif rank == 1:
                tensor = tf.expand_dims(tensor, axis=-1)
            elif rank != 2:
                raise ValueError(f"a scalar input must be [batch] or [batch, k], got shape {tensor.shape}")
            columns.append(tensor)
        per_sample = tf.concat(columns, axis=-1)
        return tf.tile(per_sample[:, None, None, :], tf.stack([1, shape[1], shape[2], 1]))

    def get_config(self) -> dict[str, Any]:
        """The layer's settings, for Keras serialisation."""
        return dict(super().get_config())


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Argmax(keras.layers.Layer):
    """Index of the largest value along the last axis: a class map from a softmax.

    The output is int32, not OTBTF's int64: class indices fit easily, and int32 is a
    type GeoTIFF outputs and serving (OUTPUT_TYPE) handle. Ties give the first index.

    Args:
        name: Layer name.
        expand_last_dim: Keep a last dimension of size 1 (``[batch, rows, cols, 1]``
            from ``[batch, rows, cols, n]``, an image serving can write); ``False`` drops
            it (``[batch, rows, cols]``).
        **kwargs: Other ``keras.layers.Layer`` arguments (as in a saved config).
    """

    def __init__(self, name: str | None = None, expand_last_dim: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(name=name, **kwargs)
        self.expand_last_dim = bool(expand_last_dim)

    def call(self, inputs: Tensor) -> Tensor:
        """Return the int32 index of the largest value of each pixel (see the class docstring)."""
        indices = tf.math.argmax(inputs, axis=-1, output_type=tf.int32)
        return tf.expand_dims(indices, axis=-1) if self.expand_last_dim else indices

    def get_config(self) -> dict[str, Any]:
        """The layer's settings, for Keras serialisation."""
        return {**super().get_config(), "expand_last_dim": self.expand_last_dim}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Max(keras.layers.Layer):
    """Largest value along the last axis, kept as one channel: a confidence map from a softmax.

    The output has the input's rank and dtype, with a last dimension of size 1.

    Args:
        name: Layer name.
        **kwargs: Other ``keras.layers.Layer`` arguments (as in a saved config).
    """

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(name=name, **kwargs)

    def call(self, inputs: Tensor) -> Tensor:
        """Return ``max(inputs, axis=-1)`` with the last dimension kept."""
        return tf.reduce_max(inputs, axis=-1, keepdims=True)

    def get_config(self) -> dict[str, Any]:
        """The layer's settings, for Keras serialisation."""
        return dict(super().get_config())
