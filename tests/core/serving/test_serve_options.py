"""Serving options: EXTENT (a part of the output grid), MASK (polygons), scaled output types, class map only."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.io.windows import Window, from_bounds
from otbtf_qgis.core.jobs.codec import add_config_arguments, config_from_args, config_from_dict, config_to_dict
from otbtf_qgis.core.serving import ServeConfig, SourceConfig, serve
from otbtf_qgis.core.serving.output import to_output_type
from tests.core.conftest import UTM31, make_raster
from tests.core.serving.test_modelserve import GT, leftovers, predict, read

# The output grid of the 61x53 image below with valid_model (rf 14, ef 8): 48x40 pixels of 10 m from (500030, 4499970).
GRID_X, GRID_Y = 500030.0, 4499970.0


@pytest.fixture
def image(tmp_path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(1).normal(size=(53, 61, 3)).astype(np.float32)
    return make_raster(tmp_path / "image.tif", data, GT), data


def config(path: Path, folder: Path, output: Path | str, **kwargs) -> ServeConfig:
    return ServeConfig(sources=(SourceConfig((str(path),)),), model=str(folder), output=str(output), **kwargs)


def polygon_layer(path: Path, rings: list[list[tuple[float, float]]], epsg: int | None = 32631,
                  geometry_type: int = ogr.wkbPolygon) -> Path:
    """A GeoPackage layer of one feature per ring (or of points at the ring's vertices for a point layer)."""
    srs = None
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("mask", srs, geometry_type)
    for ring in rings:
        if geometry_type == ogr.wkbPoint:
            geometry = ogr.CreateGeometryFromWkt(f"POINT ({ring[0][0]} {ring[0][1]})")
        else:
            wkt = ", ".join(f"{x} {y}" for x, y in [*ring, ring[0]])
            geometry = ogr.CreateGeometryFromWkt(f"POLYGON (({wkt}))")
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    dataset = None
    return path


def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# ------------------------------------------------------------------------------------------------------- EXTENT


def test_from_bounds_snaps_outward_on_the_grid_phase():
    gt = (100.0, 10.0, 0.0, 1000.0, 0.0, -10.0)
    assert from_bounds(gt, (155.0, 700.0, 202.0, 963.0)) == Window(5, 3, 6, 27)
    # bounds on pixel edges (up to rounding) add no pixel
    assert from_bounds(gt, (150.0 + 1e-9, 700.0, 200.0 - 1e-9, 970.0)) == Window(5, 3, 5, 27)
    assert from_bounds(gt, (50.0, 1010.0, 60.0, 1020.0)) == Window(-5, -2, 1, 1)


def test_extent_output_is_the_full_run_cropped(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    serve(config(path, folder, tmp_path / "full.tif", tile_size=16))
    full, full_info, _ = read(tmp_path / "full.tif")
    # columns 5.5 .. 20.2 and rows 3.7 .. 30.1 of the output grid: pixels [5, 21) x [3, 31)
    extent = (GRID_X + 55, GRID_Y - 301, GRID_X + 202, GRID_Y - 37)
    result = serve(config(path, folder, tmp_path / "part.tif", tile_size=16, extent=extent))
    part, info, _ = read(tmp_path / "part.tif")
    assert (result["width"], result["height"], result["region"]) == (16, 28, [5, 3, 16, 28])
    assert info.geotransform == (GRID_X + 50, 10.0, 0.0, GRID_Y - 30, 0.0, -10.0)
    assert (info.geotransform[1], info.geotransform[5]) == (full_info.geotransform[1], full_info.geotransform[5])
    np.testing.assert_array_equal(part, full[3:31, 5:21])
    # an extent larger than the grid is clipped to it
    serve(config(path, folder, tmp_path / "large.tif", tile_size=16, extent=(GRID_X - 1e4, 0, GRID_X + 1e4, 9e6)))
    np.testing.assert_array_equal(read(tmp_path / "large.tif")[0], full)


def test_extent_outside_the_grid_is_an_error_naming_both_extents(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    with pytest.raises(InputError) as error:
        serve(config(path, folder, tmp_path / "out.tif", extent=(0.0, 0.0, 10.0, 10.0)))
    assert str(error.value) == (
        "EXTENT: the extent [0.0, 0.0, 10.0, 10.0] (xmin, ymin, xmax, ymax) does not overlap the output grid, which "
        "covers [500030.0, 4499570.0, 500510.0, 4499970.0] in the CRS of the first source. Give an extent inside it "
        "(in that CRS).")
    assert leftovers(tmp_path) == []
    with pytest.raises(InputError, match=r"^EXTENT: the extent \[3.0, 0.0, 1.0, 1.0\] is empty"):
        config(path, folder, tmp_path / "out.tif", extent=(3.0, 0.0, 1.0, 1.0))
    with pytest.raises(InputError, match=r"^EXTENT: the extent \[1.0, 2.0\] is not 4 numbers"):
        config(path, folder, tmp_path / "out.tif", extent=(1.0, 2.0))


def test_extent_and_mask_on_the_worker_command_line(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ServeConfig)
    args = parser.parse_args(["--sources", '{"paths": ["a.tif"]}', "--model", "m", "--output", "o.tif",
                              "--extent", "1", "2", "3", "4", "--mask", "zone.gpkg|layername=fields"])
    parsed = config_from_args(ServeConfig, args)
    assert parsed.extent == (1.0, 2.0, 3.0, 4.0) and parsed.mask == "zone.gpkg|layername=fields"
    assert config_from_dict(ServeConfig, config_to_dict(parsed)) == parsed


# --------------------------------------------------------------------------------------------------------- MASK


def test_mask_skips_tiles_outside_and_sets_background(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    serve(config(path, folder, tmp_path / "full.tif", tile_size=8, output_names=("features",), background=-7))
    full, _, _ = read(tmp_path / "full.tif")
    # pixels of columns [0, 20) and rows [0, 12) of the output grid (edges on pixel edges, centres well inside)
    mask = polygon_layer(tmp_path / "mask.gpkg", [rectangle(GRID_X, GRID_Y - 120, GRID_X + 200, GRID_Y)])
    result = serve(config(path, folder, tmp_path / "masked.tif", tile_size=8, output_names=("features",),
                          background=-7, mask=str(mask), output_classes=str(tmp_path / "classes.tif")))
    out, info, _ = read(tmp_path / "masked.tif")
    # 6x5 tiles of 8: those meeting columns [0, 20) and rows [0, 12) are 3x2
    assert (result["tiles"], result["skipped_tiles"], result["nodata"]) == (30, 24, -7.0)
    assert info.nodata == (-7.0, -7.0, -7.0)
    np.testing.assert_array_equal(out[:12, :20], full[:12, :20])
    assert (out[12:] == -7).all() and (out[:, 20:] == -7).all()
    classes, class_info, _ = read(tmp_path / "classes.tif")
    assert class_info.nodata == (255.0,)
    assert (classes[12:] == 255).all() and (classes[:, 20:] == 255).all() and (classes[:12, :20] < 3).all()


def test_mask_in_another_crs_is_reprojected(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    utm = rectangle(GRID_X + 40, GRID_Y - 250, GRID_X + 310, GRID_Y - 60)
    serve(config(path, folder, tmp_path / "utm.tif", mask=str(polygon_layer(tmp_path / "utm.gpkg", [utm]))))
    target = osr.SpatialReference()
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source = osr.SpatialReference()
    source.ImportFromWkt(UTM31)
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(source, target)
    lonlat = [tuple(to_wgs84.TransformPoint(x, y)[:2]) for x, y in utm]
    serve(config(path, folder, tmp_path / "wgs84.tif", mask=str(polygon_layer(tmp_path / "wgs84.gpkg", [lonlat],
                                                                               epsg=4326))))
    a, b = read(tmp_path / "utm.tif")[0], read(tmp_path / "wgs84.tif")[0]
    np.testing.assert_array_equal(a, b)
    assert (a[6:25, 4:31] != 0).all() and (a[:6] == 0).all() and (a[25:] == 0).all()


def test_bad_masks(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    points = polygon_layer(tmp_path / "points.gpkg", [[(GRID_X, GRID_Y)]], geometry_type=ogr.wkbPoint)
    with pytest.raises(InputError) as error:
        serve(config(path, folder, tmp_path / "out.tif", mask=str(points)))
    assert str(error.value) == (f"MASK: the layer '{points}' has no polygon (1 feature(s) of type Point). Give a "
                                "polygon layer.")
    empty = polygon_layer(tmp_path / "empty.gpkg", [])
    with pytest.raises(InputError) as error:
        serve(config(path, folder, tmp_path / "out.tif", mask=str(empty)))
    assert str(error.value) == (f"MASK: the layer '{empty}' is empty (0 features). Give a layer with the polygons "
                                "to serve.")
    no_crs = polygon_layer(tmp_path / "nocrs.gpkg", [rectangle(GRID_X, GRID_Y - 100, GRID_X + 100, GRID_Y)],
                           epsg=None)
    with pytest.raises(InputError) as error:
        serve(config(path, folder, tmp_path / "out.tif", mask=str(no_crs)))
    assert str(error.value) == (f"MASK: the layer '{no_crs}' has no CRS. Assign its CRS (e.g. in QGIS, or ogr2ogr "
                                "-a_srs).")
    with pytest.raises(InputError, match=r"^MASK: the vector file .* does not exist"):
        serve(config(path, folder, tmp_path / "out.tif", mask=str(tmp_path / "missing.gpkg")))
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------- scaled types, classes


def test_scaled_types_store_rounded_clipped_values():
    values = np.array([-0.1, 0.0, 0.0019, 0.5, 1.0, 1.5], dtype=np.float32)
    np.testing.assert_array_equal(to_output_type(values, "scaled_uint8"), [0, 0, 0, 125, 250, 254])
    np.testing.assert_array_equal(to_output_type(values, "scaled_uint16"), [0, 0, 19, 5000, 10000, 15000])
    assert to_output_type(values, "scaled_uint8").dtype == np.uint8
    # plain integer types keep rounding the values themselves
    np.testing.assert_array_equal(to_output_type(values, "uint8"), [0, 0, 0, 0, 1, 2])


@pytest.mark.parametrize(("output_type", "stored", "scale", "nodata"), [
    ("scaled_uint8", "Byte", 1 / 250, 255.0), ("scaled_uint16", "UInt16", 1e-4, 65535.0)])
def test_scaled_probabilities_read_back_with_the_band_scale(valid_model, tmp_path, output_type, stored, scale,
                                                            nodata):
    folder, model = valid_model
    data = np.random.default_rng(4).uniform(1, 2, size=(53, 61, 3)).astype(np.float32)
    data[:, :30] = 0  # nodata on the left: BACKGROUND is the scaled type's nodata
    path = make_raster(tmp_path / "image.tif", data, GT, nodata=0)
    result = serve(config(path, folder, tmp_path / "out.tif", output_type=output_type, tile_size=16))
    assert (result["nodata"], result["scale"]) == (nodata, pytest.approx(scale))
    dataset = gdal.Open(str(tmp_path / "out.tif"))
    band = dataset.GetRasterBand(1)
    assert gdal.GetDataTypeName(band.DataType) == stored
    assert band.GetScale() == pytest.approx(scale) and band.GetOffset() == 0 and band.GetNoDataValue() == nodata
    stored_values = dataset.ReadAsArray(interleave="pixel")
    expected = predict(model, input_xs=data)["scores"][:40, :48]
    assert (stored_values[:, :27] == nodata).all()
    np.testing.assert_allclose(stored_values[:, 27:] * band.GetScale(), expected[:, 27:], atol=0.5 * scale + 1e-6)
    assert np.abs(stored_values[:, 27:] * scale - expected[:, 27:]).max() <= 1 / 255


def test_scaled_types_reject_a_background(valid_model, image, tmp_path):
    with pytest.raises(InputError) as error:
        config(image[0], valid_model[0], tmp_path / "out.tif", output_type="scaled_uint8", background=-1)
    assert str(error.value) == ("BACKGROUND: BACKGROUND -1 cannot be used with OUTPUT_TYPE scaled_uint8: its pixels "
                                "without a value are uint8 255 (the band's nodata). Leave BACKGROUND at 0, or choose "
                                "an unscaled OUTPUT_TYPE.")


def test_class_map_only_equals_the_class_map_written_with_the_probabilities(valid_model, image, tmp_path):
    folder, _ = valid_model
    path, _ = image
    serve(config(path, folder, tmp_path / "scores.tif", output_classes=str(tmp_path / "with.tif"), tile_size=16))
    result = serve(config(path, folder, "", output_classes=str(tmp_path / "only.tif"), tile_size=16))
    assert result["output"] is None and result["output_classes"] == str(tmp_path / "only.tif")
    with_scores, info_with, _ = read(tmp_path / "with.tif")
    only, info_only, dataset = read(tmp_path / "only.tif")
    np.testing.assert_array_equal(only, with_scores)
    assert info_only.geotransform == info_with.geotransform and info_only.dtype == "uint8"
    assert dataset.GetRasterBand(1).GetRasterCategoryNames() == ["water", "crop", "tree"]
    assert leftovers(tmp_path) == []


def test_no_output_at_all_is_an_error(image, tmp_path):
    with pytest.raises(InputError) as error:
        config(image[0], tmp_path / "model", "")
    assert str(error.value) == "OUTPUT: give the output raster file (OUTPUT), the class map (OUTPUT_CLASSES) or both."
