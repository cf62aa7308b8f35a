"""Padding-free output geometry of a TensorFlow model, from its graph or by probing.

:func:`analyze_function` freezes a model function for a fixed input size (variables
become constants, nested functions are inlined) and follows the valid-pixel masks of
:mod:`otbtf_qgis.core.models.receptive_field` through the operations: convolutions, transposed
convolutions, pooling, morphological dilations, crops, pads, element-wise operations and
per-sample values tiled over an image (OTBTF's ``ScalarsTile``). When the graph holds
an operation whose geometry is unknown (resampling, reshapes of images, ...), the model
is *probed* instead: it runs on random inputs of the given size and of three times that
size, and the output pixels that differ between the two runs are the ones the padding
reaches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from otbtf_qgis.core.errors import InputError, ModelError
from otbtf_qgis.core.models.receptive_field import (
    LayerGeometry,
    Mask,
    OutputGeometry,
    ReceptiveFieldReport,
    conv_valid_mask,
    input_sizes_for,
    recommend,
    same_padding_before,
    transposed_conv_valid_mask,
    valid_run,
)
from otbtf_qgis.core.models.saved_model import ServingModel
from otbtf_qgis.core.progress import NullReporter, Reporter

_ELEMENTWISE = frozenset("""
Identity Snapshot StopGradient PreventGradient CheckNumerics EnsureShape Cast Relu Relu6 Elu Selu LeakyRelu Sigmoid
Tanh Softmax LogSoftmax Softplus Softsign Neg Abs Square Sqrt Rsqrt Reciprocal Inv Exp Expm1 Log Log1p Floor Ceil
Round Rint Sign Erf Sin Cos IsNan IsFinite ClipByValue BiasAdd Add AddV2 AddN Sub Mul MulNoNan RealDiv Div DivNoNan
FloorDiv FloorMod TruncateDiv Maximum Minimum Pow SquaredDifference Equal NotEqual Greater GreaterEqual Less
LessEqual LogicalAnd LogicalOr LogicalNot Select SelectV2 FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 ZerosLike
OnesLike Gelu
""".split())
_REDUCTIONS = frozenset("Max Min Sum Mean Prod ArgMax ArgMin All Any".split())
_SHAPE_OPS = frozenset("Shape ShapeN Size Rank".split())
_CONV_KINDS = {"Conv2D": "Conv2D", "DepthwiseConv2dNative": "DepthwiseConv2D", "MaxPool": "MaxPool2D",
               "AvgPool": "AvgPool2D", "Dilation2D": "Dilation2D"}
#: Operations that repeat a value over a bigger shape.
_TILE_OPS = frozenset(("Tile", "BroadcastTo"))


class _UnsupportedError(Exception):
    """An operation whose geometry is not modelled (the caller falls back to probing)."""


class _Meta:
    """A value computed from the inputs' shapes only (sizes, not pixels)."""


_META = _Meta()


@dataclass
class _Spatial:
    """Valid masks of an image tensor; ``block`` > 1 inside TensorFlow's space-to-batch form of a dilated conv."""

    rows: Mask
    cols: Mask
    scale: Fraction
    block: tuple[int, int] = (1, 1)


@dataclass
class _Flat:
    valid: bool


def _static_value(tensor: tf.Tensor) -> Any:
    value = tf.get_static_value(tensor)
    if value is None:
        raise _UnsupportedError(f"{tensor.op.type} needs a constant argument ({tensor.name})")
    return value


def _axis_list(value: Any, rank: int) -> list[int]:
    return [int(a) % rank for a in np.atleast_1d(value)]


def _layer_name(op: tf.Operation) -> str:
    parts = str(op.name).split("/")
    return parts[-2] if len(parts) >= 2 else parts[-1]


def _spatial_inputs(values: list[Any]) -> list[_Spatial]:
    return [v for v in values if isinstance(v, _Spatial)]


