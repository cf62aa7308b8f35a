"""Inputs for the sampling algorithms' end-to-end tests, written with GDAL/OGR directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr

from tests.vector_data import rectangle, write_layer

X0, Y0, SPACING = 500000.0, 4500000.0, 10.0


def make_image(path: Path, height: int = 64, width: int = 80, bands: int = 3) -> Path:
    """A uint16 UTM 31N raster whose values encode (row, col, band), nodata 0 in the top-left 8x8 corner."""
    rows, cols, band = np.meshgrid(np.arange(height), np.arange(width), np.arange(bands), indexing="ij")
    data = (rows * 1000 + cols * 10 + band + 1).astype(np.uint16)
    data[:8, :8] = 0
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, gdal.GDT_UInt16,
                                                   ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"])
    dataset.SetGeoTransform((X0, SPACING, 0.0, Y0, 0.0, -SPACING))
    dataset.SetProjection(_utm31())
    for index in range(bands):
        dataset.GetRasterBand(index + 1).WriteArray(data[:, :, index])
        dataset.GetRasterBand(index + 1).SetNoDataValue(0)
    dataset = None
    return path


def _utm31() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return str(srs.ExportToWkt())


def make_polygons(path: Path) -> Path:
    """Two labelled rectangles (pixel boxes (0, 0)-(40, 64) 'crop' and (40, 0)-(80, 32) 'water')."""
    def box(u0: float, v0: float, u1: float, v1: float) -> str:
        return rectangle(X0 + u0 * SPACING, Y0 - v1 * SPACING, X0 + u1 * SPACING, Y0 - v0 * SPACING)

    return write_layer(path, [box(0, 0, 40, 64), box(40, 0, 80, 32)], fields={"landcover": ["crop", "water"]},
                       geometry_type=ogr.wkbPolygon)


def feature_count(path: Path) -> int:
    dataset = ogr.Open(str(path))
    return int(dataset.GetLayer(0).GetFeatureCount())


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())
