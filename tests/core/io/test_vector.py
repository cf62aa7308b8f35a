from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import osr

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.vector import (
    FieldColumn,
    open_vector,
    read_points,
    read_polygons,
    transform_xy,
    write_points,
)
from tests.core.conftest import UTM31, make_raster
from tests.vector_data import layer_metadata, read_layer, rectangle, srs_of, write_layer
from tests.vector_data import write_points as make_points


def test_read_points_with_fields_and_ids(tmp_path: Path):
    path = make_points(tmp_path / "p.gpkg", [(1.0, 2.0), (3.5, 4.5), (5.0, 6.0)],
                       fields={"id": [10, 11, 12], "name": ["b", None, "a"]})
    points = read_points(path, ["name"])
    np.testing.assert_array_equal(points.x, [1.0, 3.5, 5.0])
    np.testing.assert_array_equal(points.y, [2.0, 4.5, 6.0])
    np.testing.assert_array_equal(points.ids, [10, 11, 12])
    assert points.values == {"name": ["b", None, "a"]}
    assert points.kinds == {"name": "string"}
    assert osr.SpatialReference(points.crs_wkt).GetAuthorityCode(None) == "32631"


def test_ids_are_feature_ids_without_an_id_field_and_empty_geometries_are_skipped(tmp_path: Path):
    path = write_layer(tmp_path / "p.gpkg", ["POINT (1 2)", "", "POINT (3 4)"], fields={"v": [1, 2, 3]})
    points = read_points(path, ["v"])
    assert list(points.ids) == [1, 3] and points.values["v"] == [1, 3] and points.skipped == 1


@pytest.mark.parametrize(("name", "geometries", "fields", "columns"), [
    ("plain.gpkg", ["POINT (1 2)", "POINT (3.25 4)"], {}, True),
    ("nulls.gpkg", ["POINT (1 2)", "", "POINT EMPTY", "POINT (5 6)", "POINT (7 8)"],
     {"id": [7, None, 9, None, 11], "c": [1.5, None, 2.5, 3.5, None], "k": [3, 4, None, 5, 6]}, True),
    ("shape.shp", ["POINT (1 2)", "POINT (3 4)"], {"id": [5, 6], "v": [1.0, 2.0]}, True),
    ("text.gpkg", ["POINT (1 2)", "POINT (3 4)"], {"name": ["a", None]}, False),
    ("multi.gpkg", ["POINT (1 2)", "MULTIPOINT ((3 4))", "LINESTRING (0 0, 1 1)"], {}, False),
    ("z.gpkg", ["POINT Z (1 2 3)"], {}, False),
])
def test_points_read_as_columns_equal_the_feature_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                                       geometries: list[str], fields: dict, columns: bool):
    from otbtf_qgis.core.io import vector

    path = write_layer(tmp_path / name, geometries, fields=fields)
    requested = [f for f in fields if f != "id"]
    dataset, layer = open_vector(path, "POINTS")
    assert (vector._points_in_columns(layer, requested, "id" in fields) is not None) == columns
    del dataset
    fast = read_points(path, requested)
    monkeypatch.setattr(vector, "_points_in_columns", lambda *args: None)
    slow = read_points(path, requested)
    np.testing.assert_array_equal(fast.x, slow.x)
    np.testing.assert_array_equal(fast.y, slow.y)
    np.testing.assert_array_equal(fast.ids, slow.ids)
    assert fast.ids.dtype == slow.ids.dtype == np.int64
    assert (fast.values, fast.skipped) == (slow.values, slow.skipped)
    assert [type(v) for vs in fast.values.values() for v in vs] == [type(v) for vs in slow.values.values() for v in vs]


def test_layer_name_suffix(tmp_path: Path):
    path = make_points(tmp_path / "p.gpkg", [(1.0, 2.0)])
    _dataset, layer = open_vector(f"{path}|layername=p", "POINTS")
    assert layer.GetFeatureCount() == 1
    with pytest.raises(InputError, match="has no layer 'other'"):
        open_vector(f"{path}|layername=other", "POINTS")


def test_point_errors_name_the_parameter(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist") as error:
        read_points(tmp_path / "none.gpkg")
    assert error.value.parameter == "POINTS"
    empty = make_points(tmp_path / "empty.gpkg", [])
    with pytest.raises(InputError, match="has no point"):
        read_points(empty)
    points = make_points(tmp_path / "p.gpkg", [(1.0, 2.0)], fields={"class": ["a"]})
    with pytest.raises(InputError, match=r"no field 'Class' \(fields: class\)\. Did you mean 'class'\?") as error:
        read_points(points, ["Class"])
    assert error.value.parameter == "FIELD"
    polygons = write_layer(tmp_path / "poly.gpkg", [rectangle(0, 0, 1, 1)], geometry_type=3)
    with pytest.raises(InputError, match="a point layer is needed"):
        read_points(polygons)
    raster = make_raster(tmp_path / "r.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="not a vector"):
        read_points(raster)


def test_transform_wgs84_to_utm_matches_osr():
    lon, lat = np.array([3.0, 2.5]), np.array([45.0, 44.0])
    x, y = transform_xy(lon, lat, srs_of(4326).ExportToWkt(), UTM31)
    transform = osr.CoordinateTransformation(srs_of(4326), srs_of(32631))
    for i in range(2):
        ex, ey, _ = transform.TransformPoint(float(lon[i]), float(lat[i]))
        assert x[i] == pytest.approx(ex, abs=1e-6) and y[i] == pytest.approx(ey, abs=1e-6)
    assert x[0] == pytest.approx(500000.0, abs=1e-6)  # 3°E is the central meridian of zone 31


def test_read_polygons_reprojects_and_skips_null_classes(tmp_path: Path):
    path = write_layer(tmp_path / "poly.gpkg", [rectangle(2.9, 44.9, 3.1, 45.1), rectangle(0, 0, 1, 1)],
                       epsg=4326, fields={"cls": ["water", None]}, geometry_type=3)
    polygons = read_polygons(path, "cls", UTM31)
    assert polygons.values == ["water"] and polygons.kind == "string"
    envelope = polygons.geometries[0].GetEnvelope()
    assert envelope[0] == pytest.approx(492000, abs=1000) and envelope[1] == pytest.approx(508000, abs=1000)


def test_write_points_roundtrip_with_metadata(tmp_path: Path):
    out = write_points(tmp_path / "out.gpkg", np.array([1.0, 2.0]), np.array([3.0, 4.0]), UTM31,
                       [FieldColumn("id", "integer", [5, 6]), FieldColumn("name", "string", ["a", "b"])],
                       metadata={"OTBTF_CLASS_NAMES": '["a", "b"]'})
    rows = read_layer(out)
    assert [(r["id"], r["name"], r["x"], r["y"]) for r in rows] == [(5, "a", 1.0, 3.0), (6, "b", 2.0, 4.0)]
    assert layer_metadata(out)["OTBTF_CLASS_NAMES"] == '["a", "b"]'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg"]  # no temporary left
    shp = write_points(tmp_path / "out.shp", np.array([1.0]), np.array([3.0]), UTM31,
                       [FieldColumn("id", "integer", [7])])
    assert read_layer(shp)[0]["id"] == 7 and (tmp_path / "out.prj").exists()
    with pytest.raises(InputError, match=r"cannot write a layer to 'out\.xyz'"):
        write_points(tmp_path / "out.xyz", np.array([1.0]), np.array([3.0]), UTM31)
