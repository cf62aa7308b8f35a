"""Receptive field, expression field and the padding-free part of a model's outputs.

Vocabulary (OTBTF's): the *receptive field* ``rf`` is the input size a model sees per
tile, the *expression field* ``ef`` the output size it produces per tile. A
fully-convolutional model pads its convolutions ("same" padding), so the output pixels
near a tile border depend on the padding: tiles stitched together would show seams.
Only the *valid* output pixels (whose computation never reads padding) are the same as
in one big tile. A cropped output ``<name>_crop<C>`` drops ``C`` pixels on each side, so
it is seamless when ``C`` covers the invalid border; then ``ef = rf − 2·C``.

The valid pixels are tracked as a boolean mask per spatial axis through each layer:

- convolution / pooling of kernel ``k``, stride ``s``, dilation ``d`` on ``n`` pixels:
  output ``j`` reads inputs ``j·s − p + t·d`` for ``t`` in ``[0, k)``, with ``p`` the
  padding before (``"same"``: ``⌊max((o − 1)·s + d·(k − 1) + 1 − n, 0)/2⌋`` for ``o``
  outputs; ``"valid"``: 0). It is valid when every input it reads exists and is valid.
  With no padding involved this is OTBTF's ``y = ⌊(x − k)/s⌋ + 1``.
- transposed convolution (the gradient of such a convolution from ``o`` to ``n`` pixels):
  output ``i`` gathers inputs ``j = (i + p − t·d)/s`` for the ``t`` that make it an
  integer; valid when all those ``j`` exist and are valid (OTBTF's ``y = x·s − k + 2``).
- element-wise operations, additions of skip connections, concatenation of channels:
  the intersection of the inputs' masks.

This module is pure Python and numpy; :mod:`otbtf_qgis.core.models.graph` applies it to
the operations of a TensorFlow graph, :mod:`otbtf_qgis.core.models.report` writes the report
as tables and :mod:`otbtf_qgis.core.models.receptivefield` is the ``receptivefield`` job.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.errors import InputError

Mask = npt.NDArray[np.bool_]

_CROP_NAME = re.compile(r"^(?P<base>.+)_crop(?P<crop>\d+)$")


def same_padding_before(in_size: int, out_size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Padding before the first pixel of a "same" convolution (TensorFlow's rule).

    ``⌊max((out_size − 1)·stride + dilation·(kernel − 1) + 1 − in_size, 0) / 2⌋``: the
    total padding is split with the extra pixel after.
    """
    effective = dilation * (kernel - 1) + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


def conv_valid_mask(mask: Mask, kernel: int, stride: int, pad_before: int, out_size: int, dilation: int = 1) -> Mask:
    """Valid outputs of a convolution/pooling given the valid inputs ``mask``.

    Output ``j`` is valid when all inputs ``j·stride − pad_before + t·dilation``
    (``t`` in ``[0, kernel)``) lie in the input and are valid.
    """
    size = len(mask)
    out = np.ones(out_size, dtype=bool)
    starts = np.arange(out_size) * stride - pad_before
    for tap in range(kernel):
        position = starts + tap * dilation
        inside = (position >= 0) & (position < size)
        out &= inside
        out[inside] &= mask[position[inside]]
    return out


def transposed_conv_valid_mask(mask: Mask, kernel: int, stride: int, pad_before: int, out_size: int,
                               dilation: int = 1) -> Mask:
    """Valid outputs of a transposed convolution given the valid inputs ``mask``.

    Output ``i`` gathers the inputs ``j = (i + pad_before − t·dilation)/stride`` for each
    tap ``t`` where the division is exact; it is valid when every such ``j`` lies in the
    input and is valid.
    """
    size = len(mask)
    out = np.ones(out_size, dtype=bool)
    positions = np.arange(out_size) + pad_before
    for tap in range(kernel):
        numerator = positions - tap * dilation
        hits = numerator % stride == 0
        source = numerator // stride
        inside = (source >= 0) & (source < size)
        out &= ~hits | inside
        usable = hits & inside
        out[usable] &= mask[source[usable]]
    return out


def valid_run(mask: Mask) -> tuple[int, int]:
    """The longest run of valid pixels as ``(start, stop)`` (``(0, 0)`` when none is valid)."""
    best = (0, 0)
    start = None
    for index, value in enumerate([*mask.tolist(), False]):
        if value and start is None:
            start = index
        elif not value and start is not None:
            if index - start > best[1] - best[0]:
                best = (start, index)
            start = None
    return best


def crop_covers(valid: tuple[int, int], size: int, crop: int) -> bool:
    """Whether cropping ``crop`` pixels on each side of a ``size`` output keeps only the ``valid`` run."""
    start, stop = valid
    return crop >= start and size - crop <= stop and size - 2 * crop >= 1


def crop_name(output: str, crop: int) -> str:
    """Name of ``output`` cropped by ``crop`` pixels on each side: ``<output>_crop<crop>``.

    The one place the name is built; :func:`split_crop_name` is the one place it is parsed.
    """
    return f"{output}_crop{crop}"