def _elementwise(op: tf.Operation, values: list[Any]) -> _Spatial:
    spatial = _spatial_inputs(values)
    first = spatial[0]
    rows, cols = first.rows.copy(), first.cols.copy()
    for value in spatial[1:]:
        if len(value.rows) != len(rows) or len(value.cols) != len(cols) or value.block != first.block:
            raise _UnsupportedError(f"{op.type} broadcasts images of different sizes ({op.name})")
        rows &= value.rows
        cols &= value.cols
    if not all(v.valid for v in values if isinstance(v, _Flat)):
        rows[:] = False
        cols[:] = False
    # Images of one size share a scale, except tiled per-sample values (scale 1 whatever their size).
    return _Spatial(rows, cols, max(v.scale for v in spatial), first.block)


class _GraphWalker:
    """Follows valid-pixel masks through a frozen graph."""

    def __init__(self) -> None:
        self.layers: list[LayerGeometry] = []
        self.max_scale = Fraction(1)

    def evaluate(self, op: tf.Operation, values: list[Any]) -> list[Any]:
        n_out = len(op.outputs)
        if op.type in _SHAPE_OPS:
            return [_META] * n_out
        if all(v is None for v in values):
            return [None] * n_out
        spatial = _spatial_inputs(values)
        if op.type in _TILE_OPS and isinstance(values[0], _Flat) and not spatial:
            return [_tiled_image(op, values[0])] + [None] * (n_out - 1)
        if not spatial:
            flats = [v for v in values if isinstance(v, _Flat)]
            if flats:
                return [_Flat(all(v.valid for v in flats))] * n_out
            return [_META] * n_out
        result = self._spatial_op(op, values)
        if isinstance(result, _Spatial):
            self.max_scale = max(self.max_scale, result.scale)
        return [result] + [None] * (n_out - 1)

    def _spatial_op(self, op: tf.Operation, values: list[Any]) -> Any:
        kind = op.type
        out_shape = op.outputs[0].shape
        rank = out_shape.rank
        if kind in _ELEMENTWISE:
            if rank is None or rank < 3:
                raise _UnsupportedError(f"{kind} turns an image into rank {rank} ({op.name})")
            return _elementwise(op, values)
        if kind == "ConcatV2":
            axis = int(_static_value(op.inputs[-1])) % rank
            if axis < 3:
                raise _UnsupportedError(f"concatenation along a spatial axis ({op.name})")
            return _elementwise(op, values[:-1])
        if kind in _REDUCTIONS:
            in_rank = op.inputs[0].shape.rank
            axes = set(_axis_list(_static_value(op.inputs[1]), in_rank))
            source = values[0]
            if not isinstance(source, _Spatial):
                raise _UnsupportedError(f"{kind} on a shape ({op.name})")
            if not axes & {0, 1, 2}:
                return _Spatial(source.rows, source.cols, source.scale, source.block)
            if {1, 2} <= axes:
                return _Flat(bool(source.rows.all() and source.cols.all()))
            raise _UnsupportedError(f"{kind} over one spatial axis ({op.name})")
        if kind == "ExpandDims":
            axis = int(_static_value(op.inputs[1])) % rank
            if axis < 3:
                raise _UnsupportedError(f"ExpandDims before the spatial axes ({op.name})")
            return _reuse(values[0])
        if kind == "Squeeze":
            in_rank = op.inputs[0].shape.rank
            dims = _axis_list(op.get_attr("squeeze_dims"), in_rank)
            if not dims or min(dims) < 3:
                raise _UnsupportedError(f"Squeeze of a spatial axis ({op.name})")
            return _reuse(values[0])
        if kind == "Reshape":
            if rank is not None and rank <= 2 and isinstance(values[0], _Spatial):
                return _Flat(bool(values[0].rows.all() and values[0].cols.all()))
            raise _UnsupportedError(f"Reshape of an image ({op.name})")
        if kind in _CONV_KINDS:
            return self._conv(op, values[0])
        if kind in _TILE_OPS:
            return _tile(op, values[0])
        if kind == "Conv2DBackpropInput":
            return self._transposed_conv(op, values[2])
        if kind in ("StridedSlice", "Slice"):
            return self._slice(op, values[0])
        if kind in ("Pad", "PadV2", "MirrorPad"):
            return self._pad(op, values[0])
        if kind == "SpaceToBatchND":
            return self._space_to_batch(op, values[0])
        if kind == "BatchToSpaceND":
            return self._batch_to_space(op, values[0])
        raise _UnsupportedError(f"operation {kind} ({op.name})")

    @staticmethod
    def _check_nhwc(op: tf.Operation) -> None:
        try:
            data_format = op.get_attr("data_format")
        except ValueError:
            return
        if data_format not in (b"NHWC", "NHWC"):
            raise _UnsupportedError(f"data format {data_format!r} ({op.name})")

    def _padding(self, op: tf.Operation, in_size: int, out_size: int, kernel: int, stride: int, dilation: int,
                 axis: int) -> int:
        padding = op.get_attr("padding").decode() if isinstance(op.get_attr("padding"), bytes) else op.get_attr(
            "padding")
        if padding == "SAME":
            return same_padding_before(in_size, out_size, kernel, stride, dilation)
        if padding == "VALID":
            return 0
        if padding == "EXPLICIT":
            return int(op.get_attr("explicit_paddings")[2 * axis])
        raise _UnsupportedError(f"padding {padding} ({op.name})")

    def _conv(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial):
            raise _UnsupportedError(f"{op.type} on a non-image ({op.name})")
        self._check_nhwc(op)
        if op.type in ("MaxPool", "AvgPool"):
            ksize = op.get_attr("ksize")
            kernel = (int(ksize[1]), int(ksize[2]))
            dilations = (1, 1)
        else:
            filter_shape = op.inputs[1].shape
            kernel = (int(filter_shape[0]), int(filter_shape[1]))
            # A morphological dilation has a structuring element where a convolution has a kernel.
            dil = op.get_attr("rates" if op.type == "Dilation2D" else "dilations")
            dilations = (int(dil[1]), int(dil[2]))
        strides = op.get_attr("strides")
        stride = (int(strides[1]), int(strides[2]))
        if source.block != (1, 1):
            return self._blocked_conv(op, source, kernel, stride, dilations)
        out_shape = op.outputs[0].shape
        masks = []
        for axis, mask in ((1, source.rows), (2, source.cols)):
            i = axis - 1
            out_size = int(out_shape[axis])
            pad = self._padding(op, len(mask), out_size, kernel[i], stride[i], dilations[i], axis)
            masks.append(conv_valid_mask(mask, kernel[i], stride[i], pad, out_size, dilations[i]))
        result = _Spatial(masks[0], masks[1], source.scale * stride[0])
        self._record(op, _CONV_KINDS[op.type], kernel, stride, result)
        return result

    def _blocked_conv(self, op: tf.Operation, source: _Spatial, kernel: tuple[int, int], stride: tuple[int, int],
                      dilations: tuple[int, int]) -> _Spatial:
        """A "valid" convolution between SpaceToBatchND and BatchToSpaceND: a dilated convolution."""
        padding = op.get_attr("padding")
        if stride != (1, 1) or padding not in (b"VALID", "VALID"):
            raise _UnsupportedError(f"strided or padded convolution in space-to-batch form ({op.name})")
        masks = []
        for i, mask in enumerate((source.rows, source.cols)):
            dilation = source.block[i] * dilations[i]
            out_size = max(len(mask) - dilation * (kernel[i] - 1), 0)
            masks.append(conv_valid_mask(mask, kernel[i], 1, 0, out_size, dilation))
        result = _Spatial(masks[0], masks[1], source.scale, source.block)
        self._record(op, f"{_CONV_KINDS[op.type]} (dilated)", kernel, (1, 1), result)
        return result

    def _space_to_batch(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial) or source.block != (1, 1):
            raise _UnsupportedError(f"space-to-batch of a non-image ({op.name})")
        block = [int(b) for b in _static_value(op.inputs[1])]
        paddings = _static_value(op.inputs[2])
        if len(block) != 2:
            raise _UnsupportedError(f"space-to-batch over {len(block)} axes ({op.name})")
        masks = [np.concatenate([np.zeros(int(paddings[i][0]), bool), mask, np.zeros(int(paddings[i][1]), bool)])
                 for i, mask in enumerate((source.rows, source.cols))]
        return _Spatial(masks[0], masks[1], source.scale, (block[0], block[1]))

    def _batch_to_space(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial) or source.block == (1, 1):
            raise _UnsupportedError(f"batch-to-space without space-to-batch ({op.name})")
        crops = _static_value(op.inputs[2])
        masks = [mask[int(crops[i][0]): len(mask) - int(crops[i][1])]
                 for i, mask in enumerate((source.rows, source.cols))]
        out_shape = op.outputs[0].shape
        if (len(masks[0]), len(masks[1])) != (int(out_shape[1]), int(out_shape[2])):
            raise _UnsupportedError(f"unexpected batch-to-space geometry ({op.name})")
        return _Spatial(masks[0], masks[1], source.scale)

    def _transposed_conv(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial) or source.block != (1, 1):
            raise _UnsupportedError(f"transposed convolution of a non-image ({op.name})")
        self._check_nhwc(op)
        filter_shape = op.inputs[1].shape
        kernel = (int(filter_shape[0]), int(filter_shape[1]))
        strides = op.get_attr("strides")
        stride = (int(strides[1]), int(strides[2]))
        dil = op.get_attr("dilations")
        dilations = (int(dil[1]), int(dil[2]))
        out_shape = op.outputs[0].shape
        masks = []
        for axis, mask in ((1, source.rows), (2, source.cols)):
            i = axis - 1
            out_size = int(out_shape[axis])
            # The forward convolution goes from out_size pixels to len(mask) pixels.
            pad = self._padding(op, out_size, len(mask), kernel[i], stride[i], dilations[i], axis)
            masks.append(transposed_conv_valid_mask(mask, kernel[i], stride[i], pad, out_size, dilations[i]))
        result = _Spatial(masks[0], masks[1], source.scale / stride[0])
        self._record(op, "Conv2DTranspose", kernel, stride, result)
        return result

    def _slice(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial) or source.block != (1, 1):
            raise _UnsupportedError(f"slice of a non-image ({op.name})")
        in_shape = op.inputs[0].shape
        out_shape = op.outputs[0].shape
        begin = [int(b) for b in _static_value(op.inputs[1])]
        if op.type == "StridedSlice":
            for attr in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
                if op.get_attr(attr):
                    raise _UnsupportedError(f"slice with {attr} ({op.name})")
            strides = [int(s) for s in _static_value(op.inputs[3])]
            begin_mask = op.get_attr("begin_mask")
        else:
            strides = [1] * len(begin)
            begin_mask = 0
        masks = []
        for axis, mask in ((1, source.rows), (2, source.cols)):
            size = int(in_shape[axis])
            if axis >= len(begin):
                start, step = 0, 1
            else:
                step = strides[axis]
                start = 0 if begin_mask & (1 << axis) else begin[axis]
                if start < 0:
                    start += size
                if step < 1:
                    raise _UnsupportedError(f"slice with a negative stride ({op.name})")
            masks.append(mask[start::step][: int(out_shape[axis])])
        return _Spatial(masks[0], masks[1], source.scale)

    def _pad(self, op: tf.Operation, source: Any) -> _Spatial:
        if not isinstance(source, _Spatial) or source.block != (1, 1):
            raise _UnsupportedError(f"padding of a non-image ({op.name})")
        paddings = _static_value(op.inputs[1])
        masks = []
        for axis, mask in ((1, source.rows), (2, source.cols)):
            before, after = int(paddings[axis][0]), int(paddings[axis][1])
            masks.append(np.concatenate([np.zeros(before, bool), mask, np.zeros(after, bool)]))
        result = _Spatial(masks[0], masks[1], source.scale)
        self._record(op, "Pad", None, None, result)
        return result

    def _record(self, op: tf.Operation, kind: str, kernel: tuple[int, int] | None, stride: tuple[int, int] | None,
                result: _Spatial) -> None:
        run_rows = valid_run(result.rows)
        run_cols = valid_run(result.cols)
        self.layers.append(LayerGeometry(_layer_name(op), kind, kernel, stride, (len(result.rows), len(result.cols)),
                                         (run_rows[1] - run_rows[0], run_cols[1] - run_cols[0])))


