"""Serving geometry against OTBTF's rules, exhaustively on small cases.

``otbtf_*`` below re-enact TensorflowModelServe's C++ step by step in physical
coordinates (floating point, pixel centres, ITK's rounding), independently of the
integer formulas under test.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from otbtf_qgis.core.io.windows import Window
from otbtf_qgis.core.serving.geometry import (
    AxisGrid,
    ServingGeometry,
    SourceGeometry,
    auto_tile_size,
    axis_grids,
    common_extent,
    input_padding,
    input_span,
    output_axis,
    patch_starts,
    rational,
    shrunk_extent,
)

# ------------------------------------------------------------------ OTBTF, re-enacted


def itk_round(value: float) -> int:
    """ITK's TransformPhysicalPointToIndex rounding (RoundHalfIntegerUp)."""
    return math.floor(value + 0.5)


def otbtf_output_grid(sources, expression_field, scale):
    """GenerateOutputInformation: (centre of output pixel 0, size, output spacing).

    ``sources`` holds ``(x0, spacing, size, rf)`` per source.
    """
    extent_inf, extent_sup = -math.inf, math.inf
    for x0, spacing, size, rf in sources:
        if size < rf:  # ITK's region would be empty (OTBTF fails); no output
            return 0.0, 0, 0.0
        first = rf // 2
        last = first + size - (rf - 1) - 1
        centre_first, centre_last = x0 + (first + 0.5) * spacing, x0 + (last + 0.5) * spacing
        extent_inf = max(extent_inf, min(centre_first, centre_last) - 0.5 * spacing)
        extent_sup = min(extent_sup, max(centre_first, centre_last) + 0.5 * spacing)
    reference_spacing = sources[0][1]
    out_spacing = reference_spacing * scale
    origin = extent_inf + 0.5 * reference_spacing
    size = math.floor((extent_sup - extent_inf) / out_spacing)
    origin -= out_spacing * math.floor(0.5 * expression_field)
    size += expression_field - 1
    if expression_field > size:
        return origin, 0, out_spacing
    size -= size % expression_field
    return origin, size, out_spacing


def otbtf_input_region(source, origin, out_spacing, start, count, expression_field, scale, reference_spacing):
    """OutputRegionToInputRegion + the SmartPad of GenerateInputRequestedRegion (before cropping to the image)."""
    x0, spacing, _, rf = source
    point_start = origin + start * out_spacing
    point_end = origin + (start + count - 1) * out_spacing
    border = 0.5 * (spacing - out_spacing)
    if point_start < point_end:
        point_start, point_end = point_start + border, point_end - border
    else:
        point_start, point_end = point_start - border, point_end + border
    first_centre = x0 + 0.5 * spacing
    index_start = itk_round((point_start - first_centre) / spacing)
    index_end = itk_round((point_end - first_centre) / spacing)
    index = min(index_start, index_end)
    size = max(index_start, index_end) - index + 1
    pad = rf - int(1 + (expression_field - 1) * scale * reference_spacing / spacing)
    index -= pad - int(0.5 * pad)
    return index, size + pad


def axis_of(source, reference):
    x0, spacing, size, _ = source
    return AxisGrid(size, Fraction(reference[1]) / Fraction(spacing), (Fraction(reference[0]) - Fraction(x0))
                    / Fraction(spacing))


# ------------------------------------------------------------------------- formulas


def test_shrunk_extent():
    assert shrunk_extent(1000, 64) == (32, 969)
    assert shrunk_extent(10, 1) == (0, 10)
    assert shrunk_extent(10, 3) == (1, 9)
    start, end = shrunk_extent(5, 7)
    assert end <= start


def test_the_design_example():
    origin, size = output_axis([AxisGrid(1000)], [64], 32)
    assert (origin, size) == (16, 960)
    assert input_span(0, 32, origin, 1, AxisGrid(1000), 64, 32) == (0, 64)
    assert input_span(928, 32, origin, 1, AxisGrid(1000), 64, 32) == (928, 64)
    geometry = ServingGeometry.build([SourceGeometry(AxisGrid(1000), AxisGrid(700), (64, 64))], (32, 32))
    assert (geometry.width, geometry.height) == (960, 640)
    assert geometry.geotransform((500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0)) == (
        500160.0, 10.0, 0.0, 4499840.0, 0.0, -10.0)
    assert geometry.input_window(0, Window(512, 0, 448, 640)) == Window(512, 0, 480, 672)


