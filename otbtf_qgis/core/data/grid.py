"""Patch geometry in pixel space: small pure functions shared by selection and extraction.

Pixel coordinates: ``u`` runs along columns, ``v`` along rows; pixel ``(c, r)`` covers
``[c, c + 1) x [r, r + 1)``, so its centre is ``(c + 0.5, r + 0.5)``. Sizes are ``(x, y)``
= (columns, rows), as OTBTF's ``patchsizex/patchsizey``.

- A patch of size ``p`` starting at pixel ``s`` covers pixels ``[s, s + p)``; its centre is
  ``s + p / 2``: a pixel centre for odd ``p``, a pixel corner for even ``p``.
- The pixel holding a coordinate ``u`` is ``floor(u + EPSILON)`` (a point on a corner
  belongs to the pixel to its lower right, as ITK's rounding in OTBTF does; the epsilon
  absorbs the floating-point error of ``x0 + u * dx``).
- The patch of size ``p`` around a point in pixel ``c`` starts at ``c - p // 2`` (OTBTF's
  code). So a patch centred by :func:`patch_centre` is found again exactly:
  ``patch_start(centre_pixel(s + p / 2), p) == s`` for every ``s`` and ``p``.
- Grid starts along an axis of ``length`` pixels: ``offset + k * step`` for ``k >= 0``
  while the patch fits, i.e. ``start + p <= length``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


#: Tolerance, in pixels, when deciding which pixel a coordinate falls in.
EPSILON = 1e-6

def grid_starts(length: int, patch: int, step: int, offset: int = 0) -> range:
    """Starts ``offset + k * step`` of the patches of size ``patch`` that fit in ``[0, length)``.

    Empty when even the first patch does not fit.
    """
    if patch < 1 or step < 1 or offset < 0:
        raise ValueError(f"patch and step must be positive and offset >= 0, got {patch}, {step}, {offset}")
    last = length - patch
    if last < offset:
        return range(0)
    return range(offset, last + 1, step)


def patch_centre(start: Any, patch: int) -> Any:
    """Pixel coordinate of the centre of a patch starting at ``start``: ``start + patch / 2``."""
    return start + patch / 2


def centre_pixel(coordinate: Any) -> Any:
    """The pixel holding a pixel coordinate: ``floor(coordinate + EPSILON)`` (scalars or arrays, as int64)."""
    result = np.floor(np.asarray(coordinate, dtype=np.float64) + EPSILON).astype(np.int64)
    return int(result) if result.ndim == 0 else result


def patch_start(pixel: Any, patch: int) -> Any:
    """First pixel of the patch of size ``patch`` around ``pixel``: ``pixel - patch // 2``."""
    return pixel - patch // 2


def pixel_to_geo(geotransform: Any, u: Any, v: Any) -> tuple[Any, Any]:
    """Map pixel coordinates to georeferenced ones: ``x = x0 + u*dx + v*rx``, ``y = y0 + u*ry + v*dy``."""
    x0, dx, rx, y0, ry, dy = (float(value) for value in geotransform)
    return x0 + u * dx + v * rx, y0 + u * ry + v * dy


def geo_to_pixel(geotransform: Any, x: Any, y: Any) -> tuple[Any, Any]:
    """Inverse of :func:`pixel_to_geo` (the geotransform must be invertible).

    Raises:
        ValueError: the geotransform is degenerate (zero determinant).
    """
    x0, dx, rx, y0, ry, dy = (float(value) for value in geotransform)
    determinant = dx * dy - rx * ry
    if determinant == 0:
        raise ValueError(f"degenerate geotransform {tuple(geotransform)}")
    ex, ey = x - x0, y - y0
    return (dy * ex - rx * ey) / determinant, (dx * ey - ry * ex) / determinant
