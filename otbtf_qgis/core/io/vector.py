"""Vector layers on OGR: read points and polygons with attributes, reproject, write points.

Layers are given as a file path, optionally with QGIS's layer suffix
(``/data/samples.gpkg|layername=points``). Coordinates are handled in the traditional
GIS axis order (x = easting/longitude, y = northing/latitude) whatever the CRS
definition says, as QGIS does. Point layers are written atomically: to a hidden
temporary folder first, moved into place when complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from osgeo import ogr, osr

from otbtf_qgis.core.errors import InputError, RasterIOError
from otbtf_qgis.core.io.raster import same_crs, srs_from_wkt
from otbtf_qgis.core.jobs.outputs import ensure_writable_parent, partial_name

ogr.UseExceptions()
osr.UseExceptions()

FieldKind = Literal["integer", "real", "string"]
FloatArray = npt.NDArray[np.float64]

#: Output drivers by file extension.
VECTOR_DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON",
                  ".sqlite": "SQLite", ".fgb": "FlatGeobuf"}

_INTEGER_TYPES = {ogr.OFTInteger, ogr.OFTInteger64}
_REAL_TYPES = {ogr.OFTReal}


def parse_layer_source(source: str | os.PathLike[str]) -> tuple[str, dict[str, str]]:
    """Split QGIS's ``path|layername=x|layerid=n`` into the path and its options."""
    parts = os.fspath(source).split("|")
    options = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        options[key.strip().lower()] = value.strip()
    return parts[0], options


def open_vector(source: str | os.PathLike[str], parameter: str) -> tuple[Any, Any]:
    """Open a vector layer; return ``(dataset, layer)`` (keep the dataset alive while using the layer).

    Raises:
        InputError: the file does not exist, is not a vector file, or the layer is not found.
    """
    path, options = parse_layer_source(source)
    if not path:
        raise InputError("no vector layer given. Choose a layer.", parameter)
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise InputError(f"the vector file '{path}' does not exist. Check the path.", parameter)
    try:
        dataset = ogr.Open(path, 0)
    except RuntimeError as exc:
        raise InputError(f"'{path}' is not a vector file OGR can read ({exc}). Give a GeoPackage, a shapefile or "
                         "another OGR vector format.", parameter) from exc
    if dataset is None or dataset.GetLayerCount() == 0:
        raise InputError(f"'{path}' is not a vector layer (no layer found; is it a raster?). Give a GeoPackage, "
                         "a shapefile or another OGR vector format.", parameter)
    if "layername" in options:
        layer = dataset.GetLayerByName(options["layername"])
        if layer is None:
            names = ", ".join(dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount()))
            raise InputError(f"'{path}' has no layer '{options['layername']}' (layers: {names}).", parameter)
    else:
        index = int(options.get("layerid", 0) or 0)
        if index >= dataset.GetLayerCount():
            raise InputError(f"'{path}' has no layer number {index}.", parameter)
        layer = dataset.GetLayerByIndex(index)
    return dataset, layer


def layer_crs_wkt(layer: Any) -> str:
    """The layer's CRS as WKT ("" when it has none)."""
    srs = layer.GetSpatialRef()
    return str(srs.ExportToWkt()) if srs is not None else ""


def field_kinds(layer: Any) -> dict[str, FieldKind]:
    """The layer's attribute fields and their kind (``integer``, ``real``, ``string``)."""
    definition = layer.GetLayerDefn()
    kinds: dict[str, FieldKind] = {}
    for index in range(definition.GetFieldCount()):
        field_def = definition.GetFieldDefn(index)
        field_type = field_def.GetType()
        kind: FieldKind = ("integer" if field_type in _INTEGER_TYPES else
                           "real" if field_type in _REAL_TYPES else "string")
        kinds[field_def.GetName()] = kind
    return kinds


def require_field(layer: Any, name: str, parameter: str, layer_parameter: str) -> FieldKind:
    """Return the kind of field ``name`` of ``layer``.

    Raises:
        InputError: naming ``parameter`` and listing the layer's fields when it is missing.
    """
    kinds = field_kinds(layer)
    if name in kinds:
        return kinds[name]
    lowered = {k.lower(): k for k in kinds}
    hint = f" Did you mean '{lowered[name.lower()]}'?" if name.lower() in lowered else ""
    available = ", ".join(kinds) or "none"
    raise InputError(f"the layer of {layer_parameter} has no field '{name}' (fields: {available}).{hint}", parameter)


