"""Small vector layers for tests, written with OGR directly (independent of the code under test)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from osgeo import ogr, osr

ogr.UseExceptions()


def srs_of(epsg: int) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def write_layer(path: Path, geometries: Sequence[str], epsg: int | None = 32631,
                fields: dict[str, Sequence[Any]] | None = None, geometry_type: int = ogr.wkbUnknown,
                metadata: dict[str, str] | None = None) -> Path:
    """Write WKT geometries (and attribute columns: int, float or str by first value) to a GeoPackage."""
    driver = ogr.GetDriverByName("GPKG" if path.suffix == ".gpkg" else "ESRI Shapefile")
    dataset = driver.CreateDataSource(str(path))
    layer = dataset.CreateLayer(path.stem, srs_of(epsg) if epsg else None, geometry_type)
    fields = fields or {}
    for name, values in fields.items():
        sample = next((v for v in values if v is not None), "")
        kind = ogr.OFTInteger64 if isinstance(sample, int) else ogr.OFTReal if isinstance(sample, float) \
            else ogr.OFTString
        layer.CreateField(ogr.FieldDefn(name, kind))
    if metadata:
        layer.SetMetadata(metadata)
    for index, wkt in enumerate(geometries):
        feature = ogr.Feature(layer.GetLayerDefn())
        for name, values in fields.items():
            if values[index] is not None:
                feature.SetField(name, values[index])
        if wkt:
            feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feature)
    dataset = None
    return path


def write_points(path: Path, xy: Sequence[tuple[float, float]], epsg: int | None = 32631,
                 fields: dict[str, Sequence[Any]] | None = None, metadata: dict[str, str] | None = None) -> Path:
    return write_layer(path, [f"POINT ({x!r} {y!r})" for x, y in xy], epsg, fields, ogr.wkbPoint, metadata)


def rectangle(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def read_layer(path: Path) -> list[dict[str, Any]]:
    """Features as dicts of fields plus ``x``/``y``, and the layer metadata under ``__metadata__`` of the first."""
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    rows = []
    for feature in layer:
        row = {name: feature.GetField(name) for name in feature.keys()}
        geometry = feature.GetGeometryRef()
        row["x"], row["y"] = geometry.GetX(), geometry.GetY()
        rows.append(row)
    return rows


def layer_metadata(path: Path) -> dict[str, str]:
    dataset = ogr.Open(str(path))
    return dict(dataset.GetLayer(0).GetMetadata() or {})
