"""The reference against the map: features to sampling units, classes to map codes, the grid check.

A vector reference (``REFERENCE``) holds polygons or points in any CRS; they are
reprojected to the map's. Each feature is one **sampling unit**: the pixels of a polygon
are those whose centre is inside it (GDAL's rasterisation rule, not ``ALL_TOUCHED``; a
pixel in several polygons counts once, for the last of them in the layer), a point takes
the pixel it falls in. Features are kept when ``SPLIT_FIELD`` equals ``SPLIT_VALUE``
(stripped, without case), have a class and a geometry.

Classes (``CLASS_FIELD``): text values match the map's class names (stripped, without
case); integer codes, or a text field whose every value is an integer, match the map's
codes. A reference raster (``REFERENCE_RASTER``) must be on the map's grid; its values are
codes, its nodata and 255 mean "no reference".
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from osgeo import gdal, ogr, osr

from otbtf_qgis.core.assessment.classmap import INTEGER_TYPES, ClassMap, category_names, name_key
from otbtf_qgis.core.data.labels import names_from_metadata
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.raster import RasterInfo, open_raster, same_crs, srs_from_wkt
from otbtf_qgis.core.io.vector import layer_crs_wkt, open_vector, parse_layer_source, require_field

ogr.UseExceptions()
osr.UseExceptions()

#: Value of a reference raster pixel without reference (besides the raster's nodata).
NO_REFERENCE = 255
_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
_POLYGONS = {ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface}
_POINTS = {ogr.wkbPoint, ogr.wkbMultiPoint}
IntArray = npt.NDArray[np.int64]


def listing(values: Any, limit: int = 12) -> str:
    """``a, b, c`` (at most ``limit`` items, then ``…``)."""
    items = [str(v) for v in values]
    return ", ".join(items[:limit]) + (f", … ({len(items)} in all)" if len(items) > limit else "")


def coordinate(value: float) -> str:
    """A coordinate or size for messages: ``4499800``, ``10``, ``0.25`` (no exponent below 10 digits)."""
    return f"{value:.10g}"


def crs_label(wkt: str) -> str:
    """``EPSG:32631``, else the CRS's name, else ``no CRS``."""
    srs = srs_from_wkt(wkt)
    if srs is None:
        return "no CRS"
    authority, code = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
    return f"{authority}:{code}" if authority and code else str(srs.GetName())


@dataclass
class VectorReference:
    """Reference features as sampling units, in the map's pixel grid.

    Attributes:
        codes: The map code each unit's class stands for (whether the map knows it is
            decided after reading the map, for codes).
        values: Each unit's class as given (for messages).
        kind: ``"names"`` or ``"codes"``: how the class field was read.
        outside: Units lying entirely outside the map.
        is_polygon: Whether each unit is a polygon (else one or more points).
        polygons: An in-memory OGR dataset of the polygons inside the map (field ``unit``), or ``None``.
        point_units: The unit of each point inside the map.
        point_rows: Its pixel row.
        point_cols: Its pixel column.
        counts: Features left out before reading the map: ``not_in_split``,
            ``no_class_value``, ``no_geometry``, ``unknown_class`` (names not in the map).
        unknown_names: The reference class names that are not the map's.
        warnings: What the user should know about how the reference was read.
    """

    codes: IntArray
    values: list[str]
    kind: Literal["names", "codes"]
    outside: npt.NDArray[np.bool_]
    is_polygon: npt.NDArray[np.bool_]
    polygons: Any
    point_units: IntArray
    point_rows: IntArray
    point_cols: IntArray
    counts: dict[str, int] = field(default_factory=dict)
    unknown_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def class_kind(values: list[Any], kind: str, class_field: str) -> Literal["names", "codes"]:
    """How class values are read: ``"codes"`` (integers) or ``"names"``.

    Raises:
        InputError: (``CLASS_FIELD``) a real value that is not an integer, or text mixing
            integer codes and names (with examples of both).
    """
    if kind == "integer":
        return "codes"
    if kind == "real":
        bad = [v for v in values if not float(v).is_integer()]
        if bad:
            raise InputError(f"the field '{class_field}' holds {listing(sorted(set(bad)), 3)}, which are not class "
                             "codes: give integer codes or class names.", "CLASS_FIELD")
        return "codes"
    texts = sorted({str(v).strip() for v in values})
    integers = [t for t in texts if _INTEGER_TEXT.match(t)]
    if len(integers) == len(texts):
        return "codes"
    if not integers:
        return "names"
    names = [t for t in texts if not _INTEGER_TEXT.match(t)]
    raise InputError(f"the field '{class_field}' mixes integer codes (e.g. {listing(integers, 3)}) and class names "
                     f"(e.g. {listing(names, 3)}): give the map's class names in every feature, or its integer codes "
                     "in every feature.", "CLASS_FIELD")