def transform_xy(x: FloatArray, y: FloatArray, from_wkt: str, to_wkt: str) -> tuple[FloatArray, FloatArray]:
    """Reproject coordinates from one CRS to another (unchanged when the CRSs are the same or one is unset)."""
    if not from_wkt or not to_wkt or same_crs(from_wkt, to_wkt) or len(x) == 0:
        return x, y
    source, target = srs_from_wkt(from_wkt), srs_from_wkt(to_wkt)
    transform = osr.CoordinateTransformation(source, target)
    points = np.asarray(transform.TransformPoints(np.column_stack([x, y]).tolist()), dtype=np.float64)
    return points[:, 0].copy(), points[:, 1].copy()


def _point_of(geometry: Any) -> tuple[float, float] | None:
    if geometry is None or geometry.IsEmpty():
        return None
    flat = ogr.GT_Flatten(geometry.GetGeometryType())
    if flat == ogr.wkbPoint:
        return (geometry.GetX(), geometry.GetY())
    if flat == ogr.wkbMultiPoint and geometry.GetGeometryCount() == 1:
        point = geometry.GetGeometryRef(0)
        return (point.GetX(), point.GetY())
    return None


_Points = tuple[FloatArray | list[float], FloatArray | list[float], npt.NDArray[np.int64] | list[int],
                dict[str, list[Any]], int]


def _points_feature_by_feature(layer: Any, fields: Sequence[str], has_id: bool) -> _Points:
    """``(x, y, ids, values, skipped)`` of a layer's points, reading one feature at a time (any layer)."""
    xs: list[float] = []
    ys: list[float] = []
    ids: list[int] = []
    values: dict[str, list[Any]] = {name: [] for name in fields}
    skipped = 0
    layer.ResetReading()
    for feature in layer:
        point = _point_of(feature.GetGeometryRef())
        if point is None:
            skipped += 1
            continue
        xs.append(point[0])
        ys.append(point[1])
        ids.append(int(feature.GetField("id")) if has_id and feature.IsFieldSetAndNotNull("id") else feature.GetFID())
        for name in fields:
            values[name].append(feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None)
    return xs, ys, ids, values, skipped


#: WKB of a 2D point: byte order (1 = little-endian), type (uint32 1), x and y (float64).
_POINT_WKB_SIZE = 21


def _points_in_columns(layer: Any, fields: Sequence[str], has_id: bool) -> _Points | None:
    """The same as :func:`_points_feature_by_feature`, read as columns (GDAL's Arrow stream), or ``None``.

    Many times faster on big layers. Only plain cases take this path: numeric fields and
    2D little-endian point geometries (NULL or empty ones are skipped as in the feature
    loop); anything else returns ``None`` and is read feature by feature.
    """
    if not hasattr(layer, "GetArrowStreamAsNumPy"):
        return None
    definition = layer.GetLayerDefn()
    wanted = [*fields, "id"] if has_id else list(fields)
    for name in wanted:
        field_def = definition.GetFieldDefn(definition.GetFieldIndex(name))
        if field_def.GetType() not in (*_INTEGER_TYPES, *_REAL_TYPES) or field_def.GetSubType() != ogr.OFSTNone:
            return None
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    layer.SetIgnoredFields([name for name in names if name not in wanted])
    try:
        layer.ResetReading()
        batches = list(layer.GetArrowStreamAsNumPy(options=["USE_MASKED_ARRAYS=YES"]))
    except RuntimeError:
        return None
    finally:
        layer.SetIgnoredFields([])
        layer.ResetReading()
    fid_column = layer.GetFIDColumn() or "OGC_FID"
    columns: dict[str, list[Any]] = {}
    for batch in batches:
        for key, array in batch.items():
            columns.setdefault(key, []).append(array)
    geometry_keys = [key for key in columns if key != fid_column and key not in wanted]
    if len(geometry_keys) != 1 or fid_column not in columns:
        return None
    geometries = [g for part in columns[geometry_keys[0]] for g in part.tolist()]
    present = np.array([g is not None for g in geometries], dtype=bool)
    blobs = [g for g in geometries if g is not None]
    if any(len(blob) != _POINT_WKB_SIZE for blob in blobs):
        return None
    wkb = np.frombuffer(b"".join(blobs), np.uint8).reshape(-1, _POINT_WKB_SIZE)
    if not ((wkb[:, 0] == 1).all() and (wkb[:, 1:5].copy().view("<u4") == 1).all()):
        return None
    coordinates = wkb[:, 5:].copy().view("<f8")
    has_point = np.zeros(len(geometries), dtype=bool)
    has_point[present] = ~np.isnan(coordinates).any(axis=1)  # POINT EMPTY is written as NaN NaN
    keep = has_point[present]

    def column(name: str) -> list[Any]:
        array = np.ma.concatenate(columns[name]) if columns[name] else np.ma.array([])
        mask = np.ma.getmaskarray(array)
        return [None if masked else value for value, masked in zip(array.data.tolist(), mask.tolist(), strict=True)]

    fids = np.concatenate(columns[fid_column]).astype(np.int64)
    ids = fids
    if has_id:
        id_values = column("id")
        ids = np.array([fid if value is None else value for value, fid in zip(id_values, fids.tolist(), strict=True)],
                       dtype=np.int64)
    values = {name: [v for v, k in zip(column(name), has_point.tolist(), strict=True) if k] for name in fields}
    return (coordinates[keep, 0].copy(), coordinates[keep, 1].copy(), ids[has_point], values,
            int(len(geometries) - has_point.sum()))