# ------------------------------------------------------------- exhaustive, one source


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_output_grid_and_windows_match_otbtf_single_source(scale):
    checked = 0
    for size in range(1, 41):
        for rf in range(1, 12):
            for ef in range(1, 12):
                if input_padding(rf, ef, scale) < 0:
                    continue
                source = (100.0, 1.0, size, rf)
                centre, otbtf_size, out_spacing = otbtf_output_grid([source], ef, scale)
                grid = axis_of(source, source)
                origin, n = output_axis([grid], [rf], ef, scale)
                assert n == otbtf_size, (size, rf, ef, scale)
                if n == 0:
                    continue
                assert 100.0 + float(origin) == centre - 0.5 * out_spacing
                for start in range(0, n, ef):
                    for count in range(ef, n - start + 1, ef):
                        expected = otbtf_input_region(source, centre, out_spacing, start, count, ef, scale, 1.0)
                        assert input_span(start, count, origin, scale, grid, rf, ef) == expected, (
                            size, rf, ef, scale, start, count)
                        checked += 1
    assert checked > 1000


def test_windows_of_the_whole_grid_stay_inside_the_image():
    """For cropped outputs (ef = rf - 2C) the input never leaves the image (odd margins may: as in OTBTF)."""
    for size in range(1, 41):
        for rf in range(1, 12):
            for ef in range(rf % 2 or 2, rf + 1, 2):
                grid = AxisGrid(size)
                origin, n = output_axis([grid], [rf], ef)
                if n == 0:
                    assert size - rf + 1 < 1 or size - rf + ef < ef
                    continue
                start, length = input_span(0, n, origin, 1, grid, rf, ef)
                assert 0 <= start and start + length <= size, (size, rf, ef)
                # a tile is the matching part of the whole grid's window
                for a in range(0, n, ef):
                    tile_start, tile_length = input_span(a, ef, origin, 1, grid, rf, ef)
                    assert tile_start == start + a and tile_length == ef + rf - ef


def test_patches_are_the_windows_of_single_pixels():
    for rf in range(1, 12):
        for size in range(rf, rf + 20):
            grid = AxisGrid(size)
            origin, n = output_axis([grid], [rf], 1)
            starts = patch_starts(0, n, origin, 1, grid, rf)
            assert starts == [input_span(j, 1, origin, 1, grid, rf, 1)[0] for j in range(n)]
            assert starts == list(range(n)) and starts[-1] + rf == size


# ---------------------------------------------------- exhaustive, two resolutions


