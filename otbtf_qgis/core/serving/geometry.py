"""Serving geometry: receptive and expression fields, the output grid and the input windows.

Small pure functions, the same rules as OTBTF's TensorflowModelServe, per axis (x and y
are independent). Positions are pixel *corners*; pixel ``p`` covers ``[p, p + 1)``.
Rational numbers (:class:`fractions.Fraction`) keep multi-resolution positions exact.

Receptive and expression fields
    A model maps an input window of ``rf`` pixels (its receptive field) to ``ef`` output
    pixels (its expression field). For a cropped output ``_cropC`` computed on an input
    of ``rf`` pixels: ``ef = rf − 2·C`` (OTBTF's FCNN: ``_crop16`` on 64 pixels has ef 32;
    :mod:`otbtf_qgis.core.models.receptive_field` derives these from a model's graph).

Reference grid
    Positions are measured in pixels of the first source (the *reference*). Source ``i``
    has ``k_i = spacing_0 / spacing_i`` of its pixels per reference pixel, and the
    reference origin lies at ``c_i`` of its pixels: reference position ``u`` is source
    position ``u·k_i + c_i`` (:class:`AxisGrid`).

Output grid (OTBTF's ``GenerateOutputInformation``)
    Each source's extent, shrunk by its receptive field, is
    ``[rf//2, size − rf + 1 + rf//2)`` (:func:`shrunk_extent`). With ``[u0, u1)`` the
    intersection of these extents in reference pixels and ``s`` the spacing scale (output
    pixel size = ``s`` reference pixels), the output has
    ``n = ⌊(u1 − u0)/s⌋ + ef − 1`` pixels, rounded down to a multiple of ``ef``. Its first
    pixel is centred on the reference pixel centre ``u0 + ½``, moved back by ``⌊ef/2⌋``
    output pixels: its corner is ``g = u0 + (1 − s)/2 − s·⌊ef/2⌋`` (:func:`output_axis`).
    Example: width 1000, rf 64, ef 32 → ``u0 = 32``, ``n = 937 + 31 = 968 → 960`` pixels
    starting at pixel ``g = 16``.

Georeferencing
    OTBTF declares the output origin at ``g``. When ``g`` is not a whole number of
    reference pixels (even spcscale), OTBTF reads the first tile from ``⌊g + ½⌋``, half a
    reference pixel further: in fully-convolutional mode we georeference the output
    where its pixels are computed from, ``⌊g + ½⌋`` (the same as OTBTF whenever ``g`` is
    whole, e.g. for any odd spcscale). In patch-based mode the patches are centred on the
    output pixels of origin ``g``, which is kept (:meth:`ServingGeometry.geotransform`).

Input windows (OTBTF's ``GenerateInputRequestedRegion``)
    The output pixels ``[a, a + t)`` cover reference positions ``[g + a·s, g + (a + t)·s)``
    (``g`` the output origin), i.e. ``t·s·k_i`` pixels of source ``i`` starting at
    ``⌊corner + ½⌋`` (ITK rounds the first pixel centre half up). That footprint is padded by
    ``pad_i = rf_i − (1 + ⌊(ef − 1)·s·k_i⌋)`` pixels, ``pad_i − ⌊pad_i/2⌋`` before and
    ``⌊pad_i/2⌋`` after (:func:`input_span`). A source can serve the model only if
    ``pad_i ≥ 0``, i.e. ``rf_i ≥ 1 + (ef − 1)·s·spacing_0/spacing_i`` (truncated to an
    integer, as OTBTF does, when the right side is not whole).
    For rf 64, ef 32, ``s = 1``: pad 32, the output tile ``[a, a + t)`` reads ``[a, a + t + 32)``.

Patch-based mode
    Output pixel ``j`` is computed from a patch of ``rf_i`` pixels of each source
    starting at ``⌊(g + (j + ½)·s)·k_i + c_i⌋ − ⌊rf_i/2⌋`` (:func:`patch_starts`), the
    patch centred on the output pixel (as OTBTF's ``SampleCenteredPatch``).

Tiles
    Output tiles start at multiples of the tile size (a multiple of ``ef``) from the
    output origin, so every tile sees its input at the same phase as one big tile would:
    stitching tiles gives the same pixels as serving the whole image at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from otbtf_qgis.core.io.windows import Window, round_up

Rational = int | Fraction


def shrunk_extent(size: int, receptive_field: int) -> tuple[int, int]:
    """Pixels ``[rf//2, size − rf + 1 + rf//2)``: where a receptive field fits entirely in the image.

    Corners of OTBTF's ``SmartShrink``: the first index moves by ``⌊rf/2⌋``, the size
    shrinks by ``rf − 1``. Empty (start ≥ end) when ``size < rf``.
    """
    start = receptive_field // 2
    return (start, size - receptive_field + 1 + start)


@dataclass(frozen=True)
class AxisGrid:
    """One source along one axis, relative to the reference grid (the first source).

    Attributes:
        size: Pixels of the source along the axis.
        scale: ``k``, source pixels per reference pixel (``spacing_0 / spacing_i``).
        offset: ``c``, the reference origin in source pixels.
    """

    size: int
    scale: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    def to_source(self, position: Rational) -> Fraction:
        """Source position of reference position ``u``: ``u·k + c``."""
        return Fraction(position) * self.scale + self.offset

    def to_reference(self, position: Rational) -> Fraction:
        """Reference position of source position ``p``: ``(p − c)/k``."""
        return (Fraction(position) - self.offset) / self.scale


def common_extent(grids: Sequence[AxisGrid], receptive_fields: Sequence[int]) -> tuple[Fraction, Fraction]:
    """Intersection ``[u0, u1)`` in reference pixels of every source's :func:`shrunk_extent`.

    Empty (``u0 ≥ u1``) when the sources do not overlap once shrunk.
    """
    starts, ends = [], []
    for grid, rf in zip(grids, receptive_fields, strict=True):
        first, last = shrunk_extent(grid.size, rf)
        starts.append(grid.to_reference(first))
        ends.append(grid.to_reference(last))
    return (max(starts), min(ends))


def output_axis(grids: Sequence[AxisGrid], receptive_fields: Sequence[int], expression_field: int,
                spacing_scale: Rational = 1) -> tuple[Fraction, int]:
    """Output origin (the corner of its first pixel, in reference pixels) and size along one axis.

    ``n = ⌊(u1 − u0)/s⌋ + ef − 1`` rounded down to a multiple of ``ef``, origin
    ``u0 + (1 − s)/2 − s·⌊ef/2⌋``, with ``[u0, u1)`` the :func:`common_extent`. The
    size is 0 when the sources do not overlap or the result is smaller than ``ef``.
    """
    start, end = common_extent(grids, receptive_fields)
    scale = Fraction(spacing_scale)
    if end <= start:
        return (start, 0)
    size = math.floor((end - start) / scale) + expression_field - 1
    size -= size % expression_field
    return (start + (1 - scale) / 2 - scale * (expression_field // 2), size)


def input_padding(receptive_field: int, expression_field: int, spacing_scale: Rational = 1,
                  scale: Rational = 1) -> int:
    """Pixels a source's window adds around an output footprint: ``rf − (1 + ⌊(ef − 1)·s·k⌋)``.

    Negative when the receptive field cannot cover the expression field (the source
    cannot serve this model with these settings).
    """
    return receptive_field - (1 + math.floor((expression_field - 1) * Fraction(spacing_scale) * Fraction(scale)))


def footprint_length(output_size: int, spacing_scale: Rational, scale: Rational) -> Fraction:
    """Source pixels covered by ``output_size`` output pixels: ``t·s·k``."""
    return output_size * Fraction(spacing_scale) * Fraction(scale)


def input_span(output_start: int, output_size: int, origin: Rational, spacing_scale: Rational, grid: AxisGrid,
               receptive_field: int, expression_field: int) -> tuple[int, int]:
    """``(start, size)`` of the source pixels the output pixels ``[a, a + t)`` are computed from.

    The footprint starts at ``⌊(g + a·s)·k + c + ½⌋`` (OTBTF rounds the first pixel
    centre), is ``t·s·k`` pixels long and is padded by :func:`input_padding` pixels,
    ``pad − ⌊pad/2⌋`` before and ``⌊pad/2⌋`` after.

    Raises:
        ValueError: when ``t·s·k`` is not a whole number of source pixels, or the padding
            is negative.
    """
    length = footprint_length(output_size, spacing_scale, grid.scale)
    if length.denominator != 1:
        raise ValueError(f"{output_size} output pixels cover {length} source pixels, not a whole number")
    pad = input_padding(receptive_field, expression_field, spacing_scale, grid.scale)
    if pad < 0:
        raise ValueError(f"receptive field {receptive_field} is smaller than the expression field needs")
    corner = grid.to_source(Fraction(origin) + output_start * Fraction(spacing_scale))
    first = math.floor(corner + Fraction(1, 2))
    return (first - (pad - pad // 2), int(length) + pad)


def patch_starts(output_start: int, output_size: int, origin: Rational, spacing_scale: Rational, grid: AxisGrid,
                 receptive_field: int) -> list[int]:
    """First source pixel of the patch of each output pixel ``j`` in ``[a, a + t)``.

    ``⌊(g + (j + ½)·s)·k + c⌋ − ⌊rf/2⌋``: the patch of ``rf`` pixels centred on the pixel
    that holds the output pixel's centre.
    """
    scale = Fraction(spacing_scale)
    # The centre of pixel j is first + j·step, both exact fractions: integer arithmetic on a common denominator.
    first = grid.to_source(Fraction(origin) + Fraction(1, 2) * scale)
    step = scale * grid.scale
    denominator = math.lcm(first.denominator, step.denominator)
    start = first.numerator * (denominator // first.denominator)
    increment = step.numerator * (denominator // step.denominator)
    half = receptive_field // 2
    return [(start + j * increment) // denominator - half for j in range(output_start, output_start + output_size)]


def auto_tile_size(output_size: int, expression_field: int, inputs: Sequence[tuple[Rational, int]],
                   max_input_size: int, alignment: int = 1) -> int:
    """Automatic output tile size along one axis.

    The largest tile whose input stays within ``max_input_size`` pixels for every source
    (``inputs`` holds each source's ``(s·k_i, pad_i)``; its window is ``t·s·k_i + pad_i``),
    a multiple of ``ef`` and, when that is possible, of ``alignment`` (the output block
    size, so that each tile writes whole blocks), then balanced: with ``n`` tiles needed
    across the output, the tile is the smallest such multiple ``≥ ⌈size / n⌉``. An
    output that fits in one tile gets one tile of ``size`` rounded up to ``ef``.
    Never smaller than ``ef``.
    """
    limit = min(math.floor((max_input_size - pad) / Fraction(scale)) for scale, pad in inputs)
    single = round_up(max(output_size, 1), expression_field)
    if single <= max(limit, expression_field):
        return single
    step = math.lcm(expression_field, alignment)
    if step > limit:
        step = expression_field
    largest = max(step, limit - limit % step)
    count = -(-output_size // largest)
    return round_up(-(-output_size // count), step)


def rational(value: float, max_denominator: int = 64, tolerance: float = 1e-6) -> Fraction | None:
    """``value`` as a fraction with a small denominator, or ``None`` if there is none within ``tolerance``.

    Pixel size ratios (10 m / 20 m = 1/2) and spacing scales must be such simple ratios
    for tiles to map to whole source pixels.
    """
    fraction = Fraction(value).limit_denominator(max_denominator)
    if abs(float(fraction) - value) > tolerance * max(1.0, abs(value)):
        return None
    return fraction


def snap(value: float, resolution: int = 10**6) -> Fraction:
    """``value`` rounded to ``1/resolution``: positions computed in floating point, made exact."""
    return Fraction(round(value * resolution), resolution)


def axis_grids(reference: Sequence[float], geotransform: Sequence[float], width: int,
               height: int) -> tuple[AxisGrid, AxisGrid]:
    """The x and y :class:`AxisGrid` of a raster relative to the reference geotransform.

    ``k = dx_0/dx_i`` (resp. ``dy``), ``c = (x0_0 − x0_i)/dx_i`` (resp. ``y``), both for
    north-up geotransforms.

    Raises:
        ValueError: when a pixel size ratio is not a simple fraction.
    """
    x0_ref, dx_ref, _, y0_ref, _, dy_ref = (float(v) for v in reference)
    x0, dx, _, y0, _, dy = (float(v) for v in geotransform)
    scale_x, scale_y = rational(dx_ref / dx), rational(dy_ref / dy)
    if scale_x is None or scale_y is None:
        raise ValueError(f"pixel sizes {dx:g} x {abs(dy):g} and {dx_ref:g} x {abs(dy_ref):g} are not in a simple ratio")
    return (AxisGrid(width, scale_x, snap((x0_ref - x0) / dx)), AxisGrid(height, scale_y, snap((y0_ref - y0) / dy)))


@dataclass(frozen=True)
class SourceGeometry:
    """How one source maps onto the output grid.

    Attributes:
        x: The source's columns relative to the reference grid.
        y: The source's rows relative to the reference grid.
        receptive_field: ``(x, y)``.
    """

    x: AxisGrid
    y: AxisGrid
    receptive_field: tuple[int, int]


@dataclass(frozen=True)
class ServingGeometry:
    """The output grid and the input windows of every source.

    Attributes:
        sources: One :class:`SourceGeometry` per source.
        expression_field: ``(x, y)``.
        spacing_scale: Output pixel size in reference pixels.
        origin: Output origin ``(x, y)`` in reference pixels.
        width: Output columns.
        height: Output rows.
    """

    sources: tuple[SourceGeometry, ...]
    expression_field: tuple[int, int]
    spacing_scale: Fraction
    origin: tuple[Fraction, Fraction]
    width: int
    height: int

    @classmethod
    def build(cls, sources: Sequence[SourceGeometry], expression_field: tuple[int, int],
              spacing_scale: Rational = 1) -> ServingGeometry:
        """Compute the output grid of ``sources`` (see :func:`output_axis`)."""
        scale = Fraction(spacing_scale)
        origin_x, width = output_axis([s.x for s in sources], [s.receptive_field[0] for s in sources],
                                      expression_field[0], scale)
        origin_y, height = output_axis([s.y for s in sources], [s.receptive_field[1] for s in sources],
                                       expression_field[1], scale)
        return cls(tuple(sources), expression_field, scale, (origin_x, origin_y), width, height)

    @property
    def window(self) -> Window:
        """The whole output grid."""
        return Window(0, 0, self.width, self.height)

    def padding(self, index: int) -> tuple[int, int]:
        """:func:`input_padding` of source ``index`` along x and y."""
        source = self.sources[index]
        return (input_padding(source.receptive_field[0], self.expression_field[0], self.spacing_scale, source.x.scale),
                input_padding(source.receptive_field[1], self.expression_field[1], self.spacing_scale, source.y.scale))

    def input_window(self, index: int, output: Window) -> Window:
        """The window of source ``index`` that the output window is computed from (:func:`input_span`)."""
        source = self.sources[index]
        col, width = input_span(output.col_off, output.width, self.origin[0], self.spacing_scale, source.x,
                                source.receptive_field[0], self.expression_field[0])
        row, height = input_span(output.row_off, output.height, self.origin[1], self.spacing_scale, source.y,
                                 source.receptive_field[1], self.expression_field[1])
        return Window(col, row, width, height)

    def patch_starts(self, index: int, output: Window) -> tuple[list[int], list[int]]:
        """Patch start columns and rows of source ``index`` for the output window (:func:`patch_starts`)."""
        source = self.sources[index]
        cols = patch_starts(output.col_off, output.width, self.origin[0], self.spacing_scale, source.x,
                            source.receptive_field[0])
        rows = patch_starts(output.row_off, output.height, self.origin[1], self.spacing_scale, source.y,
                            source.receptive_field[1])
        return (cols, rows)

    def geotransform(self, reference: Sequence[float],
                     footprint: bool = True) -> tuple[float, float, float, float, float, float]:
        """The output geotransform from the reference (first source) geotransform.

        Args:
            reference: Geotransform of the first source.
            footprint: Place the origin at the first pixel the output is computed from,
                ``⌊g + ½⌋`` (fully-convolutional mode); ``False`` keeps OTBTF's ``g``
                (patch-based mode, patches centred on the output pixels).
        """
        x0, dx, _, y0, _, dy = (float(v) for v in reference)
        scale = float(self.spacing_scale)
        col, row = self.origin
        if footprint:
            col, row = Fraction(math.floor(col + Fraction(1, 2))), Fraction(math.floor(row + Fraction(1, 2)))
        return (x0 + float(col) * dx, dx * scale, 0.0, y0 + float(row) * dy, 0.0, dy * scale)