@dataclass(frozen=True)
class PointTable:
    """Points read from a layer, in the layer's CRS.

    Attributes:
        x: Easting/longitude of each point.
        y: Northing/latitude of each point.
        ids: The ``id`` field when the layer has an integer one, else the feature id.
        values: Per requested field, the value of each point.
        kinds: Per requested field, its kind.
        crs_wkt: The layer's CRS ("" when unset).
        skipped: Features without a usable point geometry (empty or NULL).
        metadata: The layer's metadata items (e.g. the class names written by patch selection).
    """

    x: FloatArray
    y: FloatArray
    ids: npt.NDArray[np.int64]
    values: dict[str, list[Any]]
    kinds: dict[str, FieldKind]
    crs_wkt: str
    skipped: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)


def read_points(source: str | os.PathLike[str], fields: Sequence[str] = (), parameter: str = "POINTS",
                field_parameter: str = "FIELD") -> PointTable:
    """Read the point features of a layer with the given attribute fields.

    Raises:
        InputError: the layer cannot be opened, is not a point layer, a field is
            missing, or the layer has no point.
    """
    dataset, layer = open_vector(source, parameter)
    kinds = {name: require_field(layer, name, field_parameter, parameter) for name in fields}
    geometry_type = ogr.GT_Flatten(layer.GetGeomType())
    if geometry_type not in (ogr.wkbPoint, ogr.wkbMultiPoint, ogr.wkbUnknown):
        raise InputError(f"'{parse_layer_source(source)[0]}' holds {ogr.GeometryTypeToName(layer.GetGeomType())} "
                         "geometries; a point layer is needed (make points with Patches selection, or take "
                         "polygon centroids first).", parameter)
    has_id = field_kinds(layer).get("id") == "integer"
    table = _points_in_columns(layer, fields, has_id)
    if table is None:
        table = _points_feature_by_feature(layer, fields, has_id)
    xs, ys, ids, values, skipped = table
    metadata = dict(layer.GetMetadata() or {})
    crs = layer_crs_wkt(layer)
    del dataset  # closes the file
    if not len(xs):
        what = f" ({skipped} features have no point geometry)" if skipped else ""
        raise InputError(f"the layer '{parse_layer_source(source)[0]}' has no point{what}. Give a layer with "
                         "points (e.g. the output of Patches selection).", parameter)
    return PointTable(np.asarray(xs, np.float64), np.asarray(ys, np.float64), np.asarray(ids, np.int64),
                      values, kinds, crs, skipped, metadata)


@dataclass(frozen=True)
class PolygonTable:
    """Polygons read from a layer and reprojected to a target CRS.

    Attributes:
        geometries: OGR polygon geometries in the target CRS.
        values: The class value of each polygon (``None`` when no class field).
        kind: The class field's kind (``None`` when no class field).
        crs_wkt: The CRS of the geometries.
        attributes: The values of the other fields asked for, per field (``None`` when unset).
    """

    geometries: list[Any]
    values: list[Any]
    kind: FieldKind | None
    crs_wkt: str
    attributes: dict[str, list[Any]] = field(default_factory=dict)


def read_polygons(source: str | os.PathLike[str], class_field: str | None, target_crs_wkt: str,
                  parameter: str = "POLYGONS", field_parameter: str = "CLASS_FIELD",
                  extra_fields: Mapping[str, str] | None = None) -> PolygonTable:
    """Read polygon features (and their class) reprojected to ``target_crs_wkt``.

    Features with an empty geometry or a NULL class are left out. ``extra_fields`` maps
    other fields to read to the parameter that names them (for errors).

    Raises:
        InputError: the layer cannot be opened, is not a polygon layer, the class field
            is missing, or no polygon remains.
    """
    dataset, layer = open_vector(source, parameter)
    kind = require_field(layer, class_field, field_parameter, parameter) if class_field else None
    for name, name_parameter in (extra_fields or {}).items():
        require_field(layer, name, name_parameter, parameter)
    attributes: dict[str, list[Any]] = {name: [] for name in extra_fields or {}}
    geometry_type = ogr.GT_Flatten(layer.GetGeomType())
    if geometry_type not in (ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbUnknown, ogr.wkbCurvePolygon,
                             ogr.wkbMultiSurface):
        raise InputError(f"'{parse_layer_source(source)[0]}' holds {ogr.GeometryTypeToName(layer.GetGeomType())} "
                         "geometries; a polygon layer is needed.", parameter)
    crs = layer_crs_wkt(layer)
    transform = None
    if crs and target_crs_wkt and not same_crs(crs, target_crs_wkt):
        transform = osr.CoordinateTransformation(srs_from_wkt(crs), srs_from_wkt(target_crs_wkt))
    geometries = []
    values = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        if ogr.GT_Flatten(geometry.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon,
                                                              ogr.wkbCurvePolygon, ogr.wkbMultiSurface):
            continue
        value = None
        if class_field:
            if not feature.IsFieldSetAndNotNull(class_field):
                continue
            value = feature.GetField(class_field)
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        geometries.append(geometry)
        values.append(value)
        for name, column in attributes.items():
            column.append(feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None)
    del dataset
    if not geometries:
        raise InputError(f"the layer '{parse_layer_source(source)[0]}' has no polygon"
                         + (f" with a value in '{class_field}'" if class_field else "") + ".", parameter)
    return PolygonTable(geometries, values, kind, target_crs_wkt or crs, attributes)


