"""The MASK of a serving job: polygons rasterized onto the output grid, tile by tile.

An output pixel is inside the mask when its centre is inside a polygon (GDAL's
rasterization without ``ALL_TOUCHED``). Pixels outside get BACKGROUND like pixels on
nodata input, and a tile without any pixel inside is not run through the model. The
polygons are read once, reprojected to the output grid's CRS; each reading thread
rasterizes them on its own in-memory layer (OGR objects are not shared between threads).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from osgeo import gdal, ogr, osr

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.raster import srs_from_wkt, window_geotransform
from otbtf_qgis.core.io.vector import open_vector, parse_layer_source, read_polygons
from otbtf_qgis.core.io.windows import Window

#: Layer geometry types that may hold polygons (``wkbUnknown``: mixed; its polygons are used).
POLYGON_TYPES = (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface, ogr.wkbUnknown)


class ServingMask:
    """The polygons of MASK in the output grid's CRS.

    Args:
        source: The layer (``path`` or ``path|layername=name``).
        crs_wkt: The output grid's CRS.

    Raises:
        InputError: naming ``MASK`` when the layer cannot be read, holds no polygon, has
            no CRS while the grid has one, or cannot be reprojected.
    """

    def __init__(self, source: str, crs_wkt: str) -> None:
        path = parse_layer_source(source)[0]
        dataset, layer = open_vector(source, "MASK")
        srs = layer.GetSpatialRef()
        # GeoPackage gives a layer without CRS an "Undefined geographic/cartesian SRS": not a CRS either
        georeferenced = srs is not None and not str(srs.GetName() or "").startswith("Undefined") and bool(
            srs.IsProjected() or srs.IsGeographic() or srs.IsCompound())
        geometry_type = ogr.GeometryTypeToName(layer.GetGeomType())
        flat_type = ogr.GT_Flatten(layer.GetGeomType())
        count = layer.GetFeatureCount()
        del layer, dataset
        if count == 0:
            raise InputError(f"the layer '{path}' is empty (0 features). Give a layer with the polygons to serve.",
                             "MASK")
        if crs_wkt and not georeferenced:
            raise InputError(f"the layer '{path}' has no CRS. Assign its CRS (e.g. in QGIS, or ogr2ogr -a_srs).",
                             "MASK")
        not_polygons = InputError(f"the layer '{path}' has no polygon ({count} feature(s) of type {geometry_type}). "
                                  "Give a polygon layer.", "MASK")
        if flat_type not in POLYGON_TYPES:
            raise not_polygons
        try:
            table = read_polygons(source, None, crs_wkt, parameter="MASK")
        except InputError as exc:
            if "has no polygon" in str(exc):  # a layer of unknown type without polygons
                raise not_polygons from exc
            raise
        except RuntimeError as exc:  # OGR cannot transform between the CRSs
            raise InputError(f"the layer '{path}' cannot be reprojected to the rasters' CRS: {exc}.", "MASK") from exc
        self.wkb = [bytes(geometry.ExportToWkb()) for geometry in table.geometries]
        #: (xmin, xmax, ymin, ymax) of each polygon: tiles far from every polygon skip GDAL.
        self.envelopes = np.array([geometry.GetEnvelope() for geometry in table.geometries], float).reshape(-1, 4)
        self.crs_wkt = crs_wkt
        self._local = threading.local()

    def _layer(self) -> Any:
        """This thread's in-memory layer of the polygons."""
        layer = getattr(self._local, "layer", None)
        if layer is None:
            dataset = ogr.GetDriverByName("Memory").CreateDataSource("")
            srs: osr.SpatialReference | None = srs_from_wkt(self.crs_wkt) if self.crs_wkt else None
            layer = dataset.CreateLayer("mask", srs, ogr.wkbUnknown)
            for wkb in self.wkb:
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetGeometry(ogr.CreateGeometryFromWkb(wkb))
                layer.CreateFeature(feature)
            self._local.dataset, self._local.layer = dataset, layer
        return layer

    def inside(self, geotransform: Sequence[float], window: Window) -> npt.NDArray[np.bool_]:
        """``(rows, cols)``: True on the pixels of ``window`` (of the grid of ``geotransform``) centred in a polygon."""
        tile_transform = window_geotransform(geotransform, window)
        x0, dx, rx, y0, ry, dy = tile_transform
        xs = [x0 + col * dx + row * rx for col in (0, window.width) for row in (0, window.height)]
        ys = [y0 + col * ry + row * dy for col in (0, window.width) for row in (0, window.height)]
        xmin, xmax, ymin, ymax = min(xs), max(xs), min(ys), max(ys)
        near = self.envelopes[(self.envelopes[:, 0] <= xmax) & (self.envelopes[:, 1] >= xmin)
                              & (self.envelopes[:, 2] <= ymax) & (self.envelopes[:, 3] >= ymin)]
        if not len(near):
            return np.zeros((window.height, window.width), bool)
        raster = gdal.GetDriverByName("MEM").Create("", window.width, window.height, 1, gdal.GDT_Byte)
        raster.SetGeoTransform(list(tile_transform))
        if self.crs_wkt:
            raster.SetProjection(self.crs_wkt)
        layer = self._layer()
        layer.SetSpatialFilterRect(xmin, ymin, xmax, ymax)  # only the polygons near the tile are burnt
        gdal.RasterizeLayer(raster, [1], layer, burn_values=[1])
        pixels: npt.NDArray[np.bool_] = raster.GetRasterBand(1).ReadAsArray() > 0
        return pixels