def split_crop_name(name: str) -> tuple[str, int] | None:
    """``"x_crop16"`` → ``("x", 16)``; None for a name that is not a cropped output."""
    match = _CROP_NAME.match(name)
    return (match["base"], int(match["crop"])) if match else None


def cropped_outputs(names: Collection[str]) -> dict[str, tuple[str, int]]:
    """The cropped outputs among ``names`` whose base output is there too: name → ``(base output, crop)``."""
    found = {}
    for name in names:
        split = split_crop_name(name)
        if split and split[0] in names:
            found[name] = split
    return found


def output_order(name: str) -> tuple[str, int]:
    """Sort key of output names: each output, then its cropped versions by increasing crop."""
    split = split_crop_name(name)
    return (split[0], split[1]) if split else (name, 0)


@dataclass
class LayerGeometry:
    """One geometry-changing operation on the path from an input to an output.

    Attributes:
        name: The layer (or operation) name.
        kind: ``Conv2D``, ``Conv2DTranspose``, ``MaxPool``, ``Crop``, ``Pad``, ...
        kernel: Kernel size ``(rows, cols)`` (None for crops and pads).
        stride: Stride ``(rows, cols)`` (None for crops and pads).
        size: Output size ``(rows, cols)``.
        valid: Padding-free output pixels ``(rows, cols)`` (longest valid run).
    """

    name: str
    kind: str
    kernel: tuple[int, int] | None
    stride: tuple[int, int] | None
    size: tuple[int, int]
    valid: tuple[int, int]


@dataclass
class OutputGeometry:
    """Where an output is padding-free for a given input size.

    Attributes:
        name: The output name in the serving signature.
        size: Output size ``(rows, cols)``; None for an output without spatial axes.
        valid_rows: Valid run ``(start, stop)`` along the rows.
        valid_cols: Valid run along the columns.
        fully_valid: For outputs without spatial axes: whether no padding is involved.
    """

    name: str
    size: tuple[int, int] | None
    valid_rows: tuple[int, int] = (0, 0)
    valid_cols: tuple[int, int] = (0, 0)
    fully_valid: bool = True

    @property
    def valid_size(self) -> tuple[int, int]:
        """Number of valid pixels ``(rows, cols)``."""
        return (self.valid_rows[1] - self.valid_rows[0], self.valid_cols[1] - self.valid_cols[0])

    def covered_by(self, crop: int) -> bool:
        """Whether cropping ``crop`` pixels on each side leaves only valid pixels (and some)."""
        if self.size is None:
            return False
        return crop_covers(self.valid_rows, self.size[0], crop) and crop_covers(self.valid_cols, self.size[1], crop)