def _map_footprint(info: RasterInfo) -> Any:
    x0, dx, rx, y0, ry, dy = info.geotransform
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for col, row in ((0, 0), (info.width, 0), (info.width, info.height), (0, info.height), (0, 0)):
        ring.AddPoint_2D(x0 + col * dx + row * rx, y0 + col * ry + row * dy)
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    return polygon


def _intersects(geometry: Any, footprint: Any) -> bool:
    xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    fxmin, fxmax, fymin, fymax = footprint.GetEnvelope()
    if xmax < fxmin or xmin > fxmax or ymax < fymin or ymin > fymax:
        return False
    try:
        return bool(geometry.Intersects(footprint))
    except RuntimeError:  # an invalid polygon: its envelope decides
        return True


def _read_features(config: Any, map_crs: str) -> tuple[list[tuple[Any, Any]], dict[str, int], str, str]:
    """``(geometry, class value)`` of the features kept (reprojected), the counts left out, the field kind, its CRS."""
    dataset, layer = open_vector(config.reference, "REFERENCE")
    kind = require_field(layer, config.class_field, "CLASS_FIELD", "REFERENCE")
    if config.split_field:
        require_field(layer, config.split_field, "SPLIT_FIELD", "REFERENCE")
    path = parse_layer_source(config.reference)[0]
    crs = layer_crs_wkt(layer)
    layer_srs = srs_from_wkt(crs)
    if layer_srs is not None and str(layer_srs.GetName()).startswith("Undefined "):  # GeoPackage's srs_id 0 and -1
        crs = ""
    transform = None
    if crs and map_crs and not same_crs(crs, map_crs):
        transform = osr.CoordinateTransformation(srs_from_wkt(crs), srs_from_wkt(map_crs))
    counts = {"features": 0, "not_in_split": 0, "no_class_value": 0, "no_geometry": 0}
    split_values: set[str] = set()
    kept: list[tuple[Any, Any]] = []
    wanted = name_key(config.split_value)
    layer.ResetReading()
    for feature in layer:
        counts["features"] += 1
        if config.split_field:
            split = feature.GetField(config.split_field) if feature.IsFieldSetAndNotNull(config.split_field) else None
            if split is not None:
                split_values.add(str(split).strip())
            if split is None or name_key(str(split)) != wanted:
                counts["not_in_split"] += 1
                continue
        if not feature.IsFieldSetAndNotNull(config.class_field):
            counts["no_class_value"] += 1
            continue
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            counts["no_geometry"] += 1
            continue
        flat = ogr.GT_Flatten(geometry.GetGeometryType())
        if flat not in _POLYGONS | _POINTS:
            raise InputError(f"'{path}' holds {ogr.GeometryTypeToName(geometry.GetGeometryType())} geometries: the "
                             "reference must be polygons or points.", "REFERENCE")
        geometry = geometry.GetLinearGeometry() if geometry.HasCurveGeometry() else geometry.Clone()
        if transform is not None:
            try:
                geometry.Transform(transform)
            except RuntimeError as exc:
                raise InputError(f"a feature of '{path}' cannot be reprojected from {crs_label(crs)} to the map's "
                                 f"{crs_label(map_crs)} ({exc}). Check the layer's CRS.", "REFERENCE") from exc
        kept.append((geometry, feature.GetField(config.class_field)))
    del dataset
    if counts["features"] == 0:
        raise InputError(f"the layer '{path}' has no feature. Give reference polygons or points with their class.",
                         "REFERENCE")
    if config.split_field and counts["not_in_split"] == counts["features"]:
        found = listing(sorted(split_values)) or "none"
        raise InputError(f"no feature of REFERENCE has {config.split_field} = '{config.split_value}' (values found: "
                         f"{found}). Give one of those values, or leave SPLIT_FIELD empty to assess every feature.",
                         "SPLIT_VALUE")
    if not kept:
        raise InputError(f"no feature of '{path}' has both a geometry and a value in '{config.class_field}' ("
                         f"{counts['no_class_value']} without class, {counts['no_geometry']} without geometry). "
                         "Give reference polygons or points with their class.", "REFERENCE")
    return kept, counts, kind, crs