def _tiled_image(op: tf.Operation, source: _Flat) -> _Spatial | _Flat:
    """Per-sample values repeated over an image: every pixel is as valid as the values (tile size plays no part)."""
    shape = op.outputs[0].shape
    if shape.rank is None or shape.rank < 3:
        return _Flat(source.valid)  # still not an image
    if shape[1] is None or shape[2] is None:
        raise _UnsupportedError(f"{op.type} to an image of unknown size ({op.name})")
    return _Spatial(np.full(int(shape[1]), source.valid), np.full(int(shape[2]), source.valid), Fraction(1))


def _tile(op: tf.Operation, source: Any) -> _Spatial:
    """An image tiled or broadcast along its channels (or batch) only keeps its masks."""
    if not isinstance(source, _Spatial):
        raise _UnsupportedError(f"{op.type} of a shape ({op.name})")
    in_shape, out_shape = op.inputs[0].shape, op.outputs[0].shape
    if in_shape.rank != out_shape.rank or any(in_shape[axis] is None or in_shape[axis] != out_shape[axis]
                                              for axis in (1, 2)):
        raise _UnsupportedError(f"{op.type} along a spatial axis ({op.name})")
    return _Spatial(source.rows, source.cols, source.scale, source.block)


def _reuse(value: Any) -> Any:
    if isinstance(value, _Spatial):
        return _Spatial(value.rows, value.cols, value.scale, value.block)
    raise _UnsupportedError("axis change of a non-image")


