"""Fixtures: small synthetic GeoTIFFs with known content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal, osr

from otbtf_qgis.core.progress import Reporter

gdal.UseExceptions()

UTM31_WKT = osr.SpatialReference()
UTM31_WKT.ImportFromEPSG(32631)
UTM31 = UTM31_WKT.ExportToWkt()


def encoded_values(height: int, width: int, bands: int, dtype: str = "float32") -> np.ndarray:
    """Pixel value = row * 1000 + col * 10 + band: every pixel and band is identifiable."""
    rows, cols, band = np.meshgrid(np.arange(height), np.arange(width), np.arange(bands), indexing="ij")
    return (rows * 1000 + cols * 10 + band).astype(dtype)


def make_raster(path: Path, array: np.ndarray, geotransform=(500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0),
                crs_wkt: str = UTM31, nodata: float | None = None, tiled: bool = True) -> Path:
    """Write ``(rows, cols, bands)`` to a GeoTIFF with GDAL directly (independent of the code under test)."""
    if array.ndim == 2:
        array = array[:, :, None]
    from osgeo import gdal_array

    gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    options = ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"] if tiled else []
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], array.shape[2],
                                              gdal_type, options)
    ds.SetGeoTransform(geotransform)
    if crs_wkt:
        ds.SetProjection(crs_wkt)
    for b in range(array.shape[2]):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(array[:, :, b])
    ds = None
    return path


@pytest.fixture
def raster_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def factory(array: np.ndarray, name: str | None = None, **kwargs) -> Path:
        return make_raster(tmp_path / (name or f"raster{next(counter)}.tif"), array, **kwargs)

    return factory


class CancelAfter(Reporter):
    """A reporter that asks to cancel after ``calls`` checks."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def is_canceled(self) -> bool:
        self.calls -= 1
        return self.calls < 0


# Small SavedModels, built once per session (see tests/core/saved_models.py).
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _build(model_dir: Path, name: str) -> tuple[Path, Any]:
    from tests.core import saved_models  # TensorFlow: only for the tests that use these models

    folder = model_dir / name
    return folder, getattr(saved_models, f"{name}_model")(folder)


@pytest.fixture(scope="session")
def valid_model(model_dir):
    return _build(model_dir, "valid")


@pytest.fixture(scope="session")
def unet_model(model_dir):
    return _build(model_dir, "unet")


@pytest.fixture(scope="session")
def gain_model(model_dir):
    return _build(model_dir, "gain")


@pytest.fixture(scope="session")
def two_resolution_model(model_dir):
    return _build(model_dir, "two_resolution")


@pytest.fixture(scope="session")
def fixed_patch_model(model_dir):
    return _build(model_dir, "fixed_patch")