@dataclass
class ReceptiveFieldReport:
    """The padding-free geometry of a model for one input size, and the serving recommendation.

    Attributes:
        input_sizes: Input name → ``(rows, cols)`` analysed.
        method: ``"analytic"`` (from the layers) or ``"probing"`` (by running the model).
        outputs: Per output name, its geometry.
        layers: Geometry-changing layers from the first input to the class output
            (analytic method only).
        size_step: Input sizes the model accepts are multiples of this (1 if unknown).
        recommended_output: Output name to serve, None if no output fits.
        receptive_field: Recommended ``(x, y)`` receptive field (OTBTF's rfieldx/rfieldy).
        expression_field: Recommended ``(x, y)`` expression field.
        notes: Explanations for the user (why this recommendation, caveats).
        seamless: Whether the recommended output is padding-free (tiles meet without seams).
    """

    input_sizes: dict[str, tuple[int, int]]
    method: str
    outputs: dict[str, OutputGeometry]
    layers: list[LayerGeometry] = field(default_factory=list)
    size_step: int = 1
    recommended_output: str | None = None
    receptive_field: tuple[int, int] | None = None
    expression_field: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)
    seamless: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (sizes as lists)."""
        return {
            "input_sizes": {k: list(v) for k, v in self.input_sizes.items()},
            "method": self.method,
            "size_step": self.size_step,
            "outputs": {name: {"size": list(o.size) if o.size else None, "valid_rows": list(o.valid_rows),
                               "valid_cols": list(o.valid_cols), "valid_size": list(o.valid_size),
                               "fully_valid": o.fully_valid} for name, o in self.outputs.items()},
            "layers": [{"name": g.name, "kind": g.kind, "kernel": list(g.kernel) if g.kernel else None,
                        "stride": list(g.stride) if g.stride else None, "size": list(g.size),
                        "valid": list(g.valid)} for g in self.layers],
            "recommended_output": self.recommended_output,
            "receptive_field": list(self.receptive_field) if self.receptive_field else None,
            "expression_field": list(self.expression_field) if self.expression_field else None,
            "notes": list(self.notes),
            "seamless": self.seamless,
        }


def recommend(report: ReceptiveFieldReport, class_output: str | None = None) -> None:
    """Fill the report's recommendation: the smallest seamless crop of the class output.

    The base output is ``class_output`` if given, else the first output that has cropped
    versions. Among its cropped outputs, the smallest crop that removes every
    padding-affected pixel wins (OTBTF's doc: 64 → 33 valid → crop16, rf 64, ef 32). When
    none does, the largest crop that still leaves an output is chosen, with a note.
    """
    first_input = next(iter(report.input_sizes.values()))
    rf = (first_input[1], first_input[0])
    crops_by_base: dict[str, list[int]] = {}
    for base_name, crop_size in cropped_outputs(report.outputs).values():
        crops_by_base.setdefault(base_name, []).append(crop_size)
    base = class_output if class_output in report.outputs else next(iter(crops_by_base), None)
    report.receptive_field = rf

    def choose(name: str | None, size: tuple[int, int] | None, note: str = "") -> None:
        """Recommend ``name``, whose ``(rows, cols)`` output (``None``: one pixel) is the expression field."""
        report.recommended_output = name
        report.expression_field = (1, 1) if size is None else (size[1], size[0])
        if note:
            report.notes.append(note)

    if base is None:
        spatial = [o for o in report.outputs.values() if o.size is not None]
        if not spatial:
            report.seamless = True  # each output pixel comes from its own input patch
            choose(next(iter(report.outputs), None), None,
                   "The outputs have no spatial axes: the model is patch-based (one output pixel per input patch of "
                   "the receptive field).")
            return
        output = spatial[0]
        assert output.size is not None
        report.seamless = output.valid_size == output.size
        if report.seamless:
            choose(output.name, output.size, f"'{output.name}' is padding-free on all its pixels: no crop is needed.")
            return
        choose(output.name, output.size,
               f"The model has no cropped outputs: serving '{output.name}' whole gives seams where the "
               f"padding-affected border ({output.size[0] - output.valid_size[0]} rows) meets the next tile.")
        return
    geometry = report.outputs[base]
    crops = sorted(crops_by_base.get(base, []))
    if geometry.size is None:
        report.seamless = True
        choose(base, None)
        return
    size = geometry.size
    if geometry.valid_size == size:
        report.seamless = True
        choose(base, size, f"'{base}' is padding-free on all its {size[0]}×{size[1]} pixels: no crop is needed.")
        return
    seamless = [c for c in crops if geometry.covered_by(c)]
    leaving = [c for c in crops if size[0] - 2 * c >= 1 and size[1] - 2 * c >= 1]
    if seamless:
        report.seamless = True
        crop = seamless[0]
        note = (f"'{base}' is padding-free on {geometry.valid_size[0]}×{geometry.valid_size[1]} of {size[0]}×"
                f"{size[1]} pixels: crop {crop} is the smallest that removes the padding-affected border.")
    elif leaving:
        crop = leaving[-1]
        note = (f"No cropped output of '{base}' removes all padding-affected pixels for this input size (valid "
                f"{geometry.valid_size[0]}×{geometry.valid_size[1]} of {size[0]}×{size[1]}); crop {crop} is the "
                "largest that leaves an output. A larger input size helps.")
    else:
        choose(base, size, f"No cropped output of '{base}' fits an input of {rf[0]}×{rf[1]}: use a larger input size.")
        return
    choose(crop_name(base, crop), (size[0] - 2 * crop, size[1] - 2 * crop), note)


def input_sizes_for(input_size: int, inputs: Sequence[str],
                    described: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Input sizes ``(rows, cols)`` to analyse: the first input square, the others like their training patches.

    The first input gets ``input_size × input_size``. ``described`` is the ``inputs``
    section of ``otbtf_model.json`` (``patch_size`` as ``[x, y]`` per input): each other
    input keeps, per axis, the ratio of its patch to the first input's patch,
    ``rows = round(input_size · patch_y / first_patch_y)`` (same for the columns with
    ``x``), at least 1. An input without a patch size (or all, without the JSON) gets
    ``input_size × input_size``.

    Raises:
        InputError: ``input_size`` is not positive (parameter ``INPUT_SIZE``).
    """
    if input_size < 1:
        raise InputError(f"must be a positive number of pixels, got {input_size}.", "INPUT_SIZE")

    def patch_xy(name: str) -> tuple[int, int] | None:
        patch = described.get(name, {}).get("patch_size")
        if isinstance(patch, (list, tuple)) and len(patch) == 2 and all(isinstance(v, int) and v > 0 for v in patch):
            return (patch[0], patch[1])
        return None

    first = patch_xy(inputs[0]) if inputs else None
    sizes = {}
    for name in inputs:
        patch = patch_xy(name)
        if first and patch:
            sizes[name] = (max(1, round(input_size * patch[1] / first[1])),
                           max(1, round(input_size * patch[0] / first[0])))
        else:
            sizes[name] = (input_size, input_size)
    return sizes