def read_vector_reference(config: Any, classmap: ClassMap) -> VectorReference:
    """Read the reference features as sampling units on the map's grid.

    Args:
        config: The :class:`~otbtf_qgis.core.jobs.configs.accuracyassessment.AccuracyAssessmentConfig`.
        classmap: The map.

    Raises:
        InputError: an unknown field, no feature (after ``SPLIT_FIELD``), a class field
            of mixed types, names against a map without names, no class name of the
            map, or no feature overlapping the map.
    """
    info = classmap.info
    kept, counts, field_kind, crs = _read_features(config, info.crs_wkt)
    warnings = []
    if not crs and info.crs_wkt:
        warnings.append(f"REFERENCE has no CRS: its coordinates are taken to be in the map's, "
                        f"{crs_label(info.crs_wkt)}.")
    kind = class_kind([value for _, value in kept], field_kind, config.class_field)
    unknown: list[str] = []
    if kind == "names":
        if not classmap.names:
            examples = listing(sorted({str(v).strip() for _, v in kept}), 3)
            raise InputError(f"INPUT has no class names and CLASS_FIELD '{config.class_field}' holds names (e.g. "
                             f"{examples}): give CLASS_NAMES, the map's class names in the order of its codes 0, 1, "
                             "2… separated by commas.", "CLASS_NAMES")
        lookup = classmap.code_of_name()
        codes_list = [lookup.get(name_key(str(value)), -1) for _, value in kept]
        unknown = sorted({str(value).strip() for (_, value), code in zip(kept, codes_list, strict=True) if code < 0})
        if all(code < 0 for code in codes_list):
            raise InputError(f"none of the reference classes ({listing(unknown)}) is a class of the map "
                             f"({listing(classmap.names[c] for c in sorted(classmap.names))}). Use the map's class "
                             "names (compared without case), or give CLASS_NAMES.", "CLASS_FIELD")
        counts["unknown_class"] = sum(code < 0 for code in codes_list)
        kept = [item for item, code in zip(kept, codes_list, strict=True) if code >= 0]
        codes = np.array([code for code in codes_list if code >= 0], np.int64)
    else:
        counts["unknown_class"] = 0
        codes = np.array([int(float(str(value).strip())) for _, value in kept], np.int64)
    footprint = _map_footprint(info)
    inverse = gdal.InvGeoTransform(info.geotransform)
    source = ogr.GetDriverByName("Memory").CreateDataSource("")
    polygon_layer = source.CreateLayer("reference", srs_from_wkt(info.crs_wkt), ogr.wkbUnknown)
    polygon_layer.CreateField(ogr.FieldDefn("unit", ogr.OFTInteger))
    outside = np.zeros(len(kept), dtype=bool)
    is_polygon = np.zeros(len(kept), dtype=bool)
    point_units: list[int] = []
    point_rows: list[int] = []
    point_cols: list[int] = []
    has_polygons = False
    for unit, (geometry, _) in enumerate(kept):
        if ogr.GT_Flatten(geometry.GetGeometryType()) in _POINTS:
            parts = ([geometry.GetGeometryRef(i) for i in range(geometry.GetGeometryCount())]
                     if ogr.GT_Flatten(geometry.GetGeometryType()) == ogr.wkbMultiPoint else [geometry])
            inside = False
            for part in parts:
                u, v = gdal.ApplyGeoTransform(inverse, part.GetX(), part.GetY())
                col, row = math.floor(u), math.floor(v)
                if 0 <= col < info.width and 0 <= row < info.height:
                    inside = True
                    point_units.append(unit)
                    point_rows.append(row)
                    point_cols.append(col)
            outside[unit] = not inside
            continue
        is_polygon[unit] = True
        if _intersects(geometry, footprint):
            feature = ogr.Feature(polygon_layer.GetLayerDefn())
            feature.SetField("unit", unit)
            feature.SetGeometry(geometry)
            polygon_layer.CreateFeature(feature)
            has_polygons = True
        else:
            outside[unit] = True
    if outside.all():
        envelopes = np.array([g.GetEnvelope() for g, _ in kept])
        xmin, ymin, xmax, ymax = info.extent
        raise InputError(
            f"none of the {len(kept)} reference features overlaps INPUT: the map covers x {xmin:.10g} to {xmax:.10g}, "
            f"y {ymin:.10g} to {ymax:.10g} ({crs_label(info.crs_wkt)}) and the features, in the map's CRS, x "
            f"{envelopes[:, 0].min():.10g} to {envelopes[:, 1].max():.10g}, y {envelopes[:, 2].min():.10g} to "
            f"{envelopes[:, 3].max():.10g}. Check that the reference is for this map and that its CRS is right.",
            "REFERENCE")
    return VectorReference(codes, [str(value).strip() for _, value in kept], kind, outside, is_polygon,
                           source if has_polygons else None, np.array(point_units, np.int64),
                           np.array(point_rows, np.int64), np.array(point_cols, np.int64), counts, unknown, warnings)