@pytest.mark.parametrize("scale", [1, 2])
def test_two_resolutions_match_otbtf(scale):
    checked = 0
    for offset in (0.0, 2.0, -4.0, 6.0):
        for size in range(8, 30, 3):
            for rf0 in range(1, 14):
                for rf1 in range(1, 9):
                    for ef in range(1, 9):
                        fine = (100.0, 1.0, size, rf0)
                        coarse = (100.0 + offset, 2.0, size // 2, rf1)
                        if input_padding(rf0, ef, scale) < 0 or input_padding(rf1, ef, scale, Fraction(1, 2)) < 0:
                            continue
                        centre, otbtf_size, out_spacing = otbtf_output_grid([fine, coarse], ef, scale)
                        grids = [axis_of(fine, fine), axis_of(coarse, fine)]
                        origin, n = output_axis(grids, [rf0, rf1], ef, scale)
                        assert n == otbtf_size
                        if n == 0:
                            continue
                        for start in range(0, n, ef):
                            count = min(ef * 2, n - start)
                            if count % ef or (count * scale) % 2:
                                continue
                            for source, grid in ((fine, grids[0]), (coarse, grids[1])):
                                expected = otbtf_input_region(source, centre, out_spacing, start, count, ef, scale,
                                                              1.0)
                                assert input_span(start, count, origin, scale, grid, source[3], ef) == expected
                                checked += 1
    assert checked > 500


def test_receptive_field_check_formula():
    for rf in range(1, 20):
        for ef in range(1, 20):
            for scale in (Fraction(1), Fraction(2), Fraction(1, 2), Fraction(3, 2)):
                for k in (Fraction(1), Fraction(1, 2), Fraction(2)):
                    need = 1 + (ef - 1) * scale * k
                    # OTBTF truncates the need to an integer (the same when it is whole)
                    fits = rf >= math.floor(need)
                    if need.denominator == 1:
                        assert fits == (rf >= need)
                    assert (input_padding(rf, ef, scale, k) >= 0) == fits, (rf, ef, scale, k)


def test_common_extent_of_disjoint_sources_is_empty():
    start, end = common_extent([AxisGrid(10), AxisGrid(10, Fraction(1), Fraction(-50))], [3, 3])
    assert end <= start
    assert output_axis([AxisGrid(10), AxisGrid(10, Fraction(1), Fraction(-50))], [3, 3], 1)[1] == 0


def test_input_span_refuses_fractional_footprints():
    with pytest.raises(ValueError, match="not a whole number"):
        input_span(0, 3, 0, 1, AxisGrid(10, Fraction(1, 2)), 4, 3)
    with pytest.raises(ValueError, match="smaller than the expression field"):
        input_span(0, 4, 0, 1, AxisGrid(10), 3, 4)


# ------------------------------------------------------------ grids from geotransforms


def test_axis_grids_of_sentinel2_like_sources():
    ten = (600000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
    twenty = (599980.0, 20.0, 0.0, 5000040.0, 0.0, -20.0)
    x, y = axis_grids(ten, twenty, 50, 40)
    assert (x.size, x.scale, x.offset) == (50, Fraction(1, 2), Fraction(1))
    assert (y.size, y.scale, y.offset) == (40, Fraction(1, 2), Fraction(2))
    assert x.to_source(0) == 1 and x.to_reference(1) == 0
    with pytest.raises(ValueError, match="simple ratio"):
        axis_grids(ten, (0.0, 10.0 * math.pi, 0.0, 0.0, 0.0, -10.0), 5, 5)


def test_rational():
    assert rational(0.5) == Fraction(1, 2)
    assert rational(10 / 30) == Fraction(1, 3)
    assert rational(2.0) == 2
    assert rational(math.pi) is None


def test_spacing_scale_two_geometry():
    source = SourceGeometry(AxisGrid(100), AxisGrid(100), (10, 10))
    geometry = ServingGeometry.build([source], (4, 4), 2)
    # extent [5, 96) -> 91 reference pixels -> 45 + 3 = 48 output pixels of 2; the first is centred on
    # 5.5 - 2*2 = 1.5, its corner is 0.5
    assert (geometry.width, geometry.origin[0]) == (48, Fraction(1, 2))
    # OTBTF declares 0.5 but reads from pixel 1: fully-convolutional outputs are placed where they are read
    assert geometry.geotransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0)) == (1.0, 2.0, 0.0, -1.0, 0.0, -2.0)
    assert geometry.geotransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), footprint=False) == (
        0.5, 2.0, 0.0, -0.5, 0.0, -2.0)
    # 4 output pixels from 0.5 + 8: first pixel 9 (centre rounded half up), 8 pixels padded by
    # 10 - (1 + 3*2) = 3: 2 before, 1 after
    assert geometry.input_window(0, Window(4, 0, 4, 4)) == Window(9 - 2, 1 - 2, 11, 11)


# ------------------------------------------------------------------------ tile sizes


def test_auto_tile_size():
    # FCNN: ef 32, pad 32, blocks of 256, at most 1088 input pixels
    assert auto_tile_size(4064, 32, [(1, 32)], 1088, 256) == 1024
    assert auto_tile_size(16352, 32, [(1, 32)], 1088, 256) == 1024
    assert auto_tile_size(960, 32, [(1, 32)], 1088, 256) == 960  # one tile
    assert auto_tile_size(1100, 32, [(1, 32)], 1088, 256) == 768  # two balanced tiles
    assert auto_tile_size(100, 8, [(1, 6)], 1088, 256) == 104
    assert auto_tile_size(5000, 33, [(1, 31)], 1088, 256) == 33 * 31  # 5 tiles; ef does not divide blocks
    assert auto_tile_size(5000, 8, [(1, 6), (Fraction(1, 2), 2)], 200, 1) == 192
    assert auto_tile_size(5000, 64, [(1, 2000)], 1088, 256) == 64  # never below ef


@pytest.mark.parametrize("size", [1, 7, 33, 100, 257, 1000, 1089, 4096])
@pytest.mark.parametrize("ef", [1, 8, 32])
def test_auto_tile_size_properties(size, ef):
    tile = auto_tile_size(size, ef, [(1, 32)], 512, 256)
    assert tile % ef == 0 and tile >= ef
    assert tile + 32 <= 512 or tile == ef or tile == -(-size // ef) * ef
    count = -(-size // tile)
    assert count == 1 or tile * (count - 1) < size