@dataclass(frozen=True)
class FieldColumn:
    """An attribute column to write: name, kind and one value per point."""

    name: str
    kind: FieldKind
    values: Sequence[Any]


_OGR_TYPES = {"integer": ogr.OFTInteger64, "real": ogr.OFTReal, "string": ogr.OFTString}


def write_points(path: str | os.PathLike[str], x: FloatArray, y: FloatArray, crs_wkt: str,
                 columns: Sequence[FieldColumn] = (), metadata: Mapping[str, str] | None = None,
                 parameter: str = "OUTPUT") -> Path:
    """Write a point layer (format from the extension, GeoPackage by default), atomically.

    Args:
        path: Destination file (``.gpkg``, ``.shp``, ``.geojson``, ``.sqlite``, ``.fgb``).
        x: Point x coordinates in ``crs_wkt``.
        y: Point y coordinates.
        crs_wkt: The CRS of the coordinates.
        columns: Attribute columns.
        metadata: Layer metadata items (kept by GeoPackage).
        parameter: The user-facing parameter named in errors.

    Raises:
        InputError: unsupported extension.
        RasterIOError: the file cannot be written.
    """
    def points() -> Any:
        for index in range(len(x)):
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(float(x[index]), float(y[index]))
            yield point

    return _write_layer(path, ogr.wkbPoint, points(), crs_wkt, columns, metadata, parameter)


def write_polygons(path: str | os.PathLike[str], geometries: Sequence[Any], crs_wkt: str,
                   columns: Sequence[FieldColumn] = (), metadata: Mapping[str, str] | None = None,
                   parameter: str = "OUTPUT") -> Path:
    """Write a polygon layer of OGR geometries, like :func:`write_points` (same formats, atomically)."""
    return _write_layer(path, ogr.wkbMultiPolygon, (ogr.ForceToMultiPolygon(g.Clone()) for g in geometries),
                        crs_wkt, columns, metadata, parameter)


def _write_layer(path: str | os.PathLike[str], geometry_type: int, geometries: Any, crs_wkt: str,
                 columns: Sequence[FieldColumn], metadata: Mapping[str, str] | None, parameter: str) -> Path:
    final = Path(path)
    if not final.suffix:
        final = final.with_suffix(".gpkg")
    driver_name = VECTOR_DRIVERS.get(final.suffix.lower())
    if driver_name is None:
        raise InputError(f"cannot write a layer to '{final.name}': use one of "
                         f"{', '.join(sorted(VECTOR_DRIVERS))}.", parameter)
    ensure_writable_parent(final, parameter)
    temp_dir = partial_name(final).with_suffix("")
    shutil.rmtree(temp_dir, ignore_errors=True)
    temp_dir.mkdir()
    try:
        driver = ogr.GetDriverByName(driver_name)
        dataset = driver.CreateDataSource(str(temp_dir / final.name))
        layer = dataset.CreateLayer(final.stem, srs_from_wkt(crs_wkt), geometry_type)
        for column in columns:
            layer.CreateField(ogr.FieldDefn(column.name, _OGR_TYPES[column.kind]))
        if metadata:
            layer.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        definition = layer.GetLayerDefn()
        layer.StartTransaction()
        for index, geometry in enumerate(geometries):
            feature = ogr.Feature(definition)
            for column in columns:
                value = column.values[index]
                if value is not None:
                    feature.SetField(column.name, value.item() if isinstance(value, np.generic) else value)
            feature.SetGeometry(geometry)
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        dataset = None
        for produced in temp_dir.iterdir():
            os.replace(produced, final.parent / produced.name)
    except RuntimeError as exc:
        raise RasterIOError(f"cannot write '{final}': {exc}", parameter) from exc
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return final