def _tidy_layer_names(layers: list[LayerGeometry]) -> None:
    """Drop the ``_<n>`` suffix TensorFlow adds to every scope of a re-traced model, when all names share it."""
    suffixes = {m.group(0) for g in layers if (m := re.search(r"_\d+$", g.name))}
    if layers and len(suffixes) == 1 and all(re.search(r"_\d+$", g.name) for g in layers):
        suffix = suffixes.pop()
        for g in layers:
            g.name = g.name[: -len(suffix)]


def _frozen(function: Callable[..., Any], specs: Mapping[str, tf.TensorSpec]) -> tuple[Any, dict[str, tf.Tensor]]:
    names = list(specs)

    def call(*args: Any) -> Any:
        return function(**dict(zip(names, args, strict=True)))

    concrete = tf.function(call).get_concrete_function(*[specs[n] for n in names])
    structured = concrete.structured_outputs
    if not isinstance(structured, Mapping):
        raise ModelError("the model must return a dict of named outputs.", "MODEL")
    frozen = convert_variables_to_constants_v2(concrete)
    # The frozen function returns the flattened outputs, in tf.nest order.
    names_in_order = list(tf.nest.flatten({k: k for k in structured}))
    return frozen, dict(zip(names_in_order, frozen.outputs, strict=True))


