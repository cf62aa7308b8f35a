"""OTB interop (``make setup-otb``): pyotb on Debian's OTB with the Python API we build.

Runs OTB applications for real on small synthetic rasters and checks pixels and
georeferencing with GDAL, independently of OTB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from osgeo import gdal, osr

from tests.core.conftest import UTM31, encoded_values

pytestmark = pytest.mark.otb

# Non-square pixels and an origin off any round grid: a georeferencing slip shows.
GEOTRANSFORM = (345678.5, 20.0, 0.0, 5123456.0, 0.0, -30.0)


def read(path: Path) -> tuple[np.ndarray, gdal.Dataset]:
    dataset = gdal.Open(str(path))
    array = np.stack([dataset.GetRasterBand(b + 1).ReadAsArray() for b in range(dataset.RasterCount)], axis=-1)
    return array, dataset


def same_crs(dataset: gdal.Dataset, wkt: str) -> bool:
    expected = osr.SpatialReference()
    expected.ImportFromWkt(wkt)
    return bool(dataset.GetSpatialRef().IsSame(expected))


def test_bandmath_writes_exact_pixels_and_georeferencing(pyotb: ModuleType, raster_factory, tmp_path: Path):
    values = encoded_values(6, 9, 2, "uint16")
    source = raster_factory(values, geotransform=GEOTRANSFORM)
    out = tmp_path / "out.tif"

    pyotb.BandMath({"il": [str(source)], "exp": "im1b1*2 + im1b2"}).write(str(out))

    array, dataset = read(out)
    assert array.shape == (6, 9, 1)
    assert gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType) == "Float32"
    np.testing.assert_array_equal(array[:, :, 0], values[:, :, 0].astype("float32") * 2 + values[:, :, 1])
    assert dataset.GetGeoTransform() == pytest.approx(GEOTRANSFORM)
    assert same_crs(dataset, UTM31)


def test_bandmath_honours_the_output_pixel_type(pyotb: ModuleType, raster_factory, tmp_path: Path):
    values = encoded_values(4, 5, 1, "uint16")
    source = raster_factory(values)
    out = tmp_path / "out.tif"

    pyotb.BandMath({"il": [str(source)], "exp": "im1b1 + 7"}).write(str(out), pixel_type="uint16")

    array, dataset = read(out)
    assert gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType) == "UInt16"
    np.testing.assert_array_equal(array, values + 7)


def test_in_memory_pipeline_keeps_georeferencing(pyotb: ModuleType, raster_factory, tmp_path: Path):
    values = encoded_values(6, 9, 1, "float32")
    source = raster_factory(values, geotransform=GEOTRANSFORM)
    doubled = pyotb.BandMath({"il": [str(source)], "exp": "im1b1*2"})
    # Chained without an intermediate file: columns 2..4, rows 1..2.
    window = pyotb.ExtractROI({"in": doubled, "mode": "standard", "startx": 2, "starty": 1, "sizex": 3, "sizey": 2})

    np.testing.assert_array_equal(window.to_numpy(), values[1:3, 2:5] * 2)
    out = tmp_path / "window.tif"
    window.write(str(out))
    array, dataset = read(out)
    np.testing.assert_array_equal(array, values[1:3, 2:5] * 2)
    x0, dx, _, y0, _, dy = GEOTRANSFORM
    assert dataset.GetGeoTransform() == pytest.approx((x0 + 2 * dx, dx, 0.0, y0 + 1 * dy, 0.0, dy))
    assert same_crs(dataset, UTM31)


def test_otb_python_api_needs_no_environment_variable():
    # `make setup-otb` promises that OTB works in .venv with nothing set: a .pth file puts
    # the API on the path and the API knows Debian's application folder.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OTB_", "PYTHONPATH", "LD_LIBRARY_PATH"))}
    code = ("import otbApplication, pyotb; "
            "apps = otbApplication.Registry.GetAvailableApplications(); "
            "print('BandMath' in apps, 'Superimpose' in apps, hasattr(pyotb, 'BandMath'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True True True"
