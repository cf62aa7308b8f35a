from __future__ import annotations

import itertools

import numpy as np
import pytest

from otbtf_qgis.core.io.windows import Window, clip, intersection, padding, round_up, tile_grid


@pytest.mark.parametrize("width,height,tw,th", list(itertools.product([1, 5, 8, 13], [1, 4, 7], [1, 3, 8], [2, 5])))
def test_tile_grid_covers_extent_exactly_once(width, height, tw, th):
    cover = np.zeros((height, width), int)
    tiles = list(tile_grid(width, height, tw, th))
    for tile in tiles:
        assert 0 < tile.width <= tw and 0 < tile.height <= th
        cover[tile.slices()] += 1
    assert (cover == 1).all()
    assert len(tiles) == -(-width // tw) * -(-height // th)
    assert tiles == sorted(tiles, key=lambda t: (t.row_off, t.col_off))


def test_tile_grid_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        list(tile_grid(10, 10, 0, 4))


def brute_intersection(a: Window, b: Window) -> set[tuple[int, int]]:
    cells_a = {(r, c) for r in range(a.row_off, a.row_end) for c in range(a.col_off, a.col_end)}
    cells_b = {(r, c) for r in range(b.row_off, b.row_end) for c in range(b.col_off, b.col_end)}
    return cells_a & cells_b


@pytest.mark.parametrize("a", [Window(c, r, w, h) for c in (-3, 0, 2) for r in (-1, 1) for w in (1, 4) for h in (2, 5)])
def test_intersection_matches_brute_force(a):
    for b in (Window(0, 0, 5, 5), Window(3, 2, 4, 1), Window(-2, -2, 2, 2), Window(10, 10, 1, 1)):
        got = intersection(a, b)
        expected = brute_intersection(a, b)
        if not expected:
            assert got is None
        else:
            assert brute_intersection(got, got) == expected


@pytest.mark.parametrize("col,row,w,h", [(-2, -1, 5, 4), (3, 3, 4, 4), (0, 0, 6, 6), (-10, 0, 3, 3), (1, 1, 2, 2)])
def test_padding_plus_clip_rebuilds_window(col, row, w, h):
    window = Window(col, row, w, h)
    width, height = 6, 5
    left, top, right, bottom = padding(window, width, height)
    inside = clip(window, width, height)
    if inside is None:
        assert left + right >= w or top + bottom >= h
        return
    assert inside.width + left + right == w
    assert inside.height + top + bottom == h
    assert inside.col_off == col + left and inside.row_off == row + top


def test_window_helpers():
    w = Window(2, 3, 4, 5)
    assert (w.col_end, w.row_end, w.shape) == (6, 8, (5, 4))
    assert w.translate(-2, 1) == Window(0, 4, 4, 5)
    assert w.relative_to(Window(1, 1, 10, 10)) == Window(1, 2, 4, 5)
    assert [round_up(v, 8) for v in (1, 8, 9, 16)] == [8, 8, 16, 16]