def walk_graph(function: Callable[..., Any], specs: Mapping[str, tf.TensorSpec]) -> tuple[
        dict[str, OutputGeometry], list[LayerGeometry], int]:
    """Analyse ``function(**inputs) -> dict`` for the fixed input ``specs``.

    Returns:
        Per output name its geometry, the geometry-changing layers, and the size step
        (the largest downsampling factor: input sizes should be multiples of it).

    Raises:
        _UnsupportedError: an operation's geometry is not modelled.
    """
    frozen, output_tensors = _frozen(function, specs)
    graph = frozen.graph
    values: dict[str, Any] = {}
    placeholders = {t.op.name: name for t, name in zip(frozen.inputs, specs, strict=False)}
    walker = _GraphWalker()
    for op in graph.get_operations():
        if op.type == "Placeholder":
            name = placeholders.get(op.name)
            shape = op.outputs[0].shape
            if name is not None and shape.rank is not None and shape.rank >= 3:
                values[op.outputs[0].name] = _Spatial(np.ones(int(shape[1]), bool), np.ones(int(shape[2]), bool),
                                                      Fraction(1))
            elif name is not None:
                values[op.outputs[0].name] = _Flat(True)
            else:
                values[op.outputs[0].name] = None
            continue
        inputs = [values.get(t.name) for t in op.inputs]
        for tensor, value in zip(op.outputs, walker.evaluate(op, inputs), strict=True):
            values[tensor.name] = value
    outputs: dict[str, OutputGeometry] = {}
    for name, tensor in output_tensors.items():
        value = values.get(tensor.name)
        outputs[name] = _output_geometry(name, value)
    _tidy_layer_names(walker.layers)
    return outputs, walker.layers, max(1, math.floor(walker.max_scale))


