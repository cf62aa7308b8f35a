"""Window geometry in pixel space: small pure integer functions.

A :class:`Window` is a rectangle of pixels ``[col_off, col_off + width) x
[row_off, row_off + height)`` in the pixel grid of an image; offsets may be negative
or run past the image (a window that needs padding). Conventions:

- ``tile_grid(W, H, tw, th)`` covers ``[0, W) x [0, H)`` row by row with tiles of
  ``tw x th``; the last column/row of tiles is clipped to the extent (never empty).
- ``intersection(a, b)`` is the common part of two windows, or ``None``.
- ``clip(window, W, H)`` is ``intersection(window, Window(0, 0, W, H))``.
- ``padding(window, W, H)`` is how many pixels of ``window`` lie outside the image on
  each side: ``(left, top, right, bottom)``, each ``>= 0``. Reading the clipped window
  and padding by these amounts gives exactly the requested window.
- ``from_bounds(geotransform, bounds)`` is the smallest window of whole pixels of a
  north-up grid that covers ``bounds`` (snapped outward, same pixel phase as the grid).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Window:
    """A rectangle of pixels: column/row offset of its top-left pixel and its size."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def col_end(self) -> int:
        """One past the last column: ``col_off + width``."""
        return self.col_off + self.width

    @property
    def row_end(self) -> int:
        """One past the last row: ``row_off + height``."""
        return self.row_off + self.height

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the numpy shape of the window's pixels."""
        return (self.height, self.width)

    def translate(self, d_col: int, d_row: int) -> Window:
        """Return the window moved by ``(d_col, d_row)`` pixels."""
        return Window(self.col_off + d_col, self.row_off + d_row, self.width, self.height)

    def relative_to(self, outer: Window) -> Window:
        """Express this window in the pixel grid of ``outer`` (whose top-left becomes 0, 0)."""
        return Window(self.col_off - outer.col_off, self.row_off - outer.row_off, self.width, self.height)

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices to index a numpy array whose origin is the grid origin."""
        return (slice(self.row_off, self.row_end), slice(self.col_off, self.col_end))


def intersection(a: Window, b: Window) -> Window | None:
    """Return the common part of ``a`` and ``b``, or ``None`` if they do not overlap."""
    col0 = max(a.col_off, b.col_off)
    row0 = max(a.row_off, b.row_off)
    col1 = min(a.col_end, b.col_end)
    row1 = min(a.row_end, b.row_end)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def clip(window: Window, width: int, height: int) -> Window | None:
    """Return the part of ``window`` inside an image of ``width x height``, or ``None``."""
    return intersection(window, Window(0, 0, width, height))


def padding(window: Window, width: int, height: int) -> tuple[int, int, int, int]:
    """Return ``(left, top, right, bottom)``: pixels of ``window`` outside a ``width x height`` image.

    Each value is clamped to ``[0, window size]`` so that a window entirely outside
    the image pads to its full size.
    """
    left = min(max(0, -window.col_off), window.width)
    top = min(max(0, -window.row_off), window.height)
    right = min(max(0, window.col_end - width), window.width)
    bottom = min(max(0, window.row_end - height), window.height)
    return (left, top, right, bottom)


def tile_grid(width: int, height: int, tile_width: int, tile_height: int) -> Iterator[Window]:
    """Yield tiles covering ``[0, width) x [0, height)`` row by row.

    Tiles are ``tile_width x tile_height``; those of the last column/row are clipped to
    the extent. ``ceil(width / tile_width) * ceil(height / tile_height)`` tiles in all.

    Raises:
        ValueError: if a size is not positive.
    """
    if width <= 0 or height <= 0 or tile_width <= 0 or tile_height <= 0:
        raise ValueError(f"sizes must be positive, got extent {width}x{height}, tile {tile_width}x{tile_height}")
    for row in range(0, height, tile_height):
        for col in range(0, width, tile_width):
            yield Window(col, row, min(tile_width, width - col), min(tile_height, height - row))


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ``>= value`` (``multiple > 0``)."""
    return -(-value // multiple) * multiple


def from_bounds(geotransform: Sequence[float], bounds: Sequence[float], tolerance: float = 1e-6) -> Window:
    """The smallest window of whole pixels of a north-up grid that covers ``bounds``.

    ``bounds`` is ``(xmin, ymin, xmax, ymax)``; with ``geotransform`` ``(x0, dx, 0, y0, 0, dy)``
    (``dy < 0``) the window spans columns ``floor((xmin − x0)/dx)`` to
    ``ceil((xmax − x0)/dx)`` and rows ``floor((y0 − ymax)/−dy)`` to
    ``ceil((y0 − ymin)/−dy)``. A bound within ``tolerance`` pixels of a pixel edge counts
    as on it, so that an extent taken from the grid itself does not gain a pixel from
    rounding. The window may lie partly or wholly outside the grid (see :func:`clip`).
    """
    x0, dx, _, y0, _, dy = geotransform[:6]
    xmin, ymin, xmax, ymax = bounds

    def down(value: float) -> int:
        return math.floor(value + tolerance)

    def up(value: float) -> int:
        return math.ceil(value - tolerance)

    col_start, col_end = down((xmin - x0) / dx), up((xmax - x0) / dx)
    row_start, row_end = down((ymax - y0) / dy), up((ymin - y0) / dy)
    return Window(col_start, row_start, max(0, col_end - col_start), max(0, row_end - row_start))