@dataclass(frozen=True)
class RasterReference:
    """A reference raster on the map's grid.

    Attributes:
        dataset: The open raster.
        nodata: Its nodata value (``None`` for none); 255 means "no reference" as well.
        names: Code → class name recorded with it (category names or ``OTBTF_CLASS_NAMES``).
    """

    dataset: Any
    nodata: float | None
    names: dict[int, str]


def _grid_text(info: RasterInfo) -> str:
    x0, dx, _, y0, _, dy = info.geotransform
    return (f"{info.width}x{info.height} pixels, origin ({coordinate(x0)}, {coordinate(y0)}), pixel size "
            f"{coordinate(abs(dx))} x {coordinate(abs(dy))}, {crs_label(info.crs_wkt)}")


def _same_grid(a: RasterInfo, b: RasterInfo) -> bool:
    if (a.width, a.height) != (b.width, b.height):
        return False
    scale = max(abs(a.geotransform[1]), abs(a.geotransform[5]), 1e-12)
    if any(abs(p - q) > 1e-6 * scale for p, q in zip(a.geotransform, b.geotransform, strict=True)):
        return False
    return not (a.crs_wkt and b.crs_wkt and not same_crs(a.crs_wkt, b.crs_wkt))


def open_reference_raster(path: str | os.PathLike[str], classmap: ClassMap) -> RasterReference:
    """Open the reference raster and check it is on the map's grid.

    Raises:
        InputError: (``REFERENCE_RASTER``) it is not a single-band integer raster, or not
            on the map's grid (the message gives the ``gdalwarp`` command that puts it there).
    """
    dataset = open_raster(path, "REFERENCE_RASTER")
    info = RasterInfo.from_dataset(dataset, path)
    if info.bands != 1 or info.dtype not in INTEGER_TYPES:
        what = f"{info.bands} bands" if info.bands != 1 else f"pixels of type {info.dtype}"
        raise InputError(f"'{os.fspath(path)}' has {what}: a reference raster is a single-band integer raster of "
                         "class codes (e.g. the label raster of Patches selection).", "REFERENCE_RASTER")
    target = classmap.info
    if not _same_grid(info, target):
        xmin, ymin, xmax, ymax = target.extent
        _, dx, _, _, _, dy = target.geotransform
        srs = f"-t_srs {crs_label(target.crs_wkt)} " if crs_label(target.crs_wkt).startswith("EPSG:") else ""
        raise InputError(
            f"'{os.fspath(path)}' is not on the grid of INPUT: it is {_grid_text(info)}; the map is "
            f"{_grid_text(target)}. Put it on the map's grid with nearest neighbour, e.g. gdalwarp {srs}-te "
            f"{' '.join(coordinate(v) for v in (xmin, ymin, xmax, ymax))} -tr {coordinate(abs(dx))} "
            f"{coordinate(abs(dy))} -r near '{os.fspath(path)}' reference_on_map.tif",
            "REFERENCE_RASTER")
    band = dataset.GetRasterBand(1)
    names = category_names(band) or names_from_metadata(dataset.GetMetadata()) or []
    return RasterReference(dataset, band.GetNoDataValue(),
                           {code: name.strip() for code, name in enumerate(names) if name.strip()})