def _output_geometry(name: str, value: Any) -> OutputGeometry:
    if isinstance(value, _Spatial):
        return OutputGeometry(name, (len(value.rows), len(value.cols)), valid_run(value.rows), valid_run(value.cols))
    if isinstance(value, _Flat):
        return OutputGeometry(name, None, fully_valid=value.valid)
    return OutputGeometry(name, None, fully_valid=True)


def _probe_values(dtype: tf.DType, shape: tuple[int, ...], level: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    if dtype.is_integer:
        high = {tf.uint8: 256, tf.int8: 128}.get(dtype, 10000)
        high = max(2, high // (10 ** (2 - level)) if high > 256 else high)
        return rng.integers(0, high, size=shape).astype(dtype.as_numpy_dtype)
    amplitude = (1.0, 100.0, 10000.0)[level]
    return (rng.random(size=shape) * amplitude).astype(dtype.as_numpy_dtype)


def probe(function: Callable[..., Any], specs: Mapping[str, tf.TensorSpec], seed: int = 0) -> dict[
        str, OutputGeometry]:
    """Find the padding-free output pixels by running the model.

    Each input of size ``n`` is embedded at the centre of a random input of size ``3n``;
    an output pixel is valid when it is the same in both runs, for three random inputs
    of different amplitudes.

    Raises:
        ModelError: the model does not run at three times the size, or its outputs do
            not scale consistently.
    """
    rng = np.random.default_rng(seed)
    diffs: dict[str, npt.NDArray[Any]] = {}
    sizes: dict[str, tuple[int, ...]] = {}
    flat: set[str] = set()
    for level in range(3):
        small: dict[str, Any] = {}
        large: dict[str, Any] = {}
        for name, spec in specs.items():
            shape = tuple(int(d) for d in spec.shape)
            big_shape = (shape[0], 3 * shape[1], 3 * shape[2], *shape[3:])
            big = _probe_values(spec.dtype, big_shape, level, rng)
            large[name] = tf.constant(big)
            small[name] = tf.constant(big[:, shape[1]:2 * shape[1], shape[2]:2 * shape[2]])
        try:
            out_small = function(**small)
            out_large = function(**large)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise ModelError(f"probing the model failed at three times the input size: {exc}", "MODEL") from exc
        for name, tensor in out_small.items():
            a = np.asarray(tensor, dtype=np.float64)
            b = np.asarray(out_large[name], dtype=np.float64)
            if a.ndim < 3:
                flat.add(name)
                continue
            sizes[name] = a.shape[1:3]
            if a.size == 0:
                diffs[name] = np.ones(a.shape[1:3], dtype=bool)
                continue
            off_r, rem_r = divmod(b.shape[1] - a.shape[1], 2)
            off_c, rem_c = divmod(b.shape[2] - a.shape[2], 2)
            if rem_r or rem_c or off_r < 0 or off_c < 0:
                raise ModelError(f"the output '{name}' does not scale with the input ({a.shape} for the input, "
                                 f"{b.shape} for 3× the input): cannot locate its padding-free part.", "MODEL")
            window = b[:, off_r:off_r + a.shape[1], off_c:off_c + a.shape[2]]
            tolerance = 1e-5 * max(1.0, float(np.abs(window).max()))
            differs = np.abs(a - window) > tolerance
            reduced = differs.reshape(differs.shape[0], differs.shape[1], differs.shape[2], -1).any(axis=(0, 3))
            diffs[name] = reduced | diffs.get(name, np.zeros_like(reduced))
    outputs: dict[str, OutputGeometry] = {}
    for name in out_small:
        if name in flat:
            outputs[name] = OutputGeometry(name, None, fully_valid=True)
            continue
        valid = ~diffs[name]
        rows = valid[:, valid.shape[1] // 2] if valid.shape[1] else np.zeros(0, bool)
        cols = valid[valid.shape[0] // 2, :] if valid.shape[0] else np.zeros(0, bool)
        outputs[name] = OutputGeometry(name, (int(sizes[name][0]), int(sizes[name][1])), valid_run(rows),
                                       valid_run(cols))
    return outputs


def analyze_function(function: Callable[..., Any], specs: Mapping[str, tf.TensorSpec],
                     class_output: str | None = None, reporter: Reporter | None = None) -> ReceptiveFieldReport:
    """Analyse a model function for fixed input specs (batch 1): analytic first, probing as fallback.

    Args:
        function: ``function(**inputs) -> dict of outputs`` (a serving signature, or a
            Keras model wrapped to take keyword inputs).
        specs: Input name → ``TensorSpec([1, rows, cols, bands], dtype)``.
        class_output: The output to base the recommendation on (default: the first with
            cropped versions).
        reporter: Receives a note about the method used.
    """
    reporter = reporter or NullReporter()
    sizes = {name: (int(spec.shape[1]), int(spec.shape[2])) for name, spec in specs.items()}
    try:
        outputs, layers, step = walk_graph(function, specs)
        report = ReceptiveFieldReport(sizes, "analytic", outputs, layers, step)
    except _UnsupportedError as exc:
        if len(specs) > 1:
            raise ModelError(f"cannot determine the receptive field of this multi-input model ({exc}); give "
                             "RFIELD and EFIELD to serving yourself.", "MODEL") from exc
        reporter.info(f"The graph has an operation whose geometry is not modelled ({exc}): probing the model.")
        report = ReceptiveFieldReport(sizes, "probing", probe(function, specs))
    except ModelError:
        raise
    except (tf.errors.OpError, ValueError) as exc:
        raise ModelError(f"the model does not accept inputs of {sizes}: {exc}", "INPUT_SIZE") from exc
    recommend(report, class_output)
    return report


def keras_model_function(model: Any) -> Callable[..., Any]:
    """Wrap a Keras model taking a dict of inputs as ``function(**inputs) -> dict``."""

    def call(**inputs: Any) -> Any:
        outputs = model(inputs, training=False)
        if not isinstance(outputs, Mapping):
            outputs = {name: tensor for name, tensor in zip(model.output_names, tf.nest.flatten(outputs),
                                                              strict=True)}
        return dict(outputs)

    return call


def analyze_saved_model(model_dir: str | Path, input_size: int,
                        reporter: Reporter | None = None) -> ReceptiveFieldReport:
    """Analyse a SavedModel's signature (see :class:`ServingModel`) for square inputs of ``input_size`` pixels.

    The first input (in the order of ``otbtf_model.json``) is ``input_size`` ×
    ``input_size``; the others keep the ratio of their training patches to the first
    one's when ``otbtf_model.json`` gives them (see :func:`input_sizes_for`). The
    recommendation is based on the JSON's ``class_output`` when there is one.

    Raises:
        ModelError: the folder is not a loadable SavedModel, its JSON is broken, or an
            input is not an image.
        InputError: the model takes a fixed size other than the one asked for (``INPUT_SIZE``).
    """
    reporter = reporter or NullReporter()
    model = ServingModel(model_dir)
    names = model.input_names()
    if not names:
        raise ModelError(f"the signature '{model.signature_name}' of '{model_dir}' takes no named input.", "MODEL")
    sizes = input_sizes_for(input_size, names, model.metadata.inputs)
    specs = {}
    for name in names:
        info = model.inputs[name]
        if len(info.shape) != 4 or info.dtype == "object":
            raise ModelError(f"the input {info.describe()} is not an image: image inputs are [batch, rows, cols, "
                             "bands] numbers.", "MODEL")
        for axis, wanted in ((1, sizes[name][0]), (2, sizes[name][1])):
            if info.shape[axis] is not None and info.shape[axis] != wanted:
                raise InputError(f"the model takes a fixed size {info.shape[axis]} for '{name}', not {wanted}.",
                                 "INPUT_SIZE")
        specs[name] = tf.TensorSpec([1, sizes[name][0], sizes[name][1], info.shape[3]], tf.as_dtype(info.dtype),
                                    name=name)
    reporter.progress(0.3)
    report = analyze_function(model.signature, specs, model.metadata.class_output or None, reporter)
    reporter.progress(1.0)
    return report
