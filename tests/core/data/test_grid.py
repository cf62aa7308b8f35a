from __future__ import annotations

import numpy as np
import pytest

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.data.grid import centre_pixel, geo_to_pixel, grid_starts, patch_centre, patch_start, pixel_to_geo


def test_grid_starts_keep_patches_that_fit():
    assert list(grid_starts(10, 4, 3)) == [0, 3, 6]
    assert list(grid_starts(10, 4, 3, offset=2)) == [2, 5]
    assert list(grid_starts(10, 10, 1)) == [0]
    assert list(grid_starts(9, 10, 1)) == []
    assert list(grid_starts(10, 4, 4, offset=7)) == []


def test_a_centred_patch_is_found_again_exactly():
    """patch_start(centre_pixel(s + p/2), p) == s for every start and size, odd and even."""
    for size in range(1, 12):
        for start in range(-3, 30):
            centre = patch_centre(start, size)
            assert patch_start(centre_pixel(centre), size) == start
            # the same through a geotransform with float error (x0 + u*dx)
            x, y = pixel_to_geo((500000.1, 10.0, 0.0, 4500000.3, 0.0, -10.0), centre, centre)
            u, v = geo_to_pixel((500000.1, 10.0, 0.0, 4500000.3, 0.0, -10.0), x, y)
            assert patch_start(centre_pixel(u), size) == start
            assert patch_start(centre_pixel(v), size) == start


def test_odd_centres_are_pixel_centres_even_centres_are_corners():
    assert patch_centre(10, 5) == 12.5 and centre_pixel(12.5) == 12
    assert patch_centre(10, 4) == 12.0 and centre_pixel(12.0) == 12
    assert centre_pixel(11.9999999) == 12  # float error on a corner goes to the lower-right pixel
    assert centre_pixel(11.99) == 11
    np.testing.assert_array_equal(centre_pixel(np.array([0.5, 1.0, -0.5])), [0, 1, -1])


def test_geo_pixel_roundtrip_with_rotation():
    geotransform = (100.0, 2.0, 0.5, 200.0, 0.25, -3.0)
    u, v = np.array([0.0, 3.5, 10.0]), np.array([0.0, 7.25, -2.0])
    x, y = pixel_to_geo(geotransform, u, v)
    back_u, back_v = geo_to_pixel(geotransform, x, y)
    np.testing.assert_allclose(back_u, u, atol=1e-9)
    np.testing.assert_allclose(back_v, v, atol=1e-9)
